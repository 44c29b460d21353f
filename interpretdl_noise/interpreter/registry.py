"""Registry of the mislabel detectors, by the names used on the command line.

A detector registers itself: subclassing :class:`~interpretdl_noise.interpreter.DatasetLevelInterpreter`
with a class attribute ``name`` adds the class here (cleanlab's ``IssueManager`` + ``REGISTRY`` pattern).
The class also declares ``summary``, ``requires`` (recording keys it cannot run without), ``prefers``
(keys it uses when present), ``needs_data`` (raw ``(x, y)`` instead of a recording) and
``listing_order``; special cases override its classmethods ``applicability(recording)`` and
``note(recording)``. Nothing here names a detector.

On first use the registry imports every module of :mod:`interpretdl_noise.interpreter`, each guarded, so
the built-in detectors are listed without importing them by hand, and a module that fails to import
(e.g. a missing optional dependency) does not break the others: its error is kept in
:func:`import_errors` and quoted when its name is asked for. Detectors whose dependency (Paddle,
cleanlab) is missing still register and report it through :func:`applicability`; :func:`run_detector`
raises :class:`DetectorNotApplicable` with that reason. A detector defined elsewhere registers when its
module is imported.

Every detector scores samples so that a **higher score means more likely mislabeled**.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import numpy as np

from ..recording.recording import Recording

__all__ = [
    "DetectorNotApplicable",
    "align_data",
    "applicability",
    "create_detector",
    "detector_class",
    "detector_names",
    "detector_note",
    "get_spec",
    "import_errors",
    "load_detector_class",
    "register",
    "run_detector",
    "unregister",
]

_PKG = "interpretdl_noise.interpreter"
_REGISTRY: dict[str, type] = {}
_IMPORT_ERRORS: dict[str, str] = {}
_discovered = False


class DetectorNotApplicable(RuntimeError):
    """A detector cannot run here; ``reason`` says why (missing module, input or dependency)."""

    def __init__(self, name: str, reason: str):
        super().__init__(f"{name}: not applicable: {reason}")
        self.name = name
        self.reason = reason


def register(cls: type) -> type:
    """Add detector class ``cls`` under ``cls.name`` (called by ``DatasetLevelInterpreter.__init_subclass__``).

    Re-defining the same class (same module and qualified name, e.g. a reloaded module) replaces it; another
    class under a taken name is refused with ``ValueError``.
    """
    name = cls.name
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"{cls.__qualname__}.name must be an identifier-like string, got {name!r}")
    old = _REGISTRY.get(name)
    if old is not None and (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
        raise ValueError(f"detector name {name!r} is already registered by {old.__module__}.{old.__qualname__}")
    _REGISTRY[name] = cls
    return cls


def unregister(name: str) -> None:
    """Remove ``name`` from the registry (for tests and plug-ins that replace a detector)."""
    _REGISTRY.pop(name, None)


def _discover() -> None:
    """Import every module of the interpreter package once, each guarded, so built-in detectors register."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    package = importlib.import_module(_PKG)
    for info in pkgutil.iter_modules(package.__path__):
        module = f"{_PKG}.{info.name}"
        try:
            importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001  (a broken or dependency-less module must not hide the others)
            _IMPORT_ERRORS[module] = f"{type(exc).__name__}: {exc}"


def import_errors() -> dict[str, str]:
    """``{module: error}`` for interpreter modules that failed to import during discovery."""
    _discover()
    return dict(_IMPORT_ERRORS)


def detector_names() -> list[str]:
    """All registered names, in listing order (``listing_order``, then registration order)."""
    _discover()
    position = {name: i for i, name in enumerate(_REGISTRY)}
    return sorted(_REGISTRY, key=lambda name: (_REGISTRY[name].listing_order, position[name]))


def detector_class(name: str) -> type:
    """The class registered as ``name``; ``ValueError`` listing the valid names otherwise."""
    _discover()
    if name not in _REGISTRY:
        failed = "".join(f"; {module} failed to import ({error})" for module, error in _IMPORT_ERRORS.items())
        raise ValueError(f"unknown detector {name!r}; choose from {detector_names()}{failed}")
    return _REGISTRY[name]


# the class carries what used to be the registry entry: name, summary, requires, prefers, needs_data
get_spec = detector_class
load_detector_class = detector_class


