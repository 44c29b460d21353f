"""BHDF: a learned detector that reads a sample's training dynamics (Jia et al., AAAI 2023).

"Beyond Hand-Designed Features": instead of a hand-made statistic (AUM, mean loss, forgetting counts), a
small LSTM reads the curve of the assigned label's probability over training, ``td[:, :, 0]``, and
outputs P(label is wrong). InterpretDL 0.8 ships this as ``interpretdl.BHDFInterpreter``; this module
keeps its architecture and parameter names, so state dicts move between the two libraries unchanged.

Any training length
    Recordings differ in length (5 to 300 epochs are supported). Every curve is resampled onto a fixed
    grid of ``grid`` points over training progress (0 to 100 %) by exact area averaging: epoch ``e``
    holds its value over ``[e, e + 1)``, and output point ``g`` is the mean of that step function over
    ``[g E / G, (g + 1) E / G)``. This is plain block averaging when ``E`` is a multiple of ``G``,
    repetition when ``E < G``, the identity when ``E == G``, and it always preserves the curve's mean.
    The shipped detector was trained on such resampled curves from runs of 10 to 200 epochs (see
    ``assets/MODEL_CARD.md``). A fixed short grid also makes inference several times faster than feeding
    200-step sequences. ``grid=None`` feeds the raw curve, as InterpretDL does.

Relative to the recording
    The shipped detector reads each curve minus the recording's per-epoch median curve
    (:func:`center_dynamics`): how far a sample lags behind or runs ahead of the typical sample of the
    same run. This removes what differs between whole runs (an easy data set learned in two epochs, a
    weak model that never exceeds 0.5) and keeps what differs between samples, which is what transfers to
    data sets and models the detector never saw. A recording should therefore be scored as a whole.
    ``center=False`` feeds absolute probabilities, as InterpretDL does.

With the run's context
    Centring hides where the run itself is: whether the typical sample is still at 0.3 or already
    memorised at 0.99, which decides which part of a curve separates wrong labels from hard ones (before
    memorisation early epochs do, in an under-fitting run late ones). With ``context=True`` (the shipped
    detector) the sequence the LSTM reads is the recording's median curve (``grid`` points) followed by
    the sample's centred curve (``grid`` points): the same single input channel, ``2 * grid`` steps.
    The median prefix is the same for every sample of a recording, so :class:`BHDFInterpreter` runs it
    through the LSTM once and starts every sample from the resulting state; InterpretDL's ``LSTM`` fed
    the full ``2 * grid`` sequence gives the same scores.

Outputs
    :class:`LSTMDetector` returns **logits** (B, 2) (class 1 = mislabeled), which keeps training with
    cross-entropy numerically stable. :class:`LSTM` is the same network whose ``forward`` applies the
    softmax, exactly like InterpretDL's ``LSTM``. The saved weights are identical either way.
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import numpy as np

from ..common.atomic import PathLike
from ..common.state_dict import load_state_dict
from ..recording.recording import Recording
from .abc_interpreter import DatasetLevelInterpreter

__all__ = [  # LSTMDetector and LSTM: bhdf_network (also reachable here, imported on first use)
    "BHDFInterpreter",
    "resample_dynamics",
    "center_dynamics",
    "prepare_curves",
    "split_context",
    "default_weights_path",
    "load_detector_weights",
    "check_state_dict",
    "DEFAULT_GRID",
    "SUPPORTED_EPOCHS",
    "N_PARAMETERS",
]

DEFAULT_GRID = 32
"""Number of points every curve is resampled to before the shipped LSTM reads it."""
SUPPORTED_EPOCHS = (5, 300)
"""Recording lengths (epochs) the shipped detector is validated for; others work but warn."""
N_PARAMETERS = 50_562
"""Parameters of the detector: 2-layer LSTM(1 -> 64) + Linear(64 -> 2)."""
WEIGHTS_FILE = "noise_detector_trained.pdparams"
OUTPUTS = ("auto", "logits", "probabilities")


def __getattr__(name: str):
    # PEP 562: the Paddle network is imported on first use, so this module (and the registry) work without Paddle
    if name in ("LSTMDetector", "LSTM"):
        from . import bhdf_network

        return getattr(bhdf_network, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------- resampling (numpy core)
def resample_dynamics(curves, grid: Optional[int] = DEFAULT_GRID) -> np.ndarray:
    """Resample per-sample curves of any length onto ``grid`` points of training progress.

    Epoch ``e`` of ``E`` is treated as a step of width ``1 / E`` on ``[0, 1)``; output point ``g`` is the
    exact mean of that step function over ``[g / G, (g + 1) / G)``. The result's row means equal the input
    row means.

    Parameters
    ----------
    curves : array-like of shape (N, E)
        E.g. ``td[:, :, 0]``, the assigned label's probability per epoch.
    grid : int or None, default=DEFAULT_GRID
        ``G``, the number of output points; ``None`` returns the curves unchanged (as float32).

    Returns
    -------
    ndarray of shape (N, G), float32
    """
    x = np.asarray(curves)
    if x.ndim != 2 or x.shape[1] < 1:
        raise ValueError(f"curves must have shape (N, E) with E >= 1, got {x.shape}")
    if grid is None or int(grid) == x.shape[1]:
        return np.ascontiguousarray(x, dtype=np.float32)
    if isinstance(grid, bool) or not isinstance(grid, (int, np.integer)) or grid < 1:
        raise ValueError(f"grid must be a positive integer or None, got {grid!r}")
    n_epochs = x.shape[1]
    x = x.astype(np.float64)
    cum = np.zeros((x.shape[0], n_epochs + 1))
    np.cumsum(x, axis=1, out=cum[:, 1:])
    bounds = np.linspace(0.0, n_epochs, int(grid) + 1)             # in epoch units
    step = np.minimum(np.floor(bounds).astype(np.int64), n_epochs - 1)
    frac = bounds - step                                           # in [0, 1]; == 1 only at the right end
    area = cum[:, step] + frac * x[:, step]                        # integral of the step function up to bounds
    return (np.diff(area, axis=1) * (grid / n_epochs)).astype(np.float32)


def center_dynamics(curves, median: Optional[np.ndarray] = None) -> np.ndarray:
    """Subtract the per-epoch median over samples: ``x[i, e] - median_j x[j, e]``.

    Parameters
    ----------
    curves : array-like of shape (N, E)
        All samples of one recording (the median is taken over them).
    median : ndarray of shape (1, E), optional
        That median when the caller already has it.

    Returns
    -------
    ndarray of shape (N, E), float32, values in [-1, 1] for probabilities.
    """
    x = np.asarray(curves, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"curves must have shape (N, E), got {x.shape}")
    return x - (np.median(x, axis=0, keepdims=True) if median is None else median)


def prepare_curves(curves, grid: Optional[int] = DEFAULT_GRID, center: bool = True,
                   context: bool = False) -> np.ndarray:
    """The detector's input: :func:`resample_dynamics` onto ``grid``, :func:`center_dynamics`, median prefix.

    The shipped detector expects ``grid=32, center=True, context=True`` (stored in its JSON); feed InterpretDL
    ``prepare_curves(td[:, :, 0], 32, True, True)[:, :, None]`` to reproduce our scores with our weights.

    Parameters
    ----------
    curves : array-like of shape (N, E)
        ``td[:, :, 0]`` of one whole recording.
    grid : int or None
    center : bool
    context : bool, default=False
        Prefix every row with the recording's per-epoch median curve (after resampling).

    Returns
    -------
    ndarray of shape (N, T), float32
        ``T = G`` (``E`` with ``grid=None``); ``2 T`` with ``context``: ``[:, :T]`` is the median curve
        (identical rows), ``[:, T:]`` the (centred) sample curve.
    """
    x = resample_dynamics(curves, grid)
    if not (center or context):
        return x
    median = np.median(x, axis=0, keepdims=True)
    body = center_dynamics(x, median) if center else x
    if not context:
        return body
    return np.concatenate([np.broadcast_to(median, body.shape), body], axis=1)


def split_context(prepared: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Split :func:`prepare_curves` output made with ``context=True`` into (median prefix (T,), curves (N, T))."""
    x = np.asarray(prepared)
    if x.ndim != 2 or x.shape[1] % 2:
        raise ValueError(f"expected prepared curves (N, 2 T) with a context prefix, got shape {x.shape}")
    half = x.shape[1] // 2
    return x[0, :half], x[:, half:]


