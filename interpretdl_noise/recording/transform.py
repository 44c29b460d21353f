"""From raw per-epoch softmax to InterpretDL's ``td`` / ``labels`` layout.

``interpolate_missing`` fills gaps per class and per sample by linear interpolation along epochs (edges
take the nearest recorded epoch), so a filled epoch vector still sums to 1. ``transform_dynamics`` then
orders the classes of every sample exactly as InterpretDL 0.8 does: channel 0 is the assigned label,
the other channels follow the classes' descending mean probability over epochs.
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence, Tuple

import numpy as np

_CHUNK = 4096  # samples per vectorised interpolation block; bounds the float32 working memory
_TRANSFORM_CHUNK = 256  # samples per transform block; small enough to stay in cache


def _interpolate_block(x: np.ndarray) -> np.ndarray:
    """Fill NaNs of a float32 ``(n, E, C)`` block along axis 1, per (sample, class) series."""
    valid = ~np.isnan(x)
    n_epochs = x.shape[1]
    steps = np.arange(n_epochs, dtype=np.int64).reshape(1, -1, 1)
    prev = np.maximum.accumulate(np.where(valid, steps, -1), axis=1)
    nxt = np.minimum.accumulate(np.where(valid, steps, n_epochs)[:, ::-1], axis=1)[:, ::-1]
    has_prev, has_next = prev >= 0, nxt < n_epochs
    v_prev = np.take_along_axis(x, np.clip(prev, 0, n_epochs - 1), axis=1)
    v_next = np.take_along_axis(x, np.clip(nxt, 0, n_epochs - 1), axis=1)
    both = has_prev & has_next & ~valid
    span = np.where(both, nxt - prev, 1)  # only used where both neighbours exist
    weight = np.where(both, steps - prev, 0) / span
    filled = np.where(both, v_prev + weight * (v_next - v_prev), np.where(has_prev, v_prev, v_next))
    return np.where(valid, x, filled).astype(np.float32, copy=False)


def interpolate_missing(probs: np.ndarray, *, sample_ids: Optional[Sequence] = None,
                        out_dtype=np.float32) -> np.ndarray:
    """Per-class linear interpolation of missing (NaN) epochs.

    Parameters
    ----------
    probs : ndarray of shape (N, E, C)
        Per-epoch softmax; NaN marks a missing value.
    sample_ids : sequence of length N, optional
        Names used in the error message for samples that have no recorded epoch.
    out_dtype : numpy dtype, default=float32

    Returns
    -------
    ndarray of shape (N, E, C)
        A copy with every NaN replaced.

    Raises
    ------
    ValueError
        If a sample (or one class of a sample) has no recorded value in any epoch.
    """
    probs = np.asarray(probs)
    if probs.ndim != 3:
        raise ValueError(f"probs must have shape (N, E, C), got {probs.shape}")
    empty = np.isnan(probs).all(axis=1).any(axis=1)
    if empty.any():
        rows = np.flatnonzero(empty)
        names = rows if sample_ids is None else np.asarray(sample_ids)[rows]
        raise ValueError(f"{rows.size} sample(s) have no recorded epoch, so they cannot be interpolated: "
                         f"sample ids {names[:10].tolist()}{' ...' if rows.size > 10 else ''}")
    out = np.empty(probs.shape, dtype=out_dtype)
    for start in range(0, probs.shape[0], _CHUNK):
        block = probs[start:start + _CHUNK].astype(np.float32)
        out[start:start + _CHUNK] = _interpolate_block(block) if np.isnan(block).any() else block
    return out


def dict_to_array(logits_dict: Mapping) -> Tuple[np.ndarray, np.ndarray]:
    """InterpretDL's ``{index: [E probability vectors]}`` to ``(ids (N,), probs (N, E, C))``, sorted by id."""
    if len(logits_dict) == 0:
        raise ValueError("the training-dynamics dict is empty")
    ids = np.array(sorted(logits_dict.keys()))
    lengths = {len(logits_dict[k]) for k in ids.tolist()}
    if len(lengths) != 1:
        raise ValueError(f"every sample needs the same number of epoch vectors (NaN vectors for missing epochs); "
                         f"found lengths {sorted(lengths)}")
    probs = np.asarray([np.asarray(logits_dict[k], dtype=np.float32) for k in ids.tolist()], dtype=np.float32)
    if probs.ndim != 3:
        raise ValueError(f"dict values must be lists of equal-length probability vectors; got array of shape "
                         f"{probs.shape}")
    return ids, probs


def _fill_whole_vector_gaps(block: np.ndarray, gap: np.ndarray) -> None:
    """Fill, in place, epochs where a sample's whole probability vector is NaN.

    ``block`` is float16 ``(n, E, C)``; ``gap`` is ``(n, E)`` bool and every row has a recorded epoch.
    Only the gap cells are touched, with the same arithmetic as :func:`_interpolate_block`.
    """
    n_epochs = block.shape[1]
    steps = np.arange(n_epochs, dtype=np.int64)
    prev = np.maximum.accumulate(np.where(gap, -1, steps), axis=1)
    nxt = np.minimum.accumulate(np.where(gap, n_epochs, steps)[:, ::-1], axis=1)[:, ::-1]
    rows, cols = np.nonzero(gap)
    p, q = prev[rows, cols], nxt[rows, cols]
    has_p, has_q = p >= 0, q < n_epochs
    v_p = block[rows, np.clip(p, 0, n_epochs - 1)].astype(np.float32)
    v_q = block[rows, np.clip(q, 0, n_epochs - 1)].astype(np.float32)
    both = has_p & has_q
    weight = (np.where(both, cols - p, 0) / np.where(both, q - p, 1))[:, None]
    filled = np.where(both[:, None], v_p + weight * (v_q - v_p), np.where(has_p[:, None], v_p, v_q))
    block[rows, cols] = filled.astype(np.float32).astype(np.float16)


