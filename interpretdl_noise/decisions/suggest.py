"""What the label should be: the most likely true label of each sample, and a relabel policy.

The suggestion is the arg-max of the recording's per-class probabilities averaged over the chosen epochs
(in-sample: the model was trained on the given labels). For a *flagged* sample the given label is excluded,
since we already believe it is wrong. The confidence is the probability the recording gives the suggested
class, **not** renormalised after excluding the given label: renormalising would make every suggestion on a
two-class problem certain.

cleanlab's users warn that relabelling to the arg-max can add errors; :func:`relabel_policy` therefore
relabels only suggestions at least ``min_confidence`` confident and drops the other flagged samples.

Shapes: ``N`` samples, ``C`` classes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from ..recording import Recording
from .probabilities import class_probabilities, normalise_rows

__all__ = ["SuggestedLabels", "suggest_labels", "relabel_policy", "DEFAULT_MIN_CONFIDENCE", "DEFAULT_EPOCHS"]

DEFAULT_MIN_CONFIDENCE = 0.5
"""Relabel a flagged sample only when its suggestion is at least this probable; drop it otherwise."""
DEFAULT_EPOCHS = None
"""Epochs whose probabilities are averaged for suggestions (None = all); chosen in bench_decisions.py."""


@dataclass(frozen=True)
class SuggestedLabels:
    """Per-sample label suggestions.

    Attributes
    ----------
    label : ndarray of shape (N,), int64
        The most likely true label (never the given label where the sample was flagged).
    confidence : ndarray of shape (N,), float64 in [0, 1]
        The recording's mean probability of ``label``.
    """

    label: np.ndarray
    confidence: np.ndarray


def suggest_labels(recording: Any, flagged: Optional[np.ndarray] = None, *, epochs: Any = DEFAULT_EPOCHS
                   ) -> SuggestedLabels:
    """Suggest the most likely true label of every sample.

    Parameters
    ----------
    recording : path, mapping, DynamicsRecorder or Recording
        Needs ``td`` and ``labels``.
    flagged : array-like of shape (N,), bool, optional
        Samples believed mislabeled (e.g. :func:`~interpretdl_noise.find_label_issues`); they never get
        their given label suggested.
    epochs : optional
        Which epochs' probabilities to average (see ``class_probabilities``); default all.

    Returns
    -------
    SuggestedLabels
    """
    rec = Recording.coerce(recording).require("labels", needed_by="suggest_labels")
    probs = normalise_rows(class_probabilities(rec, epochs))
    n = rec.n_samples
    if flagged is not None:
        flagged = np.asarray(flagged)
        if flagged.shape != (n,) or flagged.dtype != bool:
            raise ValueError(f"flagged must be a bool array of shape ({n},), got {flagged.dtype} {flagged.shape}")
        choice = probs.copy()
        rows = np.flatnonzero(flagged)
        choice[rows, rec.assigned_labels[rows]] = -1.0
    else:
        choice = probs
    label = np.argmax(choice, axis=1).astype(np.int64)
    confidence = np.clip(probs[np.arange(n), label], 0.0, 1.0)
    return SuggestedLabels(label=label, confidence=confidence)


def relabel_policy(flagged: np.ndarray, suggested: SuggestedLabels, *, min_confidence: float = DEFAULT_MIN_CONFIDENCE,
                   relabel: bool = True) -> np.ndarray:
    """Automatic action per sample: ``keep`` (not flagged), ``relabel`` (flagged, suggestion confident) or ``drop``.

    Parameters
    ----------
    flagged : ndarray of shape (N,), bool
    suggested : SuggestedLabels
    min_confidence : float in [0, 1], default=DEFAULT_MIN_CONFIDENCE
        Relabel only when ``suggested.confidence >= min_confidence``.
    relabel : bool, default=True
        False drops every flagged sample.

    Returns
    -------
    ndarray of shape (N,), object (str)
    """
    if not 0.0 <= float(min_confidence) <= 1.0:
        raise ValueError(f"min_confidence must lie in [0, 1], got {min_confidence}")
    flagged = np.asarray(flagged, dtype=bool)
    actions = np.full(flagged.shape[0], "keep", dtype=object)
    actions[flagged] = "drop"
    if relabel:
        actions[flagged & (suggested.confidence >= float(min_confidence))] = "relabel"
    return actions
