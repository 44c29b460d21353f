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


def _fill_whole_vector_gaps(block: np.ndarray, gap: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Fill, in place, epochs where a sample's whole probability vector is NaN.

    ``block`` is float16 ``(n, E, C)``; ``gap`` is ``(n, E)`` bool and every row has a recorded epoch.
    Only the gap cells are touched, with the same arithmetic as :func:`_interpolate_block`. Returns the
    filled cells' rows and their float16 values ``(G, C)``.
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
    values = filled.astype(np.float32).astype(np.float16)
    block[rows, cols] = values
    return rows, values


def _transform_block(probs: np.ndarray, targets: np.ndarray, ids: Optional[np.ndarray], start: int,
                     td: np.ndarray, labels: np.ndarray, class_means: Optional[np.ndarray] = None,
                     complete: Optional[np.ndarray] = None) -> None:
    """Fill ``td`` and ``labels`` rows ``[start, start + _TRANSFORM_CHUNK)`` (see :func:`transform_dynamics`)."""
    c = probs.shape[2]
    stop = min(probs.shape[0], start + _TRANSFORM_CHUNK)
    if complete is not None and complete[start:stop].all() and probs.dtype == np.float16:
        # gap-free rows straight from the recorder: no private copy, no gap search, means from the running sums
        block = probs[start:stop]
        means = _float16_means(class_means[start:stop]) if class_means is not None else block.mean(axis=1)
    else:
        block = probs[start:stop].astype(np.float16)  # a private copy: gaps are filled in place
        gap = np.isnan(block[:, :, 0])
        if gap.all(axis=1).any():
            interpolate_missing(probs[start:stop], sample_ids=None if ids is None else ids[start:stop])  # names them
        filled_rows = filled = None
        if gap.any():
            rows, cols = np.nonzero(gap)
            partial_gap = ~np.isnan(block[rows, cols]).all(axis=1)  # class 0 missing but not the whole vector
            gap[rows[partial_gap], cols[partial_gap]] = False  # left for the per-class pass below
            filled_rows, filled = _fill_whole_vector_gaps(block, gap)
        if complete is not None and class_means is not None:
            # a recorder's gaps are whole unseen vectors: its sums cover the seen cells, add the filled ones
            means32 = np.array(class_means[start:stop], dtype=np.float32)
            if filled is not None:
                extra = np.zeros(means32.shape, dtype=np.float32)
                np.add.at(extra, filled_rows, filled.astype(np.float32))
                means32 += extra / np.float32(probs.shape[1])
            means = _float16_means(means32)
        else:
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


def _float16_means(means32: np.ndarray) -> np.ndarray:
    """float32 means rounded to float16, which is how numpy (and so InterpretDL) rounds a float16 mean."""
    return np.asarray(means32, dtype=np.float32).astype(np.float16)


def running_class_means(class_sums: np.ndarray, n_epochs: int) -> np.ndarray:
    """``class_sums / E`` as numpy's float16 ``mean`` divides its float32 sum: float32 ``(N, C)``.

    numpy reduces a float16 ``(n, E, C)`` block over axis 1 by adding epochs in order in float32 and
    dividing by an ``intp`` count; the recorder's running sums add the epochs in the same order, so
    rounding this to float16 reproduces ``probs.mean(axis=1)`` bit for bit.
    """
    out = np.array(class_sums, dtype=np.float32, copy=True)
    np.true_divide(out, np.intp(n_epochs), out=out, casting="unsafe")
    return out


def transform_dynamics(probs: np.ndarray, assigned_targets, *, sample_ids: Optional[Sequence] = None,
                       class_means: Optional[np.ndarray] = None, complete: Optional[np.ndarray] = None
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
    class_means : ndarray of shape (N, C), float32, optional
        A recorder's running sums over its seen cells divided by E (see :func:`running_class_means`),
        used with ``complete`` to rank classes instead of re-reading every value; for a sample with gaps
        the filled values are added. It assumes, as a recorder guarantees, that every gap is a whole
        unseen probability vector.
    complete : ndarray of shape (N,), bool, optional
        True for samples recorded in every epoch (no gap). Their float16 ``probs`` are read once, for
        the output only.

    Returns
    -------
    td : ndarray of shape (N, E, C), float16
        ``td[:, :, 0]`` is the assigned label's probability; channels ``1..C-1`` are the other classes by
        descending mean probability over epochs, ranked exactly as InterpretDL 0.8 ranks them (the
        float16 mean and numpy's default sort). With ``class_means`` the ranking uses those float32 means
        rounded to float16; they equal InterpretDL's float16 means when they come from the recorder's
        running sums (same accumulation order), but means computed any other way may rank exact near-ties
        differently. Channel 0 never depends on the ranking.
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
    if class_means is not None and np.shape(class_means) != (n, c):
        raise ValueError(f"class_means must have shape ({n}, {c}), got {np.shape(class_means)}")
    if complete is not None and np.shape(complete) != (n,):
        raise ValueError(f"complete must have shape ({n},), got {np.shape(complete)}")
    if targets.dtype.kind not in "iu" or (n and (targets.min() < 0 or targets.max() >= c)):
        raise ValueError(f"assigned_targets must be integers in [0, {c}); got dtype {targets.dtype}, "
                         f"range [{targets.min()}, {targets.max()}]")
    td = np.empty(probs.shape, dtype=np.float16)
    labels = np.empty((n, c), dtype=np.int16)
    ids = None if sample_ids is None else np.asarray(sample_ids)
    for start in range(0, n, _TRANSFORM_CHUNK):
        _transform_block(probs, targets, ids, start, td, labels, class_means, complete)
    return td, labels


DEFAULT_MAX_UNSEEN = 0.5
"""Default largest share of an epoch's samples that may be missing before transform / save refuse."""


def check_coverage(seen: np.ndarray, *, max_unseen: float = DEFAULT_MAX_UNSEEN, source: str = "recording") -> None:
    """Refuse a recording in which more than ``max_unseen`` of some epoch's samples were never seen.

    Parameters
    ----------
    seen : ndarray of shape (N, E), bool
    max_unseen : float, default=0.5
        ``1.0`` turns the check off.
    source : str
        Named in the message.

    Raises
    ------
    ValueError
        Naming the epochs and the likely cause.
    """
    if not 0.0 <= float(max_unseen) <= 1.0:
        raise ValueError(f"max_unseen must lie in [0, 1], got {max_unseen}")
    if seen.size == 0 or max_unseen >= 1.0:
        return
    unseen = 1.0 - np.asarray(seen).mean(axis=0)
    bad = np.flatnonzero(unseen > max_unseen)
    if bad.size:
        shown = ", ".join(f"{e} ({unseen[e]:.0%} unseen)" for e in bad[:8]) + (" ..." if bad.size > 8 else "")
        raise ValueError(
            f"{source}: more than {max_unseen:.0%} of the samples were never recorded in {bad.size} epoch(s): "
            f"{shown}. Interpolating that much would invent the dynamics. Likely cause: this is one data-parallel "
            f"rank's shard (record under paddle.distributed so rank 0 gathers every rank, or combine the shards "
            f"with DynamicsRecorder.merge), or the loader skips samples (drop_last=True, a sampler over a subset, "
            f"ids outside the recorded range). Pass max_unseen=1.0 to accept it anyway.")


def recorder_arrays(recorder, *, check_targets: bool = True, max_unseen: float = DEFAULT_MAX_UNSEEN
                    ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """A :class:`~interpretdl_noise.recording.DynamicsRecorder`'s completed epochs, for :func:`transform_dynamics`.

    Only whole (completed) epochs are returned: a recording cut short at epoch k yields ``k`` epochs,
    never invented ones.

    Returns
    -------
    probs : ndarray of shape (N, E', C)
        The ``E'`` completed epochs; unseen cells are NaN.
    targets : ndarray of shape (N,), int64
    ids : ndarray of shape (N,), int64
    extras : dict
        ``logits`` (N, E', C) and ``losses`` (N, E') when the recorder kept them.

    Raises
    ------
    ValueError
        If no epoch is completed; if an epoch holds non-finite values; if more than ``max_unseen`` of
        an epoch's samples were never seen (see :func:`check_coverage`); or if a sample was never
        recorded, so its label is unknown (unless ``check_targets=False``, for callers that supply the
        labels themselves).
    """
    n_epochs = recorder.completed_epochs
    if n_epochs == 0:
        raise ValueError(f"the recorder holds no completed epoch ({recorder!r}); nothing to transform or save: "
                         f"train at least one whole epoch")
    bad = np.flatnonzero(np.asarray(recorder.nonfinite[:n_epochs]) > 0)
    if bad.size:
        from .recorder import NonFiniteDynamicsError

        raise NonFiniteDynamicsError(int(bad[0]), int(recorder.nonfinite[bad[0]]), int(bad[0]), recorder.n_samples)
    check_coverage(recorder.seen[:, :n_epochs], max_unseen=max_unseen, source="recorder")
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


def transform_recorder(recorder, assigned_targets=None, *, max_unseen: float = DEFAULT_MAX_UNSEEN
                       ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Transform a recorder's completed epochs, ranking classes from its running sums where it can.

    Parameters
    ----------
    recorder : DynamicsRecorder
    assigned_targets : array-like of shape (N,), optional
        Overrides the recorded targets.
    max_unseen : float, default=0.5
        See :func:`check_coverage`.

    Returns
    -------
    td : ndarray of shape (N, E', C), float16
    labels : ndarray of shape (N, C), int16
    ids : ndarray of shape (N,), int64
    extras : dict
        As in :func:`recorder_arrays`.
    """
    probs, targets, ids, extras = recorder_arrays(recorder, check_targets=assigned_targets is None,
                                                  max_unseen=max_unseen)
    if assigned_targets is not None:
        targets = np.asarray(assigned_targets).reshape(-1)
    n_epochs = probs.shape[1]
    complete = np.asarray(recorder.seen[:, :n_epochs]).all(axis=1)
    class_means = recorder.running_means(n_epochs)  # None unless the running sums cover exactly these epochs
    td, labels = transform_dynamics(probs, targets, sample_ids=ids, class_means=class_means, complete=complete)
    return td, labels, ids, extras