def _transform_block(probs: np.ndarray, targets: np.ndarray, ids: Optional[np.ndarray], start: int,
                     td: np.ndarray, labels: np.ndarray) -> None:
    """Fill ``td`` and ``labels`` rows ``[start, start + _TRANSFORM_CHUNK)`` (see :func:`transform_dynamics`)."""
    c = probs.shape[2]
    stop = min(probs.shape[0], start + _TRANSFORM_CHUNK)
    block = probs[start:stop].astype(np.float16)  # a private copy: gaps are filled in place
    gap = np.isnan(block[:, :, 0])
    if gap.all(axis=1).any():
        interpolate_missing(probs[start:stop], sample_ids=None if ids is None else ids[start:stop])  # names them
    if gap.any():
        rows, cols = np.nonzero(gap)
        partial_gap = ~np.isnan(block[rows, cols]).all(axis=1)  # class 0 missing but not the whole vector
        gap[rows[partial_gap], cols[partial_gap]] = False  # left for the per-class pass below
        _fill_whole_vector_gaps(block, gap)
    means = block.mean(axis=1)  # float16 result with float32 accumulation, as InterpretDL computes it
    partial = np.isnan(means).any(axis=1)
    if partial.any():  # single-class gaps: per-class interpolation of those rows only
        rows = start + np.flatnonzero(partial)
        block[partial] = interpolate_missing(probs[rows], sample_ids=None if ids is None else ids[rows],
                                             out_dtype=np.float16)
        means[partial] = block[partial].mean(axis=1)
    t = targets[start:stop].astype(np.int64)
    order = np.argsort(-means, axis=1)  # InterpretDL's exact call: near-ties resolve identically
    others = order[order != t[:, None]].reshape(len(t), c - 1)
    lab = np.concatenate([t[:, None], others], axis=1)
    labels[start:stop] = lab
    rows = np.arange(len(t))
    for channel in range(c):  # per-channel fancy indexing is ~4x faster than take_along_axis here
        td[start:stop, :, channel] = block[rows, :, lab[:, channel]]


def transform_dynamics(probs: np.ndarray, assigned_targets, *, sample_ids: Optional[Sequence] = None
                       ) -> Tuple[np.ndarray, np.ndarray]:
    """Interpolate, cast to float16 and reorder classes as InterpretDL's ``TrainingDynamics.transform``.

    Parameters
    ----------
    probs : ndarray of shape (N, E, C)
        Per-epoch softmax in the model's class order; NaN marks missing values (usually a whole epoch
        vector, possibly single classes).
    assigned_targets : array-like of shape (N,)
        Assigned (possibly noisy) label per sample, in ``[0, C)``.
    sample_ids : sequence of length N, optional
        Used in error messages only.

    Returns
    -------
    td : ndarray of shape (N, E, C), float16
        ``td[:, :, 0]`` is the assigned label's probability; channels ``1..C-1`` are the other classes by
        descending mean probability over epochs, ranked exactly as InterpretDL 0.8 ranks them (the
        float16 mean and numpy's default sort).
    labels : ndarray of shape (N, C), int16
        Class id of each ``td`` channel.
    """
    probs = np.asarray(probs)
    if probs.ndim != 3:
        raise ValueError(f"probs must have shape (N, E, C), got {probs.shape}")
    n, _, c = probs.shape
    targets = np.asarray(assigned_targets).reshape(-1)
    if targets.shape[0] != n:
        raise ValueError(f"assigned_targets has {targets.shape[0]} entries for {n} samples")
    if targets.dtype.kind not in "iu" or (n and (targets.min() < 0 or targets.max() >= c)):
        raise ValueError(f"assigned_targets must be integers in [0, {c}); got dtype {targets.dtype}, "
                         f"range [{targets.min()}, {targets.max()}]")
    td = np.empty(probs.shape, dtype=np.float16)
    labels = np.empty((n, c), dtype=np.int16)
    ids = None if sample_ids is None else np.asarray(sample_ids)
    for start in range(0, n, _TRANSFORM_CHUNK):
        _transform_block(probs, targets, ids, start, td, labels)
    return td, labels


def recorder_arrays(recorder, *, check_targets: bool = True) -> Tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """A :class:`~interpretdl_noise.recording.DynamicsRecorder`'s arrays, ready for :func:`transform_dynamics`.

    Returns
    -------
    probs : ndarray of shape (N, E', C)
        The recorded epochs (``E'`` = epochs in which anything was recorded); unseen cells are NaN.
    targets : ndarray of shape (N,), int64
    ids : ndarray of shape (N,), int64
    extras : dict
        ``logits`` (N, E', C) and ``losses`` (N, E') when the recorder kept them.

    Raises
    ------
    ValueError
        If a sample was never recorded, so its label is unknown (unless ``check_targets=False``, for
        callers that supply the labels themselves).
    """
    n_epochs = recorder.epochs_recorded() or recorder.n_epochs
    targets = np.asarray(recorder.targets)
    if check_targets and (targets < 0).any():
        missing = np.flatnonzero(targets < 0)
        raise ValueError(f"{missing.size} sample(s) were never recorded, so their labels are unknown: sample ids "
                         f"{missing[:10].tolist()}")
    extras = {}
    if recorder.logits is not None:
        extras["logits"] = recorder.logits[:, :n_epochs]
    if recorder.losses is not None:
        extras["losses"] = recorder.losses[:, :n_epochs]
    return recorder.probs[:, :n_epochs], targets, np.arange(recorder.n_samples), extras