# --------------------------------------------------------------------------- weights
def default_weights_path() -> Path:
    """Path of the shipped ``noise_detector_trained.pdparams`` (package data; no network)."""
    return Path(__file__).resolve().parents[1] / "assets" / WEIGHTS_FILE


def _verify_sidecar_sha256(path: Path) -> None:
    """If ``<path>.sha256`` exists, check the file against it (guards against a corrupted install)."""
    sidecar = path.with_name(path.name + ".sha256")
    if not sidecar.is_file():
        return
    import hashlib

    expected = sidecar.read_text().split()[0].strip().lower()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != expected:
        raise ValueError(f"{path} does not match its checksum file {sidecar.name} (sha256 {digest}, expected "
                         f"{expected}); the installation is corrupt: reinstall interpretdl-noise")


MAX_GRID = 4096
"""Largest resampling grid a weights sidecar may ask for (the shipped detector uses 32)."""


def _weights_info(path: Path) -> Dict[str, Any]:
    """Metadata of a weights file from its ``<stem>.json`` sidecar, if any (e.g. ``{"grid": 32}``).

    ``grid`` must be null or an integer in [1, MAX_GRID]; ``center`` and ``context`` must be JSON booleans.
    """
    sidecar = path.with_suffix(".json")
    if not sidecar.is_file():
        return {}
    try:
        info = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, RecursionError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read the weights metadata {sidecar}: {exc}") from exc
    if not isinstance(info, dict):
        raise ValueError(f"the weights metadata {sidecar} must be a JSON object, got {type(info).__name__}")
    grid = info.get("grid")
    if "grid" in info and grid is not None and (isinstance(grid, bool) or not isinstance(grid, int)
                                                or not 1 <= grid <= MAX_GRID):
        raise ValueError(f"the weights metadata {sidecar}: 'grid' must be null or an integer in [1, {MAX_GRID}], "
                         f"got {grid!r}")
    for key in ("center", "context"):
        if key in info and not isinstance(info[key], bool):
            raise ValueError(f"the weights metadata {sidecar}: {key!r} must be true or false, got {info[key]!r}")
    return info


