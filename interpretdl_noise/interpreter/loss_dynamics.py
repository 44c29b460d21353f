"""EMA of per-sample training loss (a port of Datumaro's ``LossDynamicsAnalyzer``).

A sample whose training loss stays high while the model learns the rest of the data is a noisy-label
suspect. Each annotation's loss history ``loss(t_0), loss(t_1), ...`` is smoothed by an exponential
moving average that starts from zero, exactly as Datumaro computes it::

    ema(-1) = 0
    ema(t)  = (1 - alpha) * ema(t - 1) + alpha * loss(t)     (so ema(t_0) = alpha * loss(t_0))

and the **last EMA value is the score: higher = more likely mislabeled**.

The EMA runs vectorised over all samples at once: a cache-blocked numpy recurrence over the ``S`` steps,
each step one multiply and one add on a block of samples. 100,000 samples x 1,000 steps take about 0.3-0.5 s
on one CPU core, bounded by memory bandwidth (``benchmarks/bench_ema.py``).

Shapes: ``R`` rows (one per annotation; for a classification recording, one per sample, ``R = N``),
``S`` steps (the union of all recorded iterations or epochs).

Missing steps ("ragged" histories)
    A row that has no record at some step (its ``iters`` skip it, or a recording holds NaN there) simply
    has no value at that step, as in Datumaro, where each annotation's EMA runs over its own records
    only: the EMA continues from the row's previous record **without decaying over the gap**, and the
    row's cell at the missing step is NaN. This equals pandas ``ewm(alpha, adjust=False,
    ignore_na=True)`` over the row with the ``ema(-1) = 0`` seed. (``ignore_na=False`` would instead
    re-weight the first record after a gap; Datumaro never does that, because its series have no NaN.)
    :meth:`LossDynamicsAnalyzer.from_losses` refuses NaN values and, without ``iters``, histories of
    different lengths, because their steps would be ambiguous; give ``iters`` for ragged histories.

Differences from Datumaro 1.10 (by design)
    * ``mean_loss_dyns_per_label`` works (Datumaro raises ``TypeError: unhashable type: 'Category'``);
      it is keyed by label name when the source has label names, else by label id.
    * Rows with equal last EMA keep their source order (stable sorts) in ``ema_dataframe`` and in
      :meth:`~LossDynamicsAnalyzer.get_top_k_cands`; Datumaro's order of ties depends on numpy's
      quicksort and the CPU.
    * Bad input raises ``ValueError`` naming the bad value (Datumaro raises ``DatasetError`` for wrong
      infos and crashes on missing attributes).
    * ``NoisyLabelCandidate`` hashes consistently with its ``==``.

References
----------
.. [1] Zhou, Wang and Bilmes, "Robust curriculum learning: from clean label detection to noisy label
   self-correction", ICLR 2021.

Examples
--------
>>> import numpy as np
>>> from interpretdl_noise import LossDynamicsAnalyzer
>>> an = LossDynamicsAnalyzer.from_losses({"a": [1.0, 1.0], "b": [3.0, 2.0]}, {"a": 0, "b": 1}, alpha=0.5)
>>> [(c.id, c.metric) for c in an.get_top_k_cands(2)]
[('b', 1.75), ('a', 0.75)]
"""
from __future__ import annotations

import numbers
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ..common.atomic import PathLike, atomic_path
from ..recording.recording import Recording
from .abc_interpreter import LOSSES_DERIVED_NOTE, DatasetLevelInterpreter
from .loss_dynamics_io import (
    ALLOWED_TASK_NAMES,
    ALLOWED_TRACKING_LOSS_TYPES,
    LossTable,
    table_from_losses,
    table_from_recording,
    table_from_source,
)

__all__ = ["LossDynamicsAnalyzer", "LossDynamicsInterpreter", "NoisyLabelCandidate", "ema_loss_dynamics"]

INDEX_NAMES = ["item_id", "item_subset", "ann_id", "ann_label"]
PLOT_MODES = ("mean", "label_mean")


