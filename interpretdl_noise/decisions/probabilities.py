"""What the decisions read from a recording: per-class probabilities in the model's class order, and
detector scores.

A recording's ``td`` is in InterpretDL's layout: channel 0 is the *assigned* label and the other channels
are the other classes sorted per sample; ``labels[i, j]`` is the class id of channel ``j``. Scattering
``td`` through ``labels`` gives ordinary ``(N, C)`` (or ``(N, E, C)``) probabilities, column ``c`` = class ``c``.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import numpy as np

from ..recording import Recording

__all__ = ["class_probabilities", "detector_scores", "given_labels", "normalise_rows", "select_epochs"]

Epochs = Union[None, str, int, slice, Sequence[int]]


def select_epochs(n_epochs: int, epochs: Epochs = None) -> np.ndarray:
    """Indices of the epochs to use.

    Parameters
    ----------
    n_epochs : int
        ``E``.
    epochs : None, 'all', 'late', int, slice or sequence of int
        ``None`` / ``'all'``: every epoch. ``'late'``: the second half. A positive int ``k``: the last ``k``
        epochs. A slice or a sequence: those epoch indices.

    Returns
    -------
    ndarray of int64
    """
    every = np.arange(n_epochs)
    if epochs is None or (isinstance(epochs, str) and epochs == "all"):
        return every
    if isinstance(epochs, str):
        if epochs == "late":
            return every[n_epochs // 2:]
        raise ValueError(f"epochs must be None, 'all', 'late', an int, a slice or indices; got {epochs!r}")
    if isinstance(epochs, (int, np.integer)) and not isinstance(epochs, bool):
        if not 1 <= epochs <= n_epochs:
            raise ValueError(f"epochs={epochs} (the last k epochs) must be in [1, {n_epochs}]")
        return every[n_epochs - int(epochs):]
    if isinstance(epochs, slice):
        chosen = every[epochs]
    else:
        chosen = np.asarray(epochs, dtype=np.int64).reshape(-1)
        if chosen.size and (chosen.min() < -n_epochs or chosen.max() >= n_epochs):
            raise ValueError(f"epoch indices must lie in [0, {n_epochs}); got {epochs!r}")
        chosen = every[chosen]
    if chosen.size == 0:
        raise ValueError(f"epochs={epochs!r} selects no epoch of {n_epochs}")
    return chosen


def class_probabilities(recording: Any, epochs: Epochs = None, *, average: bool = True) -> np.ndarray:
    """The recording's softmax per class, in the model's class order.

    Parameters
    ----------
    recording : path, mapping, DynamicsRecorder or Recording
        Needs ``td`` and ``labels``.
    epochs : see :func:`select_epochs`, default None (all epochs)
    average : bool, default=True
        True: mean over the selected epochs, shape (N, C). False: shape (N, E', C).

    Returns
    -------
    ndarray of float64, (N, C) or (N, E', C)
        Rows sum to 1 (up to float16 rounding of ``td``). In-sample: the model was trained on these labels.
    """
    rec = Recording.coerce(recording).require("labels", needed_by="class_probabilities")
    chosen = select_epochs(rec.n_epochs, epochs)
    labels = np.asarray(rec.labels).astype(np.int64)
    td = np.asarray(rec.td)[:, chosen, :]
    if average:
        channels = td.astype(np.float64).mean(axis=1)  # (N, C) in channel order
        out = np.empty_like(channels)
        np.put_along_axis(out, labels, channels, axis=1)
        return out
    out = np.empty(td.shape, dtype=np.float64)
    np.put_along_axis(out, np.broadcast_to(labels[:, None, :], td.shape), td.astype(np.float64), axis=2)
    return out


def given_labels(recording: Any) -> np.ndarray:
    """The assigned (possibly noisy) label of every row, (N,) int64; a clear error without ``labels``."""
    rec = Recording.coerce(recording).require("labels", needed_by="the decisions")
    return rec.assigned_labels


def normalise_rows(p: np.ndarray, floor: float = 0.0) -> np.ndarray:
    """Rows scaled to sum to 1 (float16 ``td`` sums to 1 only approximately)."""
    p = np.maximum(np.asarray(p, dtype=np.float64), floor)
    return p / np.maximum(p.sum(axis=-1, keepdims=True), 1e-300)


def detector_scores(rec: Recording, method: str, scores: Optional[np.ndarray] = None, **detector_kw: Any
                    ) -> np.ndarray:
    """Scores (N,) of registry detector ``method`` (or the given ``scores``), higher = more likely mislabeled.

    Raises ValueError naming the reason when the detector does not apply (e.g. no ``losses`` for ``ema``).
    """
    if scores is not None:
        s = np.asarray(scores, dtype=np.float64).reshape(-1)
        if s.shape[0] != rec.n_samples:
            raise ValueError(f"scores has {s.shape[0]} entries but the recording has {rec.n_samples} samples")
        return s
    from ..interpreter.registry import DetectorNotApplicable, detector_names, run_detector

    if method not in detector_names():
        raise ValueError(f"unknown detector {method!r}; choose from {detector_names()}")
    try:
        return run_detector(method, rec, **detector_kw)
    except DetectorNotApplicable as exc:
        raise ValueError(str(exc)) from exc
