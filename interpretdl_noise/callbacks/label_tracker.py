"""LabelTracker: a per-sample metric (loss, confidence, margin, ...) grouped by a per-sample label, per epoch.

A Paddle port of FastEstimator's ``LabelTracker`` trace. Its purpose is a quick look while training: a
class with many wrong labels, or the group of samples known to be corrupted, follows a curve apart from
the others (its loss stays high, its confidence stays low).

Three ways in, one numpy core:

* ``paddle.Model.fit`` / ``Model.evaluate``: pass the tracker in ``callbacks=[...]`` **and** its
  :attr:`LabelTracker.metric` in ``model.prepare(metrics=[...])``. hapi callbacks never see per-sample
  outputs; a ``paddle.metric.Metric`` does: ``Model`` calls ``metric.compute(*outputs, *labels)`` on the
  very logits of the step (no second forward pass) and ``metric.update`` with numpy arrays.
* A hand-written loop: :meth:`LabelTracker.update` per batch, :meth:`LabelTracker.end_epoch` per epoch,
  then :meth:`LabelTracker.summary` / :meth:`LabelTracker.plot`.
* A saved recording (``training_dynamics.npz``): :meth:`LabelTracker.from_recording`.

Shapes: ``B`` samples in a batch, ``C`` classes, ``N`` samples and ``E`` epochs in a recording.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Callable, Union

import numpy as np

from .._paddle import paddle
from ..common.atomic import PathLike
from ..common.plotting import plot_grouped_curves, save_figure
from ..common.stat import GroupedStats
from ..interpreter.aum import logit_margins
from ..recording.recording import Recording
from ._hapi import FirstLabelLoss, TapMetric

BOUNDS = (None, "std", "range")
MODES = ("train", "eval", "test")
METRICS = ("loss", "confidence", "margin")
# smallest positive float16: a probability stored as 0 in a recording's ``td`` is at most this
# batches are buffered and reduced together (fewer, larger numpy calls) once this many samples are waiting
_FLUSH_SAMPLES = 65536

MetricLike = Union[str, Callable[[np.ndarray, np.ndarray], np.ndarray]]


# --------------------------------------------------------------------------------------------------
# numpy core
# --------------------------------------------------------------------------------------------------
def _logsumexp_rows(logits: np.ndarray) -> np.ndarray:
    """``log(sum(exp(logits), axis=1))``, ``(B,)``, overflow-safe.

    Shifting by the batch maximum (one scalar reduction) is much cheaper than by each row's maximum on
    small batches; rows that then underflow to 0 (logits hundreds below the batch maximum) are redone
    with their own maximum.
    """
    if logits.size == 0:
        return np.zeros(logits.shape[0])
    top = logits.max()
    sums = np.exp(logits - top) @ np.ones(logits.shape[1])
    bad = ~(sums > 0)
    if bad.any():
        sums[bad] = np.nan  # replaced below
    lse = top + np.log(sums)
    if bad.any():
        rows = logits[bad]
        row_top = rows.max(axis=1, keepdims=True)
        lse[bad] = row_top[:, 0] + np.log(np.exp(rows - row_top).sum(axis=1))
    return lse


def _log_softmax_at(logits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows = np.arange(logits.shape[0])
    return logits[rows, labels] - _logsumexp_rows(logits), rows


def per_sample_loss(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Softmax cross-entropy of each sample, ``(B,)``, from logits ``(B, C)`` and class labels ``(B,)``."""
    logp, _ = _log_softmax_at(logits, labels)
    return -logp


def per_sample_confidence(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Softmax probability of the assigned label, ``(B,)``."""
    logp, _ = _log_softmax_at(logits, labels)
    return np.exp(logp)


def per_sample_margin(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Logit margin, ``(B,)``: the assigned label's logit minus the largest other logit (AUM's margin,
    :func:`~interpretdl_noise.interpreter.aum.logit_margins`). Negative when the model prefers another class.
    """
    return logit_margins(logits, labels)[3]


_BUILTIN_METRICS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "loss": per_sample_loss,
    "confidence": per_sample_confidence,
    "margin": per_sample_margin,
}