# ---------------------------------------------------------------------------------------------- EMA core
def _check_alpha(alpha: Any) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0.0 < float(alpha) <= 1.0:
        raise ValueError(f"alpha must be a number with 0 < alpha <= 1, got {alpha!r}")
    return float(alpha)


def _weights(alpha: float) -> tuple[float, float, float]:
    """``(new, old, norm)`` weights as pandas' ``ewm(alpha=..., adjust=False)`` derives them.

    pandas turns ``alpha`` into a centre of mass and back, and divides each update by ``old + new``
    (1 up to rounding); doing the same makes our values bit-identical to Datumaro's.
    """
    a = 1.0 / (1.0 + (1.0 - alpha) / alpha)
    b = 1.0 - a
    return a, b, b + a


BLOCK_ROWS = 2048   # rows per block: one step's vectors of a block stay in the CPU cache
STEP_CHUNK = 64     # steps per chunk: alpha * loss of a (STEP_CHUNK, BLOCK_ROWS) tile is made at once


def _ema_rows(x: np.ndarray, alpha: float, out: np.ndarray | None = None,
              rows: np.ndarray | None = None) -> np.ndarray:
    """EMA along the steps of ``x`` (R, S), vectorised over rows; returns the last EMA per row (R',).

    Cache-blocked: rows go in blocks of :data:`BLOCK_ROWS` and steps in chunks of :data:`STEP_CHUNK`. For
    each (block, chunk) tile, ``alpha * loss`` is transposed and cast to float64 in one call; then each
    step is one multiply and one add on a block-long vector. The input is read once and the output
    written once, so the work is bounded by memory bandwidth, not by Python.

    NaN cells are missing steps: the EMA carries over unchanged and ``out`` gets NaN there.
    ``out`` (S, R'), if given, receives every step. ``rows`` (R',) selects and reorders rows of ``x``
    (so the output can be written already sorted without copying the input).
    """
    a, b, norm = _weights(alpha)
    mul, add, div = np.multiply, np.add, np.divide
    n_rows, n_steps = (x.shape[0] if rows is None else rows.shape[0]), x.shape[1]
    width = min(BLOCK_ROWS, n_rows)
    last = np.empty(n_rows, dtype=np.float64)
    scaled = np.empty((min(STEP_CHUNK, n_steps), width), dtype=np.float64)
    ping = np.empty((2, width), dtype=np.float64)
    carry = np.empty(width, dtype=np.float64)
    for r0 in range(0, n_rows, width):
        r1 = min(n_rows, r0 + width)
        nb = r1 - r0
        src = x[r0:r1] if rows is None else x[rows[r0:r1]]
        # one view per step, made once per block (the inner loop then does no indexing)
        targets = list(out[:, r0:r1]) if out is not None else [ping[0, :nb], ping[1, :nb]] * ((n_steps + 1) // 2)
        state = np.zeros(nb, dtype=np.float64)          # ema(-1) = 0
        for t0 in range(0, n_steps, STEP_CHUNK):
            t1 = min(n_steps, t0 + STEP_CHUNK)
            ax = scaled[: t1 - t0, :nb]
            mul(src[:, t0:t1].T, a, out=ax, dtype=np.float64)
            if np.isfinite(ax).all():
                for ax_t, target in zip(ax, targets[t0:t1]):
                    mul(state, b, out=target)       # pandas: (old_wt * ema + new_wt * loss) / (old_wt + new_wt)
                    add(target, ax_t, out=target)
                    if norm != 1.0:
                        div(target, norm, out=target)
                    state = target
                continue
            if np.isinf(ax).any():
                raise ValueError(f"losses contain inf (rows {r0}..{r1 - 1}, steps {t0}..{t1 - 1})")
            if state.base is not carry:             # a NaN loss = no record: keep the previous EMA there
                carry[:nb] = state
                state = carry[:nb]
            for ax_t, target in zip(ax, targets[t0:t1]):
                mul(state, b, out=target)
                add(target, ax_t, out=target)
                if norm != 1.0:
                    div(target, norm, out=target)
                np.copyto(state, target, where=~np.isnan(ax_t))
        last[r0:r1] = state
    return last


def ema_loss_dynamics(losses, alpha: float = 0.001) -> np.ndarray:
    """Exponential moving average of every row of ``losses``, vectorised across rows.

    Parameters
    ----------
    losses : array-like of shape (R, S)
        Per-sample (or per-annotation) training loss at ``S`` steps. NaN marks a step without a record:
        it is skipped (the EMA carries over without decay) and the output is NaN there.
    alpha : float, default=0.001
        Smoothing factor, ``0 < alpha <= 1``.

    Returns
    -------
    ndarray of shape (R, S), float64
        ``ema[:, t] = (1 - alpha) * ema[:, t-1] + alpha * losses[:, t]`` with ``ema[:, -1] = 0``
        (bit-identical to pandas ``ewm(alpha, adjust=False)`` seeded with 0, as Datumaro computes it).
        Higher final values = more likely mislabeled.
    """
    alpha = _check_alpha(alpha)
    x = np.asarray(losses)
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    if x.ndim != 2 or x.size == 0:
        raise ValueError(f"losses must be a non-empty 2-D array (R, S), got shape {x.shape}")
    out = np.empty((x.shape[1], x.shape[0]), dtype=np.float64)
    _ema_rows(x, alpha, out=out)
    return out.T


# ---------------------------------------------------------------------------------------------- candidates
@dataclass(order=True, frozen=True)
class NoisyLabelCandidate:
    """One noisy-label candidate, as Datumaro defines it.

    Ordering (``<``, ``sorted``) compares ``metric`` only; ``==`` (and ``hash``) compare the annotation
    identity ``(id, subset, ann_id)`` only, ignoring ``label_id`` and ``metric``.

    Attributes
    ----------
    id : str or int
        Item id (a sample id for recordings).
    subset : str
    ann_id : int
        Annotation id within the item (0 for classification).
    label_id : int
        Assigned label.
    metric : float
        Last EMA of the training loss; higher = more likely mislabeled.
    """

    id: Any = field(compare=False)
    subset: str = field(compare=False)
    ann_id: int = field(compare=False)
    label_id: int = field(compare=False)
    metric: float = field(compare=True)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NoisyLabelCandidate):
            return NotImplemented
        return (self.id, self.subset, self.ann_id) == (other.id, other.subset, other.ann_id)

    def __hash__(self) -> int:
        return hash((self.id, self.subset, self.ann_id))