def create_detector(name: str, **kwargs: Any):
    """Instantiate detector ``name`` with ``kwargs``.

    Raises
    ------
    DetectorNotApplicable
        When the constructor raises ImportError (missing optional dependency, e.g. Paddle or cleanlab) or
        FileNotFoundError (e.g. default weights missing).
    """
    cls = detector_class(name)
    try:
        return cls(**kwargs)
    except ImportError as exc:
        raise DetectorNotApplicable(name, str(exc)) from exc
    except FileNotFoundError as exc:  # e.g. default weights not shipped in this install
        raise DetectorNotApplicable(name, f"a file it needs is missing: {exc}") from exc


def applicability(name: str, record: Any = None, *, has_data: bool = False) -> str | None:
    """Why detector ``name`` cannot run on ``record``, or None when it can.

    Parameters
    ----------
    name : str
        A registered name.
    record : Recording or any accepted form, optional
        Its keys are checked against the detector's ``requires``.
    has_data : bool, default=False
        Whether the raw data ``(x, y)`` is available (for detectors with ``needs_data``).

    Returns
    -------
    str or None
        The reason, e.g. ``"recording has no 'labels' (ema needs it; save the recording with its labels)"``.
    """
    rec = None if record is None else Recording.coerce(record)
    return detector_class(name).applicability(rec, has_data=has_data)


def detector_note(name: str, record: Any, **kwargs: Any) -> str | None:
    """A remark on how ``name`` (built with ``kwargs``) runs on ``record``, e.g. derived losses, or None."""
    return detector_class(name).note(Recording.coerce(record), **kwargs)


def align_data(record: Any, x, y=None) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``x`` (and ``y``) in the recording's row order.

    Parameters
    ----------
    record : Recording or any accepted form
        N rows.
    x : array-like of shape (M, ...)
        Raw inputs indexed by dataset index: row ``i`` of the recording is ``x[sample_ids[i]]`` when the
        recording has ``sample_ids``, else ``x[i]`` (then ``M`` must equal ``N``).
    y : array-like of shape (M,) or (N,), optional
        Given labels, indexed like ``x``. Default: the recording's assigned labels.

    Returns
    -------
    x_rows : ndarray of shape (N, ...)
    y_rows : ndarray of shape (N,), int64
    """
    rec = Recording.coerce(record)
    x = np.asarray(x)
    n = rec.n_samples
    if "sample_ids" not in rec and x.shape[0] != n:
        raise ValueError(f"x has {x.shape[0]} rows but the recording has {n} samples (and no sample_ids)")
    ids = rec.sample_ids
    if ids.size and (ids.min() < 0 or ids.max() >= x.shape[0]):
        raise ValueError(f"the recording's sample_ids range over [{ids.min()}, {ids.max()}] but x has only "
                         f"{x.shape[0]} rows")
    if y is None:
        if rec.assigned_labels is None:
            raise ValueError("the recording has no 'labels'; pass y (the given labels) explicitly")
        y_rows = rec.assigned_labels
    else:
        y = np.asarray(y).reshape(-1)
        y_rows = (y[ids] if y.shape[0] == x.shape[0] else y).astype(np.int64)
        if y_rows.shape[0] != n:
            raise ValueError(f"y has {y.shape[0]} entries; expected {x.shape[0]} (like x) or {n} (recording rows)")
    return x[ids], y_rows


def run_detector(name: str, record: Any, *, x=None, y=None, **kwargs: Any) -> np.ndarray:
    """Score ``record`` with detector ``name``.

    Parameters
    ----------
    name : str
        A registered name.
    record : Recording or any accepted form (path, mapping, recorder)
        Coerced once with :meth:`Recording.coerce` (a ``Recording`` is not checked again).
    x, y : array-like, optional
        Raw data for detectors that need it (see :func:`align_data`).
    **kwargs
        Constructor arguments for the detector.

    Returns
    -------
    ndarray of shape (N,), float64
        Higher = more likely mislabeled.

    Raises
    ------
    DetectorNotApplicable
        With the reason from :func:`applicability`.
    """
    rec = Recording.coerce(record)
    cls = detector_class(name)
    reason = cls.applicability(rec, has_data=x is not None)
    if reason is not None:
        raise DetectorNotApplicable(name, reason)
    detector = create_detector(name, **kwargs)
    if cls.needs_data:
        _, scores = detector.score_data(rec, x, y)
    else:
        _, scores = detector.score_record(rec)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if scores.shape[0] != rec.n_samples:
        raise RuntimeError(f"{name} returned {scores.shape[0]} scores for {rec.n_samples} samples")
    return scores
