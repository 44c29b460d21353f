"""``DynamicsRecorder``: preallocated ``(N, E, C)`` storage written by sample id.

Rows are addressed by sample id, never by arrival order, so shuffled loaders, incomplete last batches
and shards from several data-parallel ranks all land in the same place. Unwritten cells stay NaN and
are tracked in an explicit ``seen`` mask, so real NaN predictions are not mistaken for gaps.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Optional

import numpy as np



def _alloc(shape, dtype, fill, directory: Optional[Path], name: str) -> np.ndarray:
    if directory is None:
        return np.full(shape, fill, dtype=dtype)
    arr = np.lib.format.open_memmap(directory / f"{name}.npy", mode="w+", dtype=dtype, shape=shape)
    arr[...] = fill
    return arr


class DynamicsRecorder:
    """Per-sample, per-epoch softmax (and optionally logits and losses) in preallocated arrays.

    Parameters
    ----------
    n_samples : int
        ``N``; sample ids must be integers in ``[0, N)``.
    n_epochs : int
        ``E``, the number of recorded epochs.
    n_classes : int
        ``C``.
    keep_logits : bool, default=False
        Also keep raw logits, shape ``(N, E, C)`` float32 (AUM uses them).
    keep_losses : bool, default=False
        Also keep per-sample losses, shape ``(N, E)`` float32 (EMA loss dynamics uses them).
    directory : path, optional
        Memory-map the arrays to ``.npy`` files in this folder instead of RAM, for large ``N``.
    prob_dtype : numpy dtype, default=float16
        Storage type of probabilities. float16 matches the npz format and halves memory.

    Attributes
    ----------
    probs : ndarray of shape (N, E, C)
        Softmax per sample and epoch, class order as the model's outputs; NaN where not recorded.
    logits : ndarray of shape (N, E, C) or None
    losses : ndarray of shape (N, E) or None
    seen : ndarray of shape (N, E), bool
        True where a sample was recorded in an epoch.
    targets : ndarray of shape (N,), int64
        The assigned (possibly noisy) label of each sample; -1 until it is seen.
    """

    def __init__(self, n_samples: int, n_epochs: int, n_classes: int, *, keep_logits: bool = False,
                 keep_losses: bool = False, directory=None, prob_dtype=np.float16):
        for name, value, low in (("n_samples", n_samples, 1), ("n_epochs", n_epochs, 1), ("n_classes", n_classes, 2)):
            if not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        self.n_samples, self.n_epochs, self.n_classes = int(n_samples), int(n_epochs), int(n_classes)
        self.directory = None if directory is None else Path(directory)
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
        shape = (self.n_samples, self.n_epochs, self.n_classes)
        self.probs = _alloc(shape, prob_dtype, np.nan, self.directory, "probs")
        self.logits = _alloc(shape, np.float32, np.nan, self.directory, "logits") if keep_logits else None
        self.losses = _alloc(shape[:2], np.float32, np.nan, self.directory, "losses") if keep_losses else None
        self.seen = np.zeros(shape[:2], dtype=bool)
        self.targets = np.full(self.n_samples, -1, dtype=np.int64)

    # ------------------------------------------------------------------ writing
    def _ids(self, sample_ids) -> np.ndarray:
        ids = np.asarray(sample_ids).reshape(-1)
        if ids.dtype.kind not in "iu":
            if ids.dtype.kind == "f" and np.all(ids == np.round(ids)):
                ids = ids.astype(np.int64)
            else:
                raise ValueError(f"sample ids must be integers, got dtype {ids.dtype}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.n_samples):
            bad = ids[(ids < 0) | (ids >= self.n_samples)]
            raise ValueError(f"sample ids must lie in [0, {self.n_samples}); got {bad[:5].tolist()}")
        return ids.astype(np.int64, copy=False)

    def update(self, epoch: int, sample_ids, probs, *, targets=None, logits=None, losses=None) -> None:
        """Write one batch.

        Parameters
        ----------
        epoch : int
            Epoch index in ``[0, E)``.
        sample_ids : array-like of shape (B,)
        probs : array-like of shape (B, C)
            Softmax outputs.
        targets : array-like of shape (B,), optional
            Assigned labels of the batch.
        logits : array-like of shape (B, C), optional
            Stored only when ``keep_logits`` was set.
        losses : array-like of shape (B,), optional
            Stored only when ``keep_losses`` was set.
        """
        if not 0 <= int(epoch) < self.n_epochs:
            raise ValueError(f"epoch must lie in [0, {self.n_epochs}), got {epoch}")
        ids = self._ids(sample_ids)
        probs = np.asarray(probs)
        if probs.shape != (ids.size, self.n_classes):
            raise ValueError(f"probs must have shape ({ids.size}, {self.n_classes}), got {probs.shape}")
        self.probs[ids, epoch] = probs
        self.seen[ids, epoch] = True
        if targets is not None:
            t = np.asarray(targets).reshape(-1).astype(np.int64)
            if t.shape != ids.shape:
                raise ValueError(f"targets has {t.size} entries for {ids.size} sample ids")
            if t.size and (t.min() < 0 or t.max() >= self.n_classes):
                raise ValueError(f"targets must lie in [0, {self.n_classes})")
            self.targets[ids] = t
        if logits is not None and self.logits is not None:
            self.logits[ids, epoch] = np.asarray(logits).reshape(ids.size, self.n_classes)
        if losses is not None and self.losses is not None:
            self.losses[ids, epoch] = np.asarray(losses).reshape(ids.size)

    # ------------------------------------------------------------------ reading
    @property
    def missing(self) -> np.ndarray:
        """Bool ``(N, E)``: True where a sample was never recorded in an epoch."""
        return ~self.seen

    def epochs_recorded(self) -> int:
        """Number of leading epochs in which at least one sample was recorded."""
        any_seen = self.seen.any(axis=0)
        return int(np.flatnonzero(any_seen)[-1] + 1) if any_seen.any() else 0

    @classmethod
    def merge(cls, shards: Iterable["DynamicsRecorder"]) -> "DynamicsRecorder":
        """Merge shards (e.g. one per data-parallel rank) into one recorder held in memory.

        Each shard must have the same ``(N, E, C)``. Cells are taken from whichever shard saw them; when
        several saw the same cell, the later shard wins.
        """
        shards = list(shards)
        if not shards:
            raise ValueError("merge needs at least one shard")
        first = shards[0]
        shape = (first.n_samples, first.n_epochs, first.n_classes)
        out = cls(*shape, keep_logits=first.logits is not None, keep_losses=first.losses is not None,
                  prob_dtype=first.probs.dtype)
        for shard in shards:
            if (shard.n_samples, shard.n_epochs, shard.n_classes) != shape:
                raise ValueError(f"cannot merge a shard of shape {(shard.n_samples, shard.n_epochs, shard.n_classes)}"
                                 f" into {shape}")
            cells = shard.seen
            out.probs[cells] = shard.probs[cells]
            if out.logits is not None and shard.logits is not None:
                out.logits[cells] = shard.logits[cells]
            if out.losses is not None and shard.losses is not None:
                out.losses[cells] = shard.losses[cells]
            out.seen |= cells
            known = shard.targets >= 0
            out.targets[known] = shard.targets[known]
        return out

    def flush(self) -> None:
        """Flush memory-mapped arrays to disk (no-op in memory)."""
        for arr in (self.probs, self.logits, self.losses):
            if isinstance(arr, np.memmap):
                arr.flush()

    def __repr__(self) -> str:
        where = f", directory={os.fspath(self.directory)!r}" if self.directory else ""
        return (f"DynamicsRecorder(n_samples={self.n_samples}, n_epochs={self.n_epochs}, "
                f"n_classes={self.n_classes}, recorded={int(self.seen.sum())}/{self.seen.size}{where})")
