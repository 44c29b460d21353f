"""Registry of the mislabel detectors, by the names used on the command line.

========================  =============================================  ==================================
name                      class                                          input
========================  =============================================  ==================================
``bhdf``                  ``bhdf.BHDFInterpreter``                       recording (``td``)
``aum``                   ``aum.AUMInterpreter``                         recording; uses ``logits`` if there
``ema``                   ``loss_dynamics.LossDynamicsInterpreter``      recording with ``losses``
``forgetting``            ``forgetting_events.ForgettingEventsInterpreter``  recording (``td``)
``datamaps``              ``data_maps.DataMapsInterpreter``              recording (``td``)
``small_loss``            ``small_loss.SmallLossInterpreter``            recording (``td``)
``confident_learning``    ``confident_learning.ConfidentLearningInterpreter``  raw data ``(x, y)``, cleanlab
========================  =============================================  ==================================

Entries import their module lazily, so a detector whose module is missing (not installed, or not
written yet) or whose optional dependency is absent does not break the others: :func:`applicability`
returns a reason string such as ``"module interpretdl_noise.interpreter.aum not found"`` and
:func:`run_detector` raises :class:`DetectorNotApplicable` with that reason.

A detector class may declare extra recording keys it needs in a class attribute ``required_keys``
(tuple of str); they are checked together with the registry entry's own ``requires``.

Every detector scores samples so that a **higher score means more likely mislabeled**.
"""
from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "DETECTORS",
    "DetectorNotApplicable",
    "DetectorSpec",
    "align_data",
    "applicability",
    "create_detector",
    "detector_names",
    "detector_note",
    "get_spec",
    "load_detector_class",
    "run_detector",
]

_PKG = "interpretdl_noise.interpreter"


@dataclass(frozen=True)
class DetectorSpec:
    """One registry entry.

    Attributes
    ----------
    name : str
        Command-line name.
    module : str
        Fully qualified module, imported only when the detector is used.
    attr : str
        Class name in ``module``.
    summary : str
        One line for listings.
    requires : tuple of str
        Recording keys the detector cannot run without.
    prefers : tuple of str
        Recording keys it uses when present (their absence is reported as a note).
    needs_data : bool
        True when it needs the raw data ``(x, y)`` rather than a recording.
    kwargs : mapping
        Default constructor keyword arguments.
    """

    name: str
    module: str
    attr: str
    summary: str
    requires: tuple[str, ...] = ()
    prefers: tuple[str, ...] = ()
    needs_data: bool = False
    kwargs: Mapping[str, Any] = field(default_factory=dict)


DETECTORS: dict[str, DetectorSpec] = {spec.name: spec for spec in (
    DetectorSpec("bhdf", f"{_PKG}.bhdf", "BHDFInterpreter",
                 "LSTM on the assigned-label probability curve (Jia et al. 2023)"),
    DetectorSpec("aum", f"{_PKG}.aum", "AUMInterpreter",
                 "area under the margin (Pleiss et al. 2020)", prefers=("logits",)),
    DetectorSpec("ema", f"{_PKG}.loss_dynamics", "LossDynamicsInterpreter",
                 "EMA of the per-sample training loss (Datumaro)", requires=("losses",)),
    DetectorSpec("forgetting", f"{_PKG}.forgetting_events", "ForgettingEventsInterpreter",
                 "forgetting-event count (Toneva et al. 2019)"),
    DetectorSpec("datamaps", f"{_PKG}.data_maps", "DataMapsInterpreter",
                 "low confidence, dataset cartography (Swayamdipta et al. 2020)"),
    DetectorSpec("small_loss", f"{_PKG}.small_loss", "SmallLossInterpreter",
                 "1 - mean assigned-label probability"),
    DetectorSpec("confident_learning", f"{_PKG}.confident_learning", "ConfidentLearningInterpreter",
                 "cleanlab label quality on K-fold out-of-sample probabilities (Northcutt et al. 2021)",
                 needs_data=True),
)}