def _metric_name(metric: MetricLike) -> str:
    return metric if isinstance(metric, str) else getattr(metric, "__name__", type(metric).__name__)


def _label_name(label: str | int) -> str:
    return label if isinstance(label, str) else f"label{label}"


def _check_bounds(bounds) -> list[str | None]:
    items = [bounds] if bounds is None or isinstance(bounds, str) else list(bounds)
    if not items:
        items = [None]
    out: list[str | None] = []
    for b in items:
        if b not in BOUNDS:
            raise ValueError(f"bounds must be None, 'std', 'range' or a list of them; got {b!r}")
        if b not in out:
            out.append(b)
    return out


def _check_modes(mode) -> tuple[str, ...]:
    if mode is None:
        return MODES
    items = [mode] if isinstance(mode, str) else list(mode)
    for m in items:
        if m not in MODES:
            raise ValueError(f"mode must be one of {MODES} (a list of them, or None for all); got {m!r}. "
                             "Model.predict is not tracked: it has no labels.")
    return tuple(m for m in MODES if m in items)


class LabelTracker(paddle.callbacks.Callback):
    """Track a per-sample metric grouped by a per-sample label, one point per epoch, and plot it.

    Parameters
    ----------
    label : str or int
        Which per-sample label groups the samples. In ``Model.fit`` the labels are those the ``Model``
        declares (``labels=[InputSpec(...), ...]``) in the order the dataset yields them after the
        inputs. ``label`` is either the ``name`` of one of those ``InputSpec`` s, or its position (int),
        or ``'label'`` for the first label, the class label ``y``. Extra labels (for example a 0/1
        "corrupted" flag or the clean class) are declared as further ``InputSpec`` s; the loss must then
        ignore them (:meth:`wrap_loss`). The first label is always taken as the class label that the
        built-in metrics use. In :meth:`from_recording` it is a key of the recording.
    metric : {'loss', 'confidence', 'margin'} or callable
        The per-sample value tracked. ``'loss'``: softmax cross-entropy with the class label;
        ``'confidence'``: softmax probability of the class label; ``'margin'``: class-label logit minus
        the largest other logit (AUM's margin). A callable gets ``(logits, labels)`` as numpy arrays
        ``(B, C)`` float64 and ``(B,)`` int64 and returns ``(B,)`` values. The network's first output
        must be the logits ``(B, C)`` (no softmax layer) for the built-ins.
    label_mapping : dict, optional
        ``{display name: label value}``, e.g. ``{'clean': 0, 'corrupted': 1}``. Only these labels are
        tracked and drawn, in this order. Without it every label value is tracked and shown as
        ``str(value)``, sorted.
    bounds : {None, 'std', 'range'} or list of them, default='std'
        One figure per entry: ``None`` draws the mean only, ``'std'`` a shaded band mean +- std (sample
        standard deviation, ``n - 1``, and 0.0 for a label seen once, as ``statistics.stdev`` in
        FastEstimator), ``'range'`` a shaded band ``[min, max]``.
    mode : {'train', 'eval', 'test'}, list of them, or None, default='eval'
        Which phases are tracked (None: all). ``'train'``: the training steps of ``fit`` (train-mode
        forward, before the optimizer step); ``'eval'``: the ``eval_data`` passes of ``fit`` (at the
        epochs given by ``eval_freq``); ``'test'``: a standalone ``Model.evaluate(...,
        callbacks=[tracker])``. ``Model.predict`` has no labels and is never tracked.
    outputs : str, optional
        Name of the result, FastEstimator's output key; default ``'{metric}_by_{label}'``. It names
        the PNG files (``<save_dir>/<outputs>_<bound>.png``), the figure titles and the metric's log
        entry in hapi's progress bar.
    save_dir : path, optional
        Keyword-only. When given, the figures made at the end of ``fit`` (or of a standalone ``evaluate``)
        are also written there as PNG. Nothing is written otherwise.

    Attributes
    ----------
    metric : paddle.metric.Metric
        Pass it in ``model.prepare(..., metrics=[tracker.metric])``. hapi logs it as
        ``'<outputs>_samples'``: the number of samples tracked in the current pass.
    figures : list of matplotlib.figure.Figure
        The figures of the last :meth:`plot` (made automatically at the end of ``fit``), one per bound.

    Notes
    -----
    Accumulation is per epoch and vectorised. Each batch's arrays (logits and labels, or labels and
    values) are only kept; at the end of the epoch, or whenever 65,536 samples are waiting, they are
    concatenated, the metric is computed once for all of them, and one ``np.bincount`` /
    ``np.minimum.at`` pass (``np.unique`` for labels that are not small non-negative integers) merges
    them into per-label count, mean, M2, min and max (Chan et al.'s parallel update). So memory stays
    bounded, and there is no per-sample Python loop and only a handful of numpy calls per epoch.
    Because the metric is computed at the flush, an error in a custom metric surfaces at the epoch's end.

    x in the figures is the epoch (1-based); ``'eval'`` points sit at the epoch they followed; ``'test'``
    points at the number of training epochs this tracker has seen (0 if none). ``on_train_begin`` clears
    earlier history, so each ``fit`` starts afresh. Figures are built with ``matplotlib.figure.Figure``
    (not pyplot), so nothing is left in pyplot's global state; in Jupyter run ``%matplotlib inline``
    (or import pyplot) once so that ``display(fig)`` renders them. Dygraph mode only.

    Examples
    --------
    >>> tracker = LabelTracker('label', 'loss', mode='train')                     # doctest: +SKIP
    >>> model = paddle.Model(net, inputs=[InputSpec([None, 64], 'float32', 'x')],
    ...                      labels=[InputSpec([None, 1], 'int64', 'label')])      # doctest: +SKIP
    >>> model.prepare(opt, paddle.nn.CrossEntropyLoss(), metrics=[tracker.metric]) # doctest: +SKIP
    >>> model.fit(train_ds, epochs=20, callbacks=[tracker])                       # doctest: +SKIP
    >>> tracker.figures[0]                                                        # doctest: +SKIP

    With a 0/1 corruption flag as a second label (the dataset yields ``(x, y, flag)``)::

        flag = LabelTracker('flag', 'confidence', label_mapping={'clean': 0, 'corrupted': 1}, mode='train')
        model = paddle.Model(net, inputs=[InputSpec([None, 64], 'float32', 'x')],
                             labels=[InputSpec([None, 1], 'int64', 'y'), InputSpec([None, 1], 'int64', 'flag')])
        model.prepare(opt, LabelTracker.wrap_loss(paddle.nn.CrossEntropyLoss()), metrics=[flag.metric])

    A hand-written loop::

        for epoch in range(E):
            for x, y in loader:
                logits = net(x)
                ...
                tracker.update(y.numpy(), tracker.compute_metric(logits.numpy(), y.numpy()))
            tracker.end_epoch()
        tracker.summary()   # {'0': {'mean': [...], 'std': [...], ...}, ...}
    """

    def __init__(self, label: str | int, metric: MetricLike, label_mapping: Mapping[str, Any] | None = None,
                 bounds: None | str | Iterable[str | None] = "std",
                 mode: None | str | Iterable[str] = "eval", outputs: str | None = None, *,
                 save_dir: PathLike | None = None):
        super().__init__()
        if isinstance(label, bool) or not isinstance(label, (str, int, np.integer)):
            raise ValueError(f"label must be a label name (str) or a label position (int), got {label!r}")  # noqa: TRY004
        if isinstance(label, (int, np.integer)) and label < 0:
            raise ValueError(f"label position must be >= 0, got {label}")
        if isinstance(metric, str):
            if metric not in METRICS:
                raise ValueError(f"metric must be one of {METRICS} or a callable (logits, labels) -> values; "
                                 f"got {metric!r}")
        elif not callable(metric):
            raise ValueError(f"metric must be one of {METRICS} or a callable, got {metric!r}")  # noqa: TRY004
        if label_mapping is not None:
            if not isinstance(label_mapping, Mapping) or not label_mapping:
                raise ValueError(f"label_mapping must be a non-empty dict {{display name: label value}}, "
                                 f"got {label_mapping!r}")
            values = list(label_mapping.values())
            if len(set(values)) != len(values):
                raise ValueError(f"label_mapping maps several names to one label value: {dict(label_mapping)!r}")
        self.label = label if isinstance(label, str) else int(label)
        self.metric_fn = metric
        self.label_mapping = dict(label_mapping) if label_mapping is not None else None
        self.bounds = _check_bounds(bounds)
        self.mode = mode
        self.modes = _check_modes(mode)
        self.outputs = outputs if outputs is not None else f"{_metric_name(metric)}_by_{_label_name(self.label)}"
        self.save_dir = save_dir
        self.metric = TapMetric(f"{self.outputs}_samples", lambda *args: self._select(args), self._metric_update)
        self.figures: list[Any] = []
        self._names = ({v: str(k) for k, v in self.label_mapping.items()} if self.label_mapping is not None else None)
        self._reset()
        self._in_fit = False
        self._warned = False
        self._label_pos: int | None = None

    # ---------------------------------------------------------------- state
    def _reset(self) -> None:
        self._current: dict[str, GroupedStats] = {m: GroupedStats() for m in MODES}
        # batches not yet reduced: (labels, values) or (logits, class labels, labels), per phase
        self._pending: dict[str, list[tuple[np.ndarray, ...]]] = {m: [] for m in MODES}
        self._pending_n: dict[str, int] = dict.fromkeys(MODES, 0)
        self._history: dict[str, list[tuple[float, dict[Any, tuple[int, float, float, float, float]]]]] = \
            {m: [] for m in MODES}
        self._phase: str | None = None
        self._train_epochs = 0

    def reset(self) -> None:
        """Forget all accumulated epochs and figures."""
        self._reset()
        self.figures = []

    def _manual_mode(self, mode: str | None) -> str:
        if mode is not None:
            if mode not in MODES:
                raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
            return mode
        if self._phase is not None:
            return self._phase
        return self.modes[0] if len(self.modes) == 1 else "train"

    # ---------------------------------------------------------------- hand-written loop API
    def compute_metric(self, logits, labels) -> np.ndarray:
        """The tracked metric of one batch.

        Parameters
        ----------
        logits : array-like of shape (B, C)
            Raw network outputs (a paddle Tensor is converted).
        labels : array-like of shape (B,) or (B, 1)
            Class labels in ``[0, C)``.

        Returns
        -------
        ndarray of shape (B,), float64
        """
        logits = np.asarray(logits.numpy() if isinstance(logits, paddle.Tensor) else logits, dtype=np.float64)
        labels = np.asarray(labels.numpy() if isinstance(labels, paddle.Tensor) else labels).reshape(-1)
        if logits.ndim != 2 or logits.shape[0] != labels.size:
            raise ValueError(f"logits must have shape (B, C) and labels (B,); got {logits.shape} and {labels.shape}")
        fn = _BUILTIN_METRICS[self.metric_fn] if isinstance(self.metric_fn, str) else self.metric_fn
        if isinstance(self.metric_fn, str):
            if labels.dtype.kind not in "iub" or labels.min(initial=0) < 0 or labels.max(initial=0) >= logits.shape[1]:
                raise ValueError(f"class labels must be integers in [0, {logits.shape[1]}) for metric "
                                 f"{self.metric_fn!r}")
            labels = labels.astype(np.int64)
        values = np.asarray(fn(logits, labels), dtype=np.float64).reshape(-1)
        if values.size != labels.size:
            raise ValueError(f"metric {_metric_name(self.metric_fn)!r} returned {values.size} values "
                             f"for a batch of {labels.size}")
        return values

    def update(self, labels, values, mode: str | None = None) -> None:
        """Add one batch.

        Parameters
        ----------
        labels : array-like of shape (B,) or (B, 1)
            The per-sample label that groups the samples (class ids, 0/1 flags, ...).
        values : array-like of shape (B,) or (B, 1)
            The per-sample metric.
        mode : {'train', 'eval', 'test'}, optional
            The phase this batch belongs to; default: the phase ``fit`` is in, else the tracked ``mode``
            when it is a single one, else ``'train'``. Batches of a phase not in ``mode`` are ignored.
        """
        phase = self._manual_mode(mode)
        labels = np.asarray(labels.numpy() if isinstance(labels, paddle.Tensor) else labels).reshape(-1)
        values = np.asarray(values.numpy() if isinstance(values, paddle.Tensor) else values)
        if values.dtype.kind not in "fiub":
            raise ValueError(f"values must be numeric, got dtype {values.dtype}")
        values = values.astype(np.float64, copy=False).reshape(-1)
        if labels.size != values.size:
            raise ValueError(f"labels and values must have one entry per sample; got {labels.size} and {values.size}")
        if phase not in self.modes:
            return
        # labels outside label_mapping are accumulated too (a few numbers each) and left out of summary / plot
        self._buffer(phase, (np.array(labels), np.array(values)), labels.size)

    def _buffer(self, phase: str, batch: tuple[np.ndarray, ...], n: int) -> None:
        """Keep a batch; reduce the buffer when it holds ``_FLUSH_SAMPLES`` (bounded memory, few numpy calls)."""
        self._pending[phase].append(batch)
        self._pending_n[phase] += n
        if self._pending_n[phase] >= _FLUSH_SAMPLES:
            self._flush(phase)

    def _flush(self, phase: str) -> None:
        """Reduce the buffered batches of ``phase`` into its running per-label statistics."""
        pending, self._pending[phase], self._pending_n[phase] = self._pending[phase], [], 0
        if not pending:
            return
        if len(pending[0]) == 2:
            labels = np.concatenate([b[0] for b in pending])
            values = np.concatenate([b[1] for b in pending])
        else:
            labels = np.concatenate([b[2] for b in pending])
            values = self.compute_metric(np.concatenate([b[0] for b in pending]),
                                         np.concatenate([b[1] for b in pending]))
        self._current[phase].add(labels, values)

    def end_epoch(self, epoch: float | None = None, mode: str | None = None) -> None:
        """Close the current epoch of ``mode``: its per-label statistics become one point of the curves.

        Parameters
        ----------
        epoch : float, optional
            x of the point; default: the number of epochs of this mode closed so far, plus 1.
        mode : {'train', 'eval', 'test'}, optional
            As in :meth:`update`.
        """
        phase = self._manual_mode(mode)
        if phase not in self.modes:
            return
        x = float(len(self._history[phase]) + 1) if epoch is None else float(epoch)
        self._flush(phase)
        self._history[phase].append((x, self._current[phase].snapshot()))
        self._current[phase] = GroupedStats()

    def recorded_modes(self) -> list[str]:
        """The phases with at least one closed epoch."""
        return [m for m in MODES if self._history[m]]

    def _ordered_keys(self, mode: str) -> list[Any]:
        if self.label_mapping is not None:
            return list(self.label_mapping.values())
        seen: dict[Any, None] = {}
        for _, snap in self._history[mode]:
            seen.update(dict.fromkeys(snap))
        try:
            return sorted(seen)
        except TypeError:  # mixed, unorderable label types: first-seen order
            return list(seen)

    def _display(self, key: Any) -> str:
        return self._names[key] if self._names is not None else str(key)

    def summary(self, mode: str | None = None) -> dict[str, dict[str, list[float]]]:
        """Per-label curves of the closed epochs of one phase.

        Parameters
        ----------
        mode : {'train', 'eval', 'test'}, optional
            Needed only when several phases were recorded.

        Returns
        -------
        dict
            ``{display name: {"epoch", "mean", "std", "min", "max", "count"}}``, each a list with one entry
            per closed epoch. ``std`` is the sample standard deviation (``n - 1``; 0.0 for a single
            value). A label absent from an epoch has count 0 and NaN statistics there. Empty when
            nothing was recorded. With ``label_mapping``, every mapped label appears, in its order.
        """
        if mode is None:
            recorded = self.recorded_modes()
            if not recorded:
                return {}
            if len(recorded) > 1:
                raise ValueError(f"several modes were recorded ({recorded}); pass mode= one of them")
            mode = recorded[0]
        elif mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        history = self._history[mode]
        if not history:
            return {}
        xs = [x for x, _ in history]
        nan = (0, math.nan, math.nan, math.nan, math.nan)
        out: dict[str, dict[str, list[float]]] = {}
        for key in self._ordered_keys(mode):
            rows = [snap.get(key, nan) for _, snap in history]
            cols = list(zip(*rows))
            out[self._display(key)] = {"epoch": list(xs), "mean": list(cols[1]), "std": list(cols[2]),
                                       "min": list(cols[3]), "max": list(cols[4]), "count": list(cols[0])}
        return out

    # ---------------------------------------------------------------- plotting
    def plot(self, save_dir: PathLike | None = None) -> list[Any]:
        """Draw one figure per bound: x = epoch, y = metric, one line per label (and phase), shaded band.

        Parameters
        ----------
        save_dir : path, optional
            Also write each figure as ``<save_dir>/<outputs>_<bound>.png`` (bound ``mean`` for None).

        Returns
        -------
        list of matplotlib.figure.Figure
            One per entry of ``bounds``, also kept in :attr:`figures`. Each axis holds one line per
            (label, phase) and, for ``'std'`` / ``'range'``, one band per line.

        Raises
        ------
        ValueError
            If nothing has been recorded yet.
        """
        recorded = self.recorded_modes()
        if not recorded:
            raise ValueError(f"LabelTracker {self.outputs!r} has recorded no closed epoch in modes {self.modes}; "
                             "nothing to plot")
        figures = plot_grouped_curves({m: self.summary(m) for m in recorded}, self.bounds,
                                      metric=_metric_name(self.metric_fn), group=_label_name(self.label))
        if save_dir is not None:
            for bound, fig in zip(self.bounds, figures):
                save_figure(fig, Path(save_dir) / f"{self.outputs}_{bound or 'mean'}.png")
        self.figures = figures
        return figures

    # ---------------------------------------------------------------- from a recording
    @classmethod
    def from_recording(cls, record_or_path: Mapping[str, Any] | PathLike,
                       metric: str | np.ndarray = "confidence", label: str | np.ndarray = "label",
                       label_mapping: Mapping[str, Any] | None = None,
                       bounds: None | str | Iterable[str | None] = "std", outputs: str | None = None, *,
                       save_dir: PathLike | None = None) -> LabelTracker:
        """Per-epoch curves by label from a saved recording (``training_dynamics.npz``).

        Parameters
        ----------
        record_or_path : Recording, path, mapping or DynamicsRecorder
            Any form :meth:`~interpretdl_noise.Recording.coerce` accepts (validated once).
        metric : {'confidence', 'loss', 'margin'} or ndarray of shape (N, E), default='confidence'
            ``'confidence'``: ``td[:, :, 0]``, the softmax of the assigned label. ``'loss'``: the
            recording's ``losses`` when present, else ``-log(td[:, :, 0])`` as
            :meth:`~interpretdl_noise.Recording.loss_curves` derives it (probabilities clipped at 1e-7).
            ``'margin'``: logit margin, needs the recording's ``logits`` (record with ``keep_logits=True``).
            An array is used as is.
        label : str or ndarray of shape (N,), default='label'
            ``'label'``: the assigned class (``labels[:, 0]``); ``'label_flip'``: the known-mislabeled
            flag (default display names ``{'clean': 0, 'mislabeled': 1}``); any other ``(N,)`` key of
            the recording; or an array, e.g. the clean classes.
        label_mapping, bounds, outputs, save_dir
            As in :class:`LabelTracker`. No figure is drawn until :meth:`plot` is called.

        Returns
        -------
        LabelTracker
            With one closed ``'train'`` epoch per recorded epoch (x = 1..E).
        """
        record = Recording.coerce(record_or_path, source="recording")
        td = record.td
        n, e = record.n_samples, record.n_epochs

        if isinstance(label, str):
            label_name = label
            if label == "label":
                groups = record.require("labels", needed_by="label='label'").assigned_labels
            elif label in record and np.ndim(record[label]) == 1 and len(record[label]) == n:
                groups = np.asarray(record[label])
                if label == "label_flip":
                    groups = groups.astype(np.int64)
                    if label_mapping is None:
                        label_mapping = {"clean": 0, "mislabeled": 1}
            else:
                keys = ["label"] + [k for k, v in record.items() if np.ndim(v) == 1 and len(v) == n]
                raise ValueError(f"label {label!r} is not a per-sample key of the recording; available: {keys}")
        else:
            label_name = "label"
            groups = np.asarray(label).reshape(-1)
            if groups.size != n:
                raise ValueError(f"label array has {groups.size} entries, the recording has N={n} samples")

        if isinstance(metric, str):
            metric_name = metric
            if metric == "confidence":
                values = td[:, :, 0].astype(np.float64)
            elif metric == "loss":
                values = record.loss_curves()
            elif metric == "margin":
                if not record.has("logits", "labels"):
                    raise ValueError("metric='margin' needs the recording's 'logits' and 'labels' keys (record with "
                                     "keep_logits=True); use 'confidence' or 'loss' otherwise")
                logits = np.asarray(record.logits, dtype=np.float64)
                values = per_sample_margin(logits.reshape(n * e, -1), np.repeat(record.assigned_labels, e))
                values = values.reshape(n, e)
            else:
                raise ValueError(f"metric must be one of {METRICS} or an (N, E) array; got {metric!r}")
        else:
            metric_name = "metric"
            values = np.asarray(metric, dtype=np.float64)
            if values.shape != (n, e):
                raise ValueError(f"metric array must have shape (N, E) = {(n, e)}, got {values.shape}")

        tracker = cls(label_name, metric_name, label_mapping=label_mapping, bounds=bounds, mode="train",
                      outputs=outputs, save_dir=save_dir)
        for epoch in range(e):
            tracker.update(groups, values[:, epoch], mode="train")
            tracker.end_epoch(epoch + 1, mode="train")
        return tracker

    # ---------------------------------------------------------------- paddle.Model (hapi)
    @staticmethod
    def wrap_loss(loss: Callable) -> paddle.nn.Layer:
        """Wrap ``loss(pred, y)`` so that ``Model`` may call it with extra labels: ``(pred, y, *extra)``."""
        return FirstLabelLoss(loss)

    def _resolve_label(self) -> None:
        """Find the position of ``label`` among the ``Model``'s labels (by InputSpec name or index)."""
        specs = getattr(self.model, "_labels", None) if self.model is not None else None
        names = [getattr(s, "name", None) for s in specs] if specs else []
        if isinstance(self.label, int):
            if specs and self.label >= len(specs):
                raise ValueError(f"label position {self.label} is out of range: the Model declares "
                                 f"{len(specs)} label(s) {names}")
            self._label_pos = self.label
        elif self.label in names:
            self._label_pos = names.index(self.label)
        elif self.label == "label":
            self._label_pos = 0
        else:
            raise ValueError(f"label {self.label!r} is not one of the Model's labels {names} (InputSpec names); "
                             "use 'label' for the first (class) label or an int position")

    def _select(self, args: tuple[Any, ...]) -> tuple[Any, ...]:
        """``metric.compute``: from ``(*outputs, *labels)`` keep logits, the class label and the tracked label.

        Returns ``(logits,)`` when the phase is not tracked and ``(logits, y)`` when the tracked label is the
        class label (so hapi converts it to numpy only once).
        """
        if self._phase is None or self._phase not in self.modes:
            return (args[0],)
        specs = getattr(self.model, "_labels", None) if self.model is not None else None
        n_labels = len(specs) if specs else len(args) - 1
        labels = args[len(args) - n_labels:]
        pos = self._label_pos if self._label_pos is not None else 0
        if pos >= len(labels):
            raise ValueError(f"label position {pos} is out of range: the step has {len(labels)} label(s)")
        return (args[0], labels[0]) if pos == 0 else (args[0], labels[0], labels[pos])

    def _metric_update(self, *arrays) -> int:
        """``metric.update`` with numpy arrays: buffer the batch (the metric is computed at flush); return B."""
        if self._phase is None:
            # never attached as a callback: a misconfiguration worth one warning. Attached before (e.g. a
            # later evaluate without callbacks=[tracker]): the batch is simply not tracked.
            if self.model is None and not self._warned:
                warnings.warn(f"LabelTracker {self.outputs!r}: its metric ran outside a phase the callback knows, "
                              "so the batch is ignored. Pass the tracker in callbacks=[...] of fit / evaluate too.",
                              UserWarning, stacklevel=2)
                self._warned = True
            return 0
        if len(arrays) == 1:
            return 0  # phase not tracked
        logits, y = np.asarray(arrays[0]), np.asarray(arrays[1]).reshape(-1)
        tracked = np.asarray(arrays[2]).reshape(-1) if len(arrays) == 3 else y  # label == class label
        if logits.ndim != 2 or not logits.shape[0] == y.size == tracked.size:
            raise ValueError(f"LabelTracker {self.outputs!r}: the network's first output must be logits (B, C) and "
                             f"each label one value per sample; got {logits.shape}, {y.shape}, {tracked.shape}")
        self._buffer(self._phase, (logits, y, tracked), y.size)
        return int(y.size)

    def on_train_begin(self, logs=None):
        self.reset()
        self._in_fit = True
        self._resolve_label()

    def on_epoch_begin(self, epoch, logs=None):
        self._phase = "train"

    def on_epoch_end(self, epoch, logs=None):
        self.end_epoch(epoch + 1, mode="train")
        self._train_epochs = epoch + 1
        self._phase = None

    def on_eval_begin(self, logs=None):
        if not self._in_fit:
            self._resolve_label()
        self._phase = "eval" if self._in_fit else "test"

    def on_eval_end(self, logs=None):
        phase = self._phase
        self._phase = None
        if phase is None:
            return
        self.end_epoch(self._train_epochs, mode=phase)
        if not self._in_fit and phase in self.modes:
            self.plot(self.save_dir)

    def on_train_end(self, logs=None):
        self._in_fit = False
        self._phase = None
        if self.recorded_modes():
            self.plot(self.save_dir)
        elif "train" in self.modes or "eval" in self.modes:
            warnings.warn(f"LabelTracker {self.outputs!r} recorded nothing in modes {self.modes}"
                          + (" (mode 'eval' needs fit(eval_data=...))" if "eval" in self.modes else "")
                          + "; check that tracker.metric is in model.prepare(metrics=[...])", UserWarning,
                          stacklevel=2)


__all__ = [
    "BOUNDS",
    "METRICS",
    "MODES",
    "GroupedStats",
    "LabelTracker",
    "per_sample_confidence",
    "per_sample_loss",
    "per_sample_margin",
]
