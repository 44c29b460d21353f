"""Which samples are mislabeled: a detector's scores cut into a boolean mask.

``cutoff`` says where to cut the ranking (higher score = more likely mislabeled):

- ``'auto'``: the estimated number of issues (:func:`~interpretdl_noise.estimate_noise`), taken from the whole
  ranking, or allotted per given class from the estimate's per-class counts (``per_class=True``);
- an ``int`` ``k``: the ``k`` highest scores;
- a ``float``: every sample whose score is at least this threshold (for ``bhdf``, a probability in [0, 1]);
- a string ``'5%'``: that fraction of the samples, the highest scores first.

Shapes: ``N`` samples, ``C`` classes.
"""
from __future__ import annotations

import re
from typing import Any, Optional, Tuple, Union

import numpy as np

from ..common.metrics import top_k_mask
from ..recording import Recording
from .noise import NoiseEstimate, estimate_noise
from .probabilities import detector_scores

__all__ = ["find_label_issues", "parse_cutoff", "detector_scores", "top_k_mask", "PROBABILITY_DETECTORS"]

Cutoff = Union[str, int, float]
PROBABILITY_DETECTORS = ("bhdf",)
"""Detectors whose scores are probabilities, so a float threshold must lie in [0, 1]."""


def parse_cutoff(cutoff: Cutoff, n_samples: int, method: Optional[str] = None) -> Tuple[str, Any]:
    """Validate ``cutoff`` and return ``(kind, value)`` with kind in auto / count / threshold / fraction.

    Strings from a command line are read too: ``'auto'``, ``'120'`` (count), ``'0.7'`` (threshold), ``'5%'``.

    Raises
    ------
    ValueError
        A cut-off of the wrong type or out of range (a count outside [0, N], a fraction outside [0, 100] %,
        a non-finite threshold, or for a probability detector such as ``bhdf`` one outside [0, 1]).
    """
    kind, value = _parse_cutoff(cutoff, n_samples)
    if kind == "threshold" and method in PROBABILITY_DETECTORS and not 0.0 <= value <= 1.0:
        raise ValueError(f"cutoff threshold {value} is out of range for {method!r}, whose scores are "
                         "probabilities in [0, 1]")
    return kind, value


def _parse_cutoff(cutoff: Cutoff, n_samples: int) -> Tuple[str, Any]:
    if isinstance(cutoff, bool):
        raise ValueError(f"cutoff must be 'auto', an int count, a float threshold or a 'P%' fraction; got {cutoff!r}")
    if isinstance(cutoff, str):
        text = cutoff.strip()
        if text == "auto":
            return "auto", None
        if text.endswith("%"):
            pct = _number(text[:-1], cutoff)
            if not 0.0 <= pct <= 100.0:
                raise ValueError(f"cutoff fraction {cutoff!r} is out of range: it must lie in [0 %, 100 %]")
            return "fraction", pct / 100.0
        if re.fullmatch(r"[+-]?\d+", text):
            return _parse_cutoff(int(text), n_samples)
        return _parse_cutoff(_number(text, cutoff), n_samples)
    if isinstance(cutoff, (int, np.integer)):
        if not 0 <= int(cutoff) <= n_samples:
            raise ValueError(f"cutoff count {int(cutoff)} is out of range: it must lie in [0, {n_samples}] "
                             f"(the number of samples)")
        return "count", int(cutoff)
    if isinstance(cutoff, (float, np.floating)):
        if not np.isfinite(cutoff):
            raise ValueError(f"cutoff threshold must be finite, got {cutoff!r}")
        return "threshold", float(cutoff)
    raise ValueError(f"cutoff must be 'auto', an int count, a float threshold or a 'P%' fraction; got {cutoff!r}")


def _number(text: str, original: Any) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"cutoff must be 'auto', an int count, a float threshold or a 'P%' fraction; "
                         f"got {original!r}") from None


def _auto_mask(rec: Recording, scores: np.ndarray, estimate: NoiseEstimate, per_class: bool) -> np.ndarray:
    if not per_class or rec.labels is None:
        return top_k_mask(scores, estimate.n_issues)
    given = rec.assigned_labels
    counts = np.rint(estimate.per_class_issues).astype(np.int64)
    mask = np.zeros(rec.n_samples, dtype=bool)
    for c in np.flatnonzero(counts > 0):
        rows = np.flatnonzero(given == c)
        mask[rows[top_k_mask(scores[rows], min(int(counts[c]), rows.size))]] = True
    return mask


def find_label_issues(recording: Any, method: str = "bhdf", cutoff: Cutoff = "auto", *,
                      estimator: str = "auto", estimate: Optional[NoiseEstimate] = None, per_class: bool = False,
                      scores: Optional[np.ndarray] = None, **detector_kw: Any) -> np.ndarray:
    """Flag the likely mislabeled samples of a recording.

    Parameters
    ----------
    recording : path, mapping, DynamicsRecorder or Recording
    method : str, default='bhdf'
        Any registered detector (:func:`~interpretdl_noise.interpreter.registry.detector_names`).
    cutoff : 'auto', int, float or 'P%', default='auto'
        See the module docstring.
    estimator : str, default='auto'
        The noise estimator behind ``'auto'`` (:func:`~interpretdl_noise.estimate_noise`).
    estimate : NoiseEstimate, optional
        A ready estimate for ``'auto'`` (skips estimating again).
    per_class : bool, default=False
        True: ``'auto'`` flags the estimated count of each given class within that class (the estimate's
        per-class breakdown). False: the estimated total, taken from the whole ranking; the default,
        because per-class counts are noisier than the total and lowered every detector's F1 in
        ``benchmarks/bench_decisions.py``.
    scores : ndarray of shape (N,), optional
        Precomputed scores of ``method`` (skips running the detector).
    **detector_kw
        Constructor arguments for the detector, and ``x=`` (the raw inputs, indexed by sample id) for
        ``confident_learning``, which retrains on the data.

    Returns
    -------
    ndarray of shape (N,), bool
        True = flagged as a label issue, in the recording's row order.

    Raises
    ------
    ValueError
        An unknown or inapplicable detector, or a cut-off out of range.
    """
    rec = Recording.coerce(recording)
    kind, value = parse_cutoff(cutoff, rec.n_samples, method)
    s = detector_scores(rec, method, scores, **detector_kw)
    if kind == "threshold":
        return s >= value
    if kind == "count":
        return top_k_mask(s, value)
    if kind == "fraction":
        return top_k_mask(s, int(round(value * rec.n_samples)))
    if estimate is None:
        extra = {"scores": s} if estimator in ("bhdf_prior",) and method == "bhdf" else {}
        estimate = estimate_noise(rec, estimator, n_bootstrap=0, **extra)
    return _auto_mask(rec, s, estimate, per_class)