# ---------------------------------------------------------------------------------------------- analyzer
class LossDynamicsAnalyzer:
    """Noisy-label candidates from the EMA of each annotation's training loss (Datumaro's analyzer).

    Parameters
    ----------
    source
        Where the per-sample loss histories come from:

        * a :class:`~interpretdl_noise.recording.DynamicsRecorder` recorded with ``keep_losses=True``
          (from ``TrainingDynamics(...).generator(..., keep_losses=True)``), or the ``TrainingDynamics``
          / hapi ``RecordTrainingDynamics(keep_losses=True)`` object holding it: one row per sample,
          one column per epoch;
        * a recording mapping or ``.npz`` path with ``losses`` (N, E) and ``labels`` (N, C) (column 0
          is the assigned label); NaN losses mark epochs without a record;
        * a Datumaro-format noisy-label-detection export: an ``annotations/<subset>.json`` file or the
          export folder (read without ``datumaro``), one row per annotation;
        * a ``datumaro.Dataset`` with the same content (when ``datumaro`` is installed).

        For plain arrays or dicts use :meth:`from_losses`.
    alpha : float, default=0.001
        EMA smoothing factor, ``0 < alpha <= 1``: ``ema(t) = (1 - alpha) * ema(t-1) + alpha * loss(t)``,
        ``ema(-1) = 0``.
    tracking_loss_type : {None, 'cls', 'bbox', 'centerness', 'bbox_refine'}, default=None
        Which ``loss_dynamics_<type>`` attribute to read; required for detection exports
        (``task='OTX-Det'``), and only valid for exports.

    Attributes
    ----------
    ema_dataframe : pandas.DataFrame of shape (R, 1 + S)
    mean_loss_dyns : pandas.Series of length 1 + S
    mean_loss_dyns_per_label : dict
    scores : ndarray of shape (R,)
        Last EMA value per row in **source order**; higher = more likely mislabeled.

    Examples
    --------
    >>> rec = TrainingDynamics(net).generator(loader, opt, epochs=30, keep_losses=True)  # doctest: +SKIP
    >>> an = LossDynamicsAnalyzer(rec, alpha=0.01)                                        # doctest: +SKIP
    >>> cands = an.get_top_k_cands(20)                                                    # doctest: +SKIP
    >>> an.plot_ema_loss_dynamics(cands[:5], mode="label_mean")                           # doctest: +SKIP
    """

    allowed_task_names: ClassVar[frozenset] = frozenset(ALLOWED_TASK_NAMES)
    allowed_tracking_loss_types: ClassVar[frozenset] = frozenset(ALLOWED_TRACKING_LOSS_TYPES)

    def __init__(self, source: Any, alpha: float = 0.001, tracking_loss_type: str | None = None) -> None:
        alpha = _check_alpha(alpha)
        self._setup(table_from_source(source, tracking_loss_type), alpha, tracking_loss_type)

    @classmethod
    def from_losses(cls, losses: Mapping[Any, Sequence[float]] | np.ndarray,
                    labels: Mapping[Any, int] | Sequence[int] | np.ndarray, alpha: float = 0.001,
                    iters: None | Sequence[int] | Mapping[Any, Sequence[int]] = None, subset: str = "train",
                    *, label_names: Sequence[str] | None = None) -> LossDynamicsAnalyzer:
        """Build the analyzer from plain per-sample loss histories (any training loop can feed this).

        Parameters
        ----------
        losses : mapping {sample id: sequence of float} or array-like of shape (N, S)
            Per-step training loss of each sample (an array row ``i`` gets sample id ``i``). NaN / inf
            are refused: leave such steps out and give ``iters``.
        labels : mapping {sample id: int} or sequence of length N
            Assigned label id of each sample (a sequence follows the order of ``losses``).
        alpha : float, default=0.001
        iters : None, sequence of int, or mapping {sample id: sequence of int}, optional
            Training iteration (or epoch) of each loss, strictly increasing per sample. ``None``: steps
            ``0..S-1``, all histories must then have the same length. One sequence: shared by all samples.
            A mapping: per sample, so histories may be ragged (missing steps are NaN in the frame).
        subset : str, default='train'
        label_names : sequence of str, optional
            Names by label id; then ``mean_loss_dyns_per_label`` and plot titles use them.

        Returns
        -------
        LossDynamicsAnalyzer
        """
        alpha = _check_alpha(alpha)
        if not isinstance(subset, str):
            raise ValueError(f"subset must be a string, got {subset!r}")  # noqa: TRY004
        table = table_from_losses(losses, labels, iters, subset)
        if label_names is not None:
            table = table._replace(label_names=[str(n) for n in label_names])
        obj = cls.__new__(cls)
        obj._setup(table, alpha, None)
        return obj

    @classmethod
    def from_recording(cls, recording: Any, alpha: float = 0.001, *,
                       derive_losses: bool = False) -> LossDynamicsAnalyzer:
        """The analyzer of one recording (any form :meth:`Recording.coerce` accepts), one row per sample.

        Parameters
        ----------
        recording : Recording, path, mapping or DynamicsRecorder
            Needs ``labels``, and ``losses`` (N, E) unless ``derive_losses``.
        alpha : float, default=0.001
        derive_losses : bool, default=False
            Without recorded ``losses``, use the cross-entropy ``-log td[:, :, 0]``
            (:meth:`Recording.loss_curves`) instead of raising.
        """
        alpha = _check_alpha(alpha)
        obj = cls.__new__(cls)
        obj._setup(table_from_recording(Recording.coerce(recording), derive_losses=derive_losses), alpha, None)
        return obj

    # ------------------------------------------------------------------ construction
    def _setup(self, table: LossTable, alpha: float, tracking_loss_type: str | None) -> None:
        if table.label_names is not None and table.labels.size and table.labels.max() >= len(table.label_names):
            raise ValueError(f"label id {int(table.labels.max())} has no name: the source names only "
                             f"{len(table.label_names)} labels {table.label_names[:10]}")
        if table.labels.size and table.labels.min() < 0:
            raise ValueError(f"label ids must be >= 0, got {int(table.labels.min())}")
        self._alpha = alpha
        self._tracking_loss_type = tracking_loss_type
        self._label_names = table.label_names
        self._step_name = table.step_name
        self._item_ids, self._subsets = table.item_ids, table.subsets
        self._ann_ids, self._labels = table.ann_ids, table.labels

        self._losses, self._steps = table.losses, table.steps                # (R, S), float32 or float64
        self._scores = _ema_rows(self._losses, alpha)                        # last EMA, source order
        self._order = np.argsort(self._scores, kind="stable")                # ascending, ties in source order
        self._frame: pd.DataFrame | None = None      # every step's EMA, built on first use (scores need none)
        self._mean: pd.Series | None = None
        self._mean_per_label: dict[int, pd.Series] | None = None

    @property
    def _df(self) -> pd.DataFrame:
        if self._frame is None:
            order = self._order
            values = np.empty((self._losses.shape[1] + 1, order.size), dtype=np.float64)  # pandas' block layout
            values[0] = self._scores[order]
            _ema_rows(self._losses, self._alpha, out=values[1:], rows=order)
            index = pd.MultiIndex.from_arrays([self._item_ids[order], self._subsets[order], self._ann_ids[order],
                                               self._labels[order]], names=INDEX_NAMES)
            columns = pd.Index(["last_value", *self._steps.tolist()], dtype=object)
            self._frame = pd.DataFrame(values.T, index=index, columns=columns, copy=False)
        return self._frame

    # ------------------------------------------------------------------ properties
    @property
    def alpha(self) -> float:
        """EMA smoothing factor: ``ema(t) = (1 - alpha) * ema(t - 1) + alpha * loss(t)``, ``ema(-1) = 0``."""
        return self._alpha

    @property
    def tracking_loss_type(self) -> str | None:
        """The detection loss type read from an export, or None."""
        return self._tracking_loss_type

    @property
    def label_names(self) -> list[str] | None:
        """Label names by label id, when the source has them."""
        return None if self._label_names is None else list(self._label_names)

    @property
    def ema_dataframe(self) -> pd.DataFrame:
        """EMA of every annotation at every step, laid out as Datumaro's.

        Shape (R, 1 + S). Rows: a MultiIndex ``(item_id, item_subset, ann_id, ann_label)``, sorted by
        ascending ``last_value`` (ties keep source order). Columns: ``'last_value'`` (the EMA at the row's
        last record), then the step numbers ascending; NaN where a row has no record. This is the
        analyzer's own frame, not a copy.
        """
        return self._df

    @property
    def scores(self) -> np.ndarray:
        """Last EMA value of each row in source order, shape (R,); higher = more likely mislabeled."""
        return self._scores.copy()

    @property
    def mean_loss_dyns(self) -> pd.Series:
        """Mean over rows of ``ema_dataframe`` (NaN skipped), ``'last_value'`` entry first."""
        if self._mean is None:
            self._mean = self._df.mean(axis=0)
        return self._mean

    def _per_label_id(self) -> dict[int, pd.Series]:
        if self._mean_per_label is None:
            # one grouped pass (10x faster than Datumaro's mean per group; equal up to ~1 ulp)
            grouped = self._df.groupby(level="ann_label", sort=True).mean()
            self._mean_per_label = {int(label): row.rename(None) for label, row in grouped.iterrows()}
        return self._mean_per_label

    @property
    def mean_loss_dyns_per_label_id(self) -> dict[int, pd.Series]:
        """``{label id: mean EMA Series}`` over the rows of each label (ascending label ids)."""
        return dict(self._per_label_id())

    @property
    def mean_loss_dyns_per_label(self) -> dict[str | int, pd.Series]:
        """``{label: mean EMA Series}`` over the rows of each label.

        Keyed by label name when the source has names (a Datumaro export / Dataset, or ``label_names``),
        else by label id. Each Series is laid out like :attr:`mean_loss_dyns`.
        """
        per_id = self._per_label_id()
        if self._label_names is None:
            return dict(per_id)
        return {self._label_names[label]: series for label, series in per_id.items()}

    # ------------------------------------------------------------------ candidates
    def get_top_k_cands(self, top_k: int) -> list[NoisyLabelCandidate]:
        """The ``top_k`` rows with the highest last EMA, as noisy-label candidates.

        Parameters
        ----------
        top_k : int
            ``1 <= top_k <= R``.

        Returns
        -------
        list of NoisyLabelCandidate
            Sorted by descending ``metric`` (last EMA); ties keep source order.
        """
        n = self._scores.size
        if isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral) or not 1 <= top_k <= n:
            raise ValueError(f"top_k must be an integer between 1 and the number of rows ({n}), got {top_k!r}")
        rows = np.argsort(-self._scores, kind="stable")[: int(top_k)]
        return [NoisyLabelCandidate(_py(self._item_ids[r]), _py(self._subsets[r]), int(self._ann_ids[r]),
                                    int(self._labels[r]), float(self._scores[r])) for r in rows]

    # ------------------------------------------------------------------ plotting
    def _frame_row(self, cand: NoisyLabelCandidate) -> pd.Series:
        key = (cand.id, cand.subset, cand.ann_id, cand.label_id)
        hits = np.flatnonzero((self._item_ids == cand.id) & (self._subsets == cand.subset)
                              & (self._ann_ids == cand.ann_id) & (self._labels == cand.label_id))
        if hits.size != 1:
            raise ValueError(f"candidate {key} matches {hits.size} rows of this analyzer; it must match exactly one"
                             + (" (re-index annotation ids so they are unique)" if hits.size else ""))
        position = int(np.flatnonzero(self._order == hits[0])[0])
        return self._df.iloc[position]

    def plot_ema_loss_dynamics(self, candidates: Sequence[NoisyLabelCandidate], mode: str = "mean",
                               mean_plot_style: str = "--", mean_plot_color: str = "k",
                               figsize: tuple[float, float] = (4, 3), save_path: PathLike | None = None,
                               **kwargs: Any):
        """Plot the candidates' EMA curves against the dataset mean or their label's mean.

        Parameters
        ----------
        candidates : sequence of NoisyLabelCandidate
            E.g. from :meth:`get_top_k_cands`.
        mode : {'mean', 'label_mean'}, default='mean'
            ``'mean'``: one panel, against the mean over all rows. ``'label_mean'``: one panel per
            candidate label (ascending ids), against that label's mean.
        mean_plot_style, mean_plot_color : str
            Line style and colour of the mean curve.
        figsize : (float, float), default=(4, 3)
            Size of one panel; the figure is ``n_panels`` panels wide.
        save_path : path, optional
            Also write a PNG there (atomically).
        **kwargs
            Passed to ``Axes.plot`` for the candidate curves.

        Returns
        -------
        matplotlib.figure.Figure
            Made without pyplot, so no global figure is left open.
        """
        from matplotlib.figure import Figure

        candidates = list(candidates)
        if mode == "mean":
            groups: dict[int | None, list[NoisyLabelCandidate]] = {None: candidates}
        elif mode == "label_mean":
            if not candidates:
                raise ValueError("mode='label_mean' needs at least one candidate")
            groups = defaultdict(list)
            for cand in candidates:
                groups[cand.label_id].append(cand)
        else:
            raise ValueError(f"mode={mode!r} is not allowed, it should be one of {PLOT_MODES}")
        for cand in candidates:
            if not isinstance(cand, NoisyLabelCandidate):
                raise ValueError(  # noqa: TRY004
                    f"candidates must be NoisyLabelCandidate objects, got {type(cand).__name__}")
        keys = sorted(groups, key=lambda k: -1 if k is None else k)
        fig = Figure(figsize=(len(keys) * figsize[0], figsize[1]), layout="constrained")
        axes = fig.subplots(1, len(keys), squeeze=False)[0]
        per_label = self._per_label_id() if mode == "label_mean" else {}
        for ax, label in zip(axes, keys):
            mean = (self.mean_loss_dyns if label is None else per_label[label]).iloc[1:].dropna()
            ax.plot(np.asarray(mean.index, dtype=float), mean.to_numpy(), color=mean_plot_color,
                    linestyle=mean_plot_style, label="mean")
            for cand in groups[label]:
                row = self._frame_row(cand).iloc[1:].dropna()
                ax.plot(np.asarray(row.index, dtype=float), row.to_numpy(),
                        label=f"id={cand.id}, subset={cand.subset}, ann_id={cand.ann_id}, label_id={cand.label_id}",
                        **kwargs)
            ax.set_ylabel("EMA training loss dynamics")
            ax.set_xlabel("Training iterations" if self._step_name == "iteration" else "Training epochs")
            if label is None:
                title = "Compare the candidates with the average of dataset"
            else:
                name = self._label_names[label] if self._label_names is not None else f"label {label}"
                title = f"Compare the candidates with the average of ({name})"
            ax.set_title(title, fontsize="medium" if len(keys) == 1 else "small", wrap=True)
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), fancybox=True, shadow=True, ncol=1,
                      fontsize="small" if len(keys) == 1 else "x-small")
        if save_path is not None:
            with atomic_path(save_path) as tmp:
                fig.savefig(tmp, format="png", bbox_inches="tight")
        return fig

    def __repr__(self) -> str:
        return (f"LossDynamicsAnalyzer(rows={self._losses.shape[0]}, steps={self._losses.shape[1]}, "
                f"alpha={self._alpha})")