def _canonical_names(detector) -> Dict[str, str]:
    """Map every state-dict key of ``detector`` to its parameter's canonical name.

    ``paddle.nn.LSTM`` lists each weight twice (``lstm.weight_ih_l0`` and the alias
    ``lstm.0.cell.weight_ih``); files may hold either or both.
    """
    by_id = {id(p): name for name, p in detector.named_parameters()}
    return {key: by_id.get(id(t), key) for key, t in detector.state_dict().items()}


def _complete_state_dict(detector, state: Mapping[str, Any], source: str) -> Dict[str, Any]:
    own = detector.state_dict()
    canonical = _canonical_names(detector)
    unexpected = sorted(set(state) - set(own))
    missing, shapes, full = [], [], {}
    for key, tensor in own.items():
        value = state.get(key, state.get(canonical[key]))
        if value is None:
            value = next((state[k] for k, c in canonical.items() if c == canonical[key] and k in state), None)
        if value is None:
            missing.append(canonical[key])
            continue
        shape = list(getattr(value, "shape", np.shape(value)))
        if shape != list(tensor.shape):
            shapes.append(f"{key}: {shape} (expected {list(tensor.shape)})")
        full[key] = value
    if missing or unexpected or shapes:
        raise ValueError(f"{source} does not fit the detector {type(detector).__name__}: missing keys "
                         f"{sorted(set(missing))}, unexpected keys {unexpected}, wrong shapes {sorted(set(shapes))}")
    return full


def check_state_dict(detector, state: Mapping[str, Any], *, source: str = "state dict") -> None:
    """Raise ``ValueError`` unless ``state`` holds every parameter of ``detector`` with the right shape and
    no unknown key (``paddle.nn.LSTM``'s alias keys ``lstm.N.cell.*`` are optional)."""
    _complete_state_dict(detector, state, source)