_MISSING_HINTS = {
    "losses": "record with keep_losses=True",
    "logits": "record with keep_logits=True",
    "labels": "save the recording with its labels",
}


class DetectorNotApplicable(RuntimeError):
    """A detector cannot run here; ``reason`` says why (missing module, input or dependency)."""

    def __init__(self, name: str, reason: str):
        super().__init__(f"{name}: not applicable: {reason}")
        self.name = name
        self.reason = reason


def detector_names() -> list[str]:
    """All registered names, in listing order."""
    return list(DETECTORS)


def get_spec(name: str) -> DetectorSpec:
    """The registry entry of ``name``; ``ValueError`` listing the valid names otherwise."""
    if name not in DETECTORS:
        raise ValueError(f"unknown detector {name!r}; choose from {detector_names()}")
    return DETECTORS[name]


def load_detector_class(name: str) -> type:
    """Import and return the detector class of ``name``.

    Raises
    ------
    DetectorNotApplicable
        If its module or class does not exist, or importing it fails (e.g. an optional dependency is
        missing); the reason names the cause.
    """
    spec = get_spec(name)
    try:
        module = importlib.import_module(spec.module)
    except ModuleNotFoundError as exc:
        if exc.name == spec.module:
            raise DetectorNotApplicable(name, f"module {spec.module} not found (not available in this "
                                              "version)") from exc
        raise DetectorNotApplicable(name, f"importing {spec.module} failed: {exc}") from exc
    except ImportError as exc:
        raise DetectorNotApplicable(name, f"importing {spec.module} failed: {exc}") from exc
    cls = getattr(module, spec.attr, None)
    if cls is None:
        raise DetectorNotApplicable(name, f"{spec.module} has no class {spec.attr} (not available in this "
                                          "version)")
    return cls


def create_detector(name: str, **kwargs: Any):
    """Instantiate detector ``name`` with the entry's default kwargs updated by ``kwargs``.

    Raises
    ------
    DetectorNotApplicable
        When the class cannot be loaded, or its constructor raises ImportError (missing optional
        dependency, e.g. cleanlab) or FileNotFoundError (e.g. default weights missing).
    """
    cls = load_detector_class(name)
    params = dict(get_spec(name).kwargs)
    params.update(kwargs)
    try:
        return cls(**params)
    except ImportError as exc:
        raise DetectorNotApplicable(name, str(exc)) from exc
    except FileNotFoundError as exc:  # e.g. default weights not shipped in this install
        raise DetectorNotApplicable(name, f"a file it needs is missing: {exc}") from exc


def _required_keys(name: str, cls: type | None) -> tuple[str, ...]:
    keys = tuple(get_spec(name).requires)
    extra = getattr(cls, "required_keys", ()) if cls is not None else ()
    if isinstance(extra, (tuple, list)):
        keys += tuple(k for k in extra if isinstance(k, str) and k not in keys)
    return keys


def applicability(name: str, record: Mapping[str, Any] | None = None, *, has_data: bool = False) -> str | None:
    """Why detector ``name`` cannot run on ``record``, or None when it can.

    Parameters
    ----------
    name : str
        A registered name.
    record : mapping, optional
        A loaded recording; its keys are checked against the detector's requirements.
    has_data : bool, default=False
        Whether the raw data ``(x, y)`` is available (needed by ``confident_learning``).

    Returns
    -------
    str or None
        The reason, e.g. ``"recording has no 'losses' (record with keep_losses=True)"``.
    """
    spec = get_spec(name)
    try:
        cls = load_detector_class(name)
    except DetectorNotApplicable as exc:
        return exc.reason
    if spec.needs_data:
        if not has_data:
            return ("needs the raw training data (x, y), not only a recording: call "
                    "interpretdl_noise.compare_detectors(recording, x=x) from Python")
        if name == "confident_learning":
            try:
                from .confident_learning import require_cleanlab

                require_cleanlab()
            except ImportError as exc:
                return str(exc)
    if record is not None:
        for key in _required_keys(name, cls):
            if key not in record:
                hint = _MISSING_HINTS.get(key)
                return f"recording has no {key!r}" + (f" ({hint})" if hint else "")
    return None