def _py(value: Any) -> Any:
    """numpy scalars -> Python scalars (candidate fields stay plain, printable and hashable)."""
    return value.item() if isinstance(value, np.generic) else value


# ---------------------------------------------------------------------------------------------- interpreter
class LossDynamicsInterpreter(DatasetLevelInterpreter):
    """Rank samples by the last EMA of their training loss.

    Uses the recording's ``losses`` (N, E); a recording without them (e.g. InterpretDL's, which has only
    ``td``) is scored on the cross-entropy ``-log p(assigned label)`` derived from ``td``, and
    :meth:`note` says so. Needs ``labels``.

    Parameters
    ----------
    alpha : float, default=0.001
        EMA smoothing factor, ``0 < alpha <= 1``. With per-epoch losses and a small alpha the last EMA
        is close to ``alpha * sum(losses)``, so the ranking equals the mean-loss ranking; a larger alpha
        weighs the late epochs more.

    Notes
    -----
    Scores: ``scores[i]`` = last EMA of sample ``i``'s loss; higher = more likely mislabeled. After
    :meth:`interpret`, ``analyzer_`` holds the :class:`LossDynamicsAnalyzer` (frame, candidates, plots) and
    ``losses_derived_`` tells whether the losses came from ``td``. The EMA runs once; the analyzer's
    per-step frame is built only when asked for.
    """

    name = "ema"
    summary = "EMA of the per-sample training loss (Datumaro); cross-entropy from td without 'losses'"
    requires = ("labels",)
    prefers = ("losses",)
    listing_order = 30

    @classmethod
    def note(cls, recording: Recording, **params: Any) -> str | None:
        return LOSSES_DERIVED_NOTE if recording.losses_derived else None

    def __init__(self, alpha: float = 0.001):
        super().__init__(model=None, device="cpu")
        self.alpha = _check_alpha(alpha)
        self.analyzer_: LossDynamicsAnalyzer | None = None
        self.losses_derived_: bool | None = None

    def _score(self, record: Recording) -> np.ndarray:
        record.require("labels", needed_by="ema")
        self.analyzer_ = LossDynamicsAnalyzer.from_recording(record, alpha=self.alpha, derive_losses=True)
        self.losses_derived_ = record.losses_derived
        return self.analyzer_.scores