def load_detector_weights(detector, path: PathLike):
    """Load a ``.pdparams`` state dict into ``detector`` after checking names and shapes; return it.

    The file is read by :func:`interpretdl_noise.common.state_dict.load_state_dict`, which rebuilds numpy
    arrays only and refuses any other pickled object, so a malicious file cannot run code. The shipped
    file is also checked against its sha256; downloads are verified by ``resolve_weights``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no detector weights at {path}")
    state = load_state_dict(path)
    full = _complete_state_dict(detector, state, str(path))
    broken = sorted(k for k, v in full.items() if not np.isfinite(np.asarray(v, dtype=np.float64)).all())
    if broken:
        raise ValueError(f"{path} holds NaN or inf in {broken[:5]}; these weights would give NaN scores for every "
                         "sample. Retrain or re-download them")
    detector.set_state_dict(full)
    return detector


def _resolve_weights_spec(weights, allow_unverified: bool) -> Tuple[Path, Dict[str, Any]]:
    """Turn ``weights=`` (None, local path, registry name or URL) into a local file and its metadata."""
    if weights is None:
        path = default_weights_path()
        if not path.is_file():
            raise FileNotFoundError(f"the shipped detector weights are missing ({path}); reinstall "
                                    "interpretdl-noise or pass weights=<local .pdparams path>")
        _verify_sidecar_sha256(path)
        return path, _weights_info(path)
    if isinstance(weights, os.PathLike) or (isinstance(weights, str) and Path(weights).expanduser().is_file()):
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"no detector weights at {path}")
        return path, _weights_info(path)
    if not isinstance(weights, str):
        raise ValueError(f"weights must be None, a local path, a registry name or a URL, got {type(weights).__name__}")
    if "://" not in weights and (os.sep in weights or "/" in weights or Path(weights).suffix in (".pdparams", ".zip")):
        raise FileNotFoundError(f"no detector weights at {weights!r} (not an existing file); give an existing "
                                ".pdparams path, a registry name, a URL, or weights=None for the shipped weights")
    try:
        from .bhdf_weights import resolve_weights
    except ImportError as exc:
        raise ValueError(f"weights={weights!r} is not a local file and this installation has no weights "
                         "downloader; use the shipped weights (weights=None) or a local .pdparams path") from exc
    path = Path(resolve_weights(weights, allow_unverified=allow_unverified))
    if path.is_dir():
        found = sorted(path.rglob("*.pdparams"))
        if len(found) != 1:
            raise ValueError(f"weights={weights!r} resolved to the folder {path}, which holds {len(found)} .pdparams "
                             "files; expected exactly one")
        path = found[0]
    info = _weights_info(path)
    try:
        from .bhdf_weights import WEIGHTS_REGISTRY

        entry = WEIGHTS_REGISTRY.get(weights)
    except ImportError:
        entry = None
    if entry is not None and "grid" not in info:
        grid = entry.get("grid", "unset") if isinstance(entry, Mapping) else getattr(entry, "grid", "unset")
        if grid != "unset":
            info["grid"] = grid
    return path, info


# --------------------------------------------------------------------------- the interpreter
class BHDFInterpreter(DatasetLevelInterpreter):
    """Score samples by P(mislabeled) from an LSTM that reads ``td[:, :, 0]``.

    Parameters
    ----------
    detector : paddle.nn.Layer, optional
        A network mapping curves (B, T) to (B, 2) logits or probabilities, e.g. :class:`LSTMDetector` or
        InterpretDL's ``LSTM``. Default: a new :class:`LSTMDetector` with the ``weights``.
    weights : None or path or str, default=None
        ``None`` with no ``detector``: the shipped ``assets/noise_detector_trained.pdparams`` (no network).
        Otherwise a local ``.pdparams`` file, a name of ``interpreter.bhdf_weights.WEIGHTS_REGISTRY`` or a URL
        (downloaded once to the user cache and sha256-verified). With a ``detector``, the weights are
        loaded into it.
    device : str, default='cpu'
        ``'cpu'`` or ``'gpu:N'``; only set while scoring, then restored.
    grid : int or None or 'auto', default='auto'
        Resampling grid of the curves (see :func:`resample_dynamics`). ``'auto'``: the grid stored with
        the weights (``<weights>.json``), else the detector's ``grid`` attribute, else ``DEFAULT_GRID`` for
        weights without metadata, else ``None`` (raw curves, InterpretDL's behaviour, for foreign
        detectors). Use ``grid=None, center=False`` with InterpretDL's original weights.
    center : bool or 'auto', default='auto'
        Centre curves on the recording's per-epoch median (:func:`center_dynamics`). ``'auto'`` follows
        the same rules as ``grid`` (``True`` for our weights, ``False`` for foreign detectors).
    context : bool or 'auto', default='auto'
        Prefix the recording's median curve (see :func:`prepare_curves`). ``'auto'`` follows the same
        rules as ``grid`` (``True`` for our weights, ``False`` for foreign detectors).
    batch_size : int, default=256
        Curves per forward pass.
    detector_output : {'auto', 'logits', 'probabilities'}, default='auto'
        What the detector returns. ``'auto'``: logits for :class:`LSTMDetector` (and probabilities for
        its :class:`LSTM` variant); for other networks, rows that are non-negative and sum to 1 are taken
        as probabilities.
    allow_unverified : bool, default=False
        Passed to the downloader for registry entries without a known checksum.

    Notes
    -----
    Scores (``predictions``) are P(mislabeled) in [0, 1]: higher = more likely mislabeled. ``order`` is
    ascending, so the most suspicious sample is last, as in InterpretDL.

    Examples
    --------
    >>> order, p = BHDFInterpreter().interpret(training_dynamics_path="run/training_dynamics.npz")  # doctest: +SKIP
    >>> suspects = order[::-1][:20]                                                                    # doctest: +SKIP
    """

    name = "bhdf"
    summary = "LSTM on the assigned-label probability curve (Jia et al. 2023)"
    needs_paddle = True
    listing_order = 10

    def __init__(self, detector=None, weights: Union[None, PathLike, str] = None, device: str = "cpu", *,
                 grid: Union[int, None, str] = "auto", center: Union[bool, str] = "auto",
                 context: Union[bool, str] = "auto", batch_size: int = 256,
                 detector_output: str = "auto", allow_unverified: bool = False):
        if detector_output not in OUTPUTS:
            raise ValueError(f"detector_output must be one of {OUTPUTS}, got {detector_output!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if not (grid is None or grid == "auto" or (isinstance(grid, (int, np.integer)) and not isinstance(grid, bool)
                                                  and grid >= 1)):
            raise ValueError(f"grid must be 'auto', None or a positive integer, got {grid!r}")
        if center not in ("auto", True, False):
            raise ValueError(f"center must be 'auto', True or False, got {center!r}")
        if context not in ("auto", True, False):
            raise ValueError(f"context must be 'auto', True or False, got {context!r}")
        from .bhdf_network import LSTMDetector  # ImportError naming the [cpu] / [gpu] extras without Paddle

        info: Dict[str, Any] = {}
        self.weights_path: Optional[Path] = None
        user_grid = detector is not None and hasattr(detector, "grid")
        if detector is None or weights is not None:
            self.weights_path, info = _resolve_weights_spec(weights, allow_unverified)
            if detector is None:
                detector = LSTMDetector()
            load_detector_weights(detector, self.weights_path)
        elif not callable(detector):
            raise ValueError(f"detector must be a callable paddle.nn.Layer, got {type(detector).__name__}")
        super().__init__(model=detector, device=device)
        self.detector = detector
        no_metadata = self.weights_path is not None and not user_grid
        if no_metadata and any(value == "auto" and key not in info
                               for key, value in (("grid", grid), ("center", center))):
            warnings.warn(f"no metadata beside {self.weights_path}; assuming this package's convention grid="
                          f"{DEFAULT_GRID}, center=True, context=True. Pass grid=None, center=False, context=False "
                          "for detectors trained on raw curves (e.g. InterpretDL's original weights).",
                          UserWarning, stacklevel=2)
        if grid == "auto":
            grid = info["grid"] if "grid" in info else DEFAULT_GRID if no_metadata else getattr(detector, "grid", None)
        if center == "auto":
            center = info["center"] if "center" in info else True if no_metadata else getattr(detector, "center", False)
        if context == "auto":
            if "context" in info:
                context = info["context"]
            elif no_metadata:     # no JSON: this package's convention; a JSON without the key predates it
                context = not info
            else:
                context = getattr(detector, "context", False)
        self.grid: Optional[int] = None if grid is None else int(grid)
        self.center = bool(center)
        self.context = bool(context)
        if isinstance(detector, LSTMDetector) and self.weights_path is not None:
            detector.grid, detector.center, detector.context = self.grid, self.center, self.context
        self.batch_size = int(batch_size)
        self.detector_output = detector_output
        self.weights_info = info
        if hasattr(detector, "eval"):
            detector.eval()

    # ------------------------------------------------------------------ scoring
    def _output_kind(self) -> str:
        from .bhdf_network import LSTMDetector

        if self.detector_output != "auto":
            return self.detector_output
        # LSTMDetector and its softmax variant LSTM both expose .logits()
        return "logits" if isinstance(self.detector, LSTMDetector) else "auto"

    def predict_curves(self, curves) -> np.ndarray:
        """P(mislabeled) for assigned-label probability curves.

        Parameters
        ----------
        curves : array-like of shape (N, E)
            ``td[:, :, 0]`` of one whole recording (any ``E``; resampled to ``self.grid``; with
            ``self.center`` the per-epoch median over these ``N`` samples is subtracted, so pass all of
            them, not a handful).

        Returns
        -------
        ndarray of shape (N,), float64 in [0, 1]; higher = more likely mislabeled.
        """
        x = np.asarray(curves)
        if x.ndim != 2 or x.shape[0] == 0:
            raise ValueError(f"curves must have shape (N, E) with N >= 1, got {x.shape}")
        n_epochs = x.shape[1]
        if n_epochs < 2:
            raise ValueError(f"a recording with {n_epochs} epoch has no dynamics to read; record at least "
                             f"{SUPPORTED_EPOCHS[0]} epochs")
        if not SUPPORTED_EPOCHS[0] <= n_epochs <= SUPPORTED_EPOCHS[1]:
            warnings.warn(f"the recording has {n_epochs} epochs; the detector is validated for "
                          f"{SUPPORTED_EPOCHS[0]}-{SUPPORTED_EPOCHS[1]} epochs, so scores may be less reliable",
                          UserWarning, stacklevel=2)
        if (self.center or self.context) and x.shape[0] < 20:
            warnings.warn(f"only {x.shape[0]} curves: the detector compares each sample with the recording's "
                          "median curve, so score whole recordings, not a few samples", UserWarning, stacklevel=2)
        from .._paddle import paddle
        from .bhdf_network import LSTMDetector

        x = prepare_curves(x, self.grid, self.center, self.context)
        kind = self._output_kind()
        logits_fn = self.detector.logits if kind == "logits" and hasattr(self.detector, "logits") else self.detector
        # the median prefix is shared: read it once, then start every sample from that state
        shared_prefix = self.context and isinstance(self.detector, LSTMDetector)
        out = np.empty((x.shape[0], 2), dtype=np.float32)
        was_training = getattr(self.detector, "training", False)
        if hasattr(self.detector, "eval"):
            self.detector.eval()
        try:
            with self.device_scope(), paddle.no_grad():
                state = None
                if shared_prefix:
                    prefix, x = split_context(x)
                    state = self.detector.prefix_state(prefix)
                for start in range(0, x.shape[0], self.batch_size):
                    batch = paddle.to_tensor(x[start:start + self.batch_size, :, None])
                    if shared_prefix:
                        size = batch.shape[0]
                        initial = tuple(paddle.expand(t, [t.shape[0], size, t.shape[2]]) for t in state)
                        logits = self.detector.logits(batch, initial)
                        if kind != "logits":            # the LSTM variant returns probabilities
                            logits = paddle.nn.functional.softmax(logits, axis=-1)
                        out[start:start + size] = logits.numpy()
                    else:
                        out[start:start + self.batch_size] = logits_fn(batch).numpy()
        finally:
            if was_training:
                self.detector.train()
        if not np.isfinite(out).all():
            bad = np.flatnonzero(~np.isfinite(out).all(axis=1))
            raise ValueError(f"the detector returned NaN or inf for {bad.size} of {out.shape[0]} curves (e.g. rows "
                             f"{bad[:5].tolist()}); its weights or the recording are broken, so no scores are given")
        if kind == "auto":
            kind = ("probabilities" if out.min() >= 0 and np.allclose(out.sum(axis=1), 1.0, atol=1e-3)
                    else "logits")
        if kind == "probabilities":
            return out[:, 1].astype(np.float64)
        # softmax over two logits = logistic of their difference (stable for large logits)
        diff = (out[:, 1] - out[:, 0]).astype(np.float64)
        return 0.5 * (1.0 + np.tanh(0.5 * diff))

    def _score(self, record: Recording) -> np.ndarray:
        return self.predict_curves(record.td[:, :, 0])

    def evaluate(self, label_flip=None, *, k: Optional[int] = None,
                 threshold: Optional[float] = 0.5) -> Dict[str, float]:
        """AUROC, AP and precision / recall / F1 at P >= ``threshold`` (0.5) and in the top ``k``.

        See :meth:`DatasetLevelInterpreter.evaluate`; ``label_flip`` defaults to the recording's own.
        """
        return super().evaluate(label_flip, k=k, threshold=threshold)