def detector_note(name: str, record: Mapping[str, Any]) -> str | None:
    """A remark on how ``name`` runs on ``record`` (e.g. a preferred key is missing), or None."""
    missing = [k for k in get_spec(name).prefers if k not in record]
    if not missing:
        return None
    if name == "aum" and missing == ["logits"]:
        return "no 'logits' in the recording: margins of the recorded probabilities are used"
    return f"recording has no {', '.join(repr(k) for k in missing)}; the detector falls back to what it has"


def align_data(record: Mapping[str, Any], x, y=None) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``x`` (and ``y``) in the recording's row order.

    Parameters
    ----------
    record : mapping
        A loaded recording (N rows).
    x : array-like of shape (M, ...)
        Raw inputs indexed by dataset index: row ``i`` of the recording is ``x[sample_ids[i]]`` when the
        recording has ``sample_ids``, else ``x[i]`` (then ``M`` must equal ``N``).
    y : array-like of shape (M,) or (N,), optional
        Given labels, indexed like ``x``. Default: the recording's assigned labels ``labels[:, 0]``.

    Returns
    -------
    x_rows : ndarray of shape (N, ...)
    y_rows : ndarray of shape (N,), int64
    """
    x = np.asarray(x)
    n = record["td"].shape[0]
    ids = record.get("sample_ids")
    if ids is None:
        if x.shape[0] != n:
            raise ValueError(f"x has {x.shape[0]} rows but the recording has {n} samples (and no sample_ids)")
        ids = np.arange(n)
    ids = np.asarray(ids).astype(np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= x.shape[0]):
        raise ValueError(f"the recording's sample_ids range over [{ids.min()}, {ids.max()}] but x has only "
                         f"{x.shape[0]} rows")
    if y is None:
        if "labels" not in record:
            raise ValueError("the recording has no 'labels'; pass y (the given labels) explicitly")
        y_rows = np.asarray(record["labels"])[:, 0].astype(np.int64)
    else:
        y = np.asarray(y).reshape(-1)
        y_rows = (y[ids] if y.shape[0] == x.shape[0] else y).astype(np.int64)
        if y_rows.shape[0] != n:
            raise ValueError(f"y has {y.shape[0]} entries; expected {x.shape[0]} (like x) or {n} (recording rows)")
    return x[ids], y_rows


def run_detector(name: str, record: Mapping[str, Any], *, x=None, y=None, record_validated: bool = False,
                 **kwargs: Any) -> np.ndarray:
    """Score ``record`` with detector ``name``.

    Parameters
    ----------
    name : str
        A registered name.
    record : mapping
        A loaded recording (``td`` of shape (N, E, C) and optional keys).
    x, y : array-like, optional
        Raw data for detectors that need it (see :func:`align_data`).
    record_validated : bool, default=False
        True when ``record`` comes from :func:`~interpretdl_noise.load_training_dynamics` or
        ``validate_training_dynamics``: it is then not checked again.
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
    reason = applicability(name, record, has_data=x is not None)
    if reason is not None:
        raise DetectorNotApplicable(name, reason)
    detector = create_detector(name, **kwargs)
    if get_spec(name).needs_data:
        x_rows, y_rows = align_data(record, x, y)
        n_classes = record["td"].shape[2]
        _, scores = detector.interpret(x_rows, y_rows, n_classes=n_classes)
    elif record_validated:
        _, scores = detector.score_record(record)
    else:
        _, scores = detector.interpret(training_dynamics=record)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if scores.shape[0] != record["td"].shape[0]:
        raise RuntimeError(f"{name} returned {scores.shape[0]} scores for {record['td'].shape[0]} samples")
    return scores
