"""``DynamicsRecorder``: preallocated ``(N, E, C)`` storage written by sample id, in memory or in a folder.

Rows are addressed by sample id, never by arrival order, so shuffled loaders, incomplete last batches
and shards from several data-parallel ranks all land in the same place. Unwritten cells stay NaN and
are tracked in an explicit ``seen`` mask, so real NaN predictions are not mistaken for gaps.

Epochs have a life cycle: :meth:`DynamicsRecorder.begin_epoch` clears what a cut-short attempt left,
:meth:`DynamicsRecorder.update` writes batches, :meth:`DynamicsRecorder.end_epoch` checks the epoch
(non-finite values raise :class:`NonFiniteDynamicsError`), adds it to float32 running per-class sums
(which ``transform`` uses to rank classes without re-reading every value) and counts it in
``completed_epochs``. Only completed epochs are ever transformed or saved.

With ``directory=`` everything lives in that folder (:data:`FORMAT_VERSION` 1)::

    recording.json   shape, dtypes, completed epochs, duplicates, format version (rewritten atomically)
    probs.npy        (N, E, C) float16, memory-mapped
    seen.npy         (N, E) bool          targets.npy   (N,) int64
    class_sums.npy   (N, C) float32       logits.npy / losses.npy / steps.npy when kept
    .lock            held (``flock``) by the one live writer

so a crash loses at most the epoch in progress, and :meth:`DynamicsRecorder.open` reopens the folder in
another process. A second writer on a folder in use is refused; creating a recording never truncates a
file another process has mapped (old files are unlinked, not overwritten), so it cannot corrupt the
first one's data or crash it with SIGBUS.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

import numpy as np

from ..common.atomic import PathLike, atomic_path

try:  # advisory locks are POSIX-only; elsewhere a folder is not protected against a second writer
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = ["DynamicsRecorder", "NonFiniteDynamicsError", "RecorderInUseError", "FORMAT_VERSION", "META_NAME"]

FORMAT_VERSION = 1
META_NAME = "recording.json"
LOCK_NAME = ".lock"
_ARRAYS = ("probs", "logits", "losses", "steps", "seen", "targets", "class_sums")


class NonFiniteDynamicsError(ValueError):
    """Non-finite logits, probabilities or losses were recorded (usually a diverged run).

    Attributes
    ----------
    epoch : int
        The epoch (0-based) in which they appeared.
    count : int
        Number of samples with a non-finite value in that epoch.
    completed_epochs : int
        Epochs kept (all before ``epoch``).
    """

    def __init__(self, epoch: int, count: int, completed_epochs: int, total: Optional[int] = None):
        of = f" of {total}" if total else ""
        super().__init__(
            f"epoch {epoch}: {count}{of} sample(s) have non-finite logits, probabilities or losses (the run "
            f"probably diverged: lower the learning rate or clip gradients). They are not recorded as gaps; "
            f"{completed_epochs} completed epoch(s) are kept. Pass on_nonfinite='stop' to stop recording there "
            f"and keep the completed epochs instead of raising.")
        self.epoch, self.count, self.completed_epochs = int(epoch), int(count), int(completed_epochs)


class RecorderInUseError(RuntimeError):
    """The recording folder is held by another live recorder (in this or another process)."""


def _write_json(path: Path, data: dict) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())


class DynamicsRecorder:
    """Per-sample, per-epoch softmax (and optionally logits and losses) in preallocated arrays.

    Parameters
    ----------
    n_samples : int
        ``N``; sample ids must be integers in ``[0, N)``.
    n_epochs : int
        ``E``, the number of planned epochs.
    n_classes : int
        ``C``.
    keep_logits : bool, default=False
        Also keep raw logits, shape ``(N, E, C)`` float32 (AUM uses them).
    keep_losses : bool, default=False
        Also keep per-sample losses, shape ``(N, E)`` float32 (EMA loss dynamics uses them).
    directory : path, optional
        Keep everything in this folder (memory-mapped arrays plus ``recording.json``), so the recording
        survives a crash and can be reopened with :meth:`open`. The folder must not already hold a
        recording (reopen it instead) unless ``overwrite=True``.
    prob_dtype : numpy dtype, default=float16
        Storage type of probabilities. float16 matches the npz format and halves memory.
    keep_steps : bool, default=False
        Also keep, per cell, the step (batch number within the epoch) that wrote it, ``(N, E)`` int32.
        Shards recorded per data-parallel rank keep it so that :meth:`merge` can apply the
        "latest (step, rank) copy wins" rule.
    meta : dict, optional
        JSON-able facts stored with the recording (e.g. ``{"rank": 1, "world_size": 2}``).
    overwrite : bool, default=False
        Replace a recording already in ``directory``.

    Attributes
    ----------
    probs : ndarray of shape (N, E, C)
        Softmax per sample and epoch, class order as the model's outputs; NaN where not recorded.
    logits : ndarray of shape (N, E, C) or None
    losses : ndarray of shape (N, E) or None
    steps : ndarray of shape (N, E), int32, or None
    seen : ndarray of shape (N, E), bool
        True where a sample was recorded in an epoch.
    targets : ndarray of shape (N,), int64
        The assigned (possibly noisy) label of each sample; -1 until it is seen.
    duplicates : ndarray of shape (E,), int64
        Per epoch, how many writes replaced an earlier copy of the same cell (e.g. the ids that
        ``DistributedBatchSampler`` repeats to pad its shards).
    """

    def __init__(self, n_samples: int, n_epochs: int, n_classes: int, *, keep_logits: bool = False,
                 keep_losses: bool = False, directory: Optional[PathLike] = None, prob_dtype=np.float16,
                 keep_steps: bool = False, meta: Optional[dict] = None, overwrite: bool = False):
        for name, value, low in (("n_samples", n_samples, 1), ("n_epochs", n_epochs, 1), ("n_classes", n_classes, 2)):
            if not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        self.n_samples, self.n_epochs, self.n_classes = int(n_samples), int(n_epochs), int(n_classes)
        self.directory = None if directory is None else Path(directory)
        self.meta = dict(meta or {})
        self._lock_fd: Optional[int] = None
        self._writable = True
        self._completed = 0
        self._managed = False  # True once epochs are ended explicitly (or the recorder was opened from disk)
        self._sums_valid = True
        self.duplicates = np.zeros(self.n_epochs, dtype=np.int64)
        self.nonfinite = np.zeros(self.n_epochs, dtype=np.int64)
        n, e, c = self.n_samples, self.n_epochs, self.n_classes
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._acquire_lock()
            try:
                if (self.directory / META_NAME).exists() and not overwrite:
                    info = _read_meta(self.directory)
                    raise FileExistsError(
                        f"{self.directory} already holds a recording ({info.get('completed_epochs')} of "
                        f"{info.get('n_epochs')} epochs completed, N={info.get('n_samples')}, "
                        f"C={info.get('n_classes')}):"
                        f" continue it with generator(..., directory=..., resume=True) or "
                        f"DynamicsRecorder.open(directory, mode='r+'), read it with DynamicsRecorder.open(directory), "
                        f"or record into an empty folder (overwrite=True replaces it)")
                (self.directory / META_NAME).unlink(missing_ok=True)  # half-made folders are never resumable
                for name in _ARRAYS:  # unlink, never truncate: a reader's mapping keeps the old inode
                    (self.directory / f"{name}.npy").unlink(missing_ok=True)
            except BaseException:
                self._release_lock()
                raise
        self.probs = self._alloc("probs", (n, e, c), prob_dtype, np.nan)
        self.logits = self._alloc("logits", (n, e, c), np.float32, np.nan) if keep_logits else None
        self.losses = self._alloc("losses", (n, e), np.float32, np.nan) if keep_losses else None
        self.steps = self._alloc("steps", (n, e), np.int32, -1) if keep_steps else None
        self.seen = self._alloc("seen", (n, e), bool, False)
        self.targets = self._alloc("targets", (n,), np.int64, -1)
        self.class_sums = self._alloc("class_sums", (n, c), np.float32, 0.0)
        if self.directory is not None:
            self._write_meta()

    # ------------------------------------------------------------------ storage
    def _alloc(self, name, shape, dtype, fill) -> np.ndarray:
        if self.directory is None:  # zeros come from calloc: pages are only touched when written
            return np.zeros(shape, dtype=dtype) if fill == 0 else np.full(shape, fill, dtype=dtype)
        arr = np.lib.format.open_memmap(self.directory / f"{name}.npy", mode="w+", dtype=dtype, shape=shape)
        if fill != 0:
            arr[...] = fill
        return arr

    def _acquire_lock(self) -> None:
        if fcntl is None:
            return
        fd = os.open(self.directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise RecorderInUseError(
                f"{self.directory} is in use by another live recorder (in this or another process); wait for it "
                f"to finish (or close() it), or record into another folder. Its data is left untouched.") from None
        self._lock_fd = fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def _meta_dict(self) -> dict:
        arrays = {name: {"dtype": str(arr.dtype), "shape": list(arr.shape)}
                  for name in _ARRAYS if (arr := getattr(self, name, None)) is not None}
        return {"format": "interpretdl_noise.DynamicsRecorder", "format_version": FORMAT_VERSION,
                "n_samples": self.n_samples, "n_epochs": self.n_epochs, "n_classes": self.n_classes,
                "completed_epochs": self._completed, "sums_epochs": self._completed if self._sums_valid else None,
                "managed": self._managed, "duplicates": self.duplicates.tolist(), "arrays": arrays,
                "meta": self.meta}

    def _write_meta(self) -> None:
        if self.directory is not None and self._writable:
            _write_json(self.directory / META_NAME, self._meta_dict())

    def flush(self) -> None:
        """Flush memory-mapped arrays to disk and rewrite ``recording.json`` (no-op in memory)."""
        if self.directory is None or not self._writable:
            return
        for name in _ARRAYS:
            arr = getattr(self, name, None)
            if isinstance(arr, np.memmap):
                arr.flush()
        self._write_meta()

    def close(self) -> None:
        """Flush and release the folder's lock; the arrays stay readable, further writes are refused."""
        if self._writable:
            self.flush()
        self._writable = False
        self._release_lock()

    def __del__(self):  # pragma: no cover - best effort
        try:
            self._release_lock()
        except Exception:
            pass

    def _check_writable(self) -> None:
        if not self._writable:
            raise ValueError("this recorder is closed or opened read-only; reopen it with "
                             "DynamicsRecorder.open(directory, mode='r+') to write")

    # ------------------------------------------------------------------ reopening
    @classmethod
    def open(cls, directory: PathLike, *, mode: str = "r") -> "DynamicsRecorder":
        """Reopen a recording folder written by a recorder with ``directory=`` (in any process).

        Parameters
        ----------
        directory : path
        mode : {'r', 'r+'}, default='r'
            ``'r'``: read-only (safe while another process is still recording; ``completed_epochs``
            tells how far it got). ``'r+'``: take the folder's lock and continue writing (resume).

        Returns
        -------
        DynamicsRecorder
            With ``completed_epochs`` whole epochs; an epoch that was cut short is cleared when it is
            begun again.
        """
        if mode not in ("r", "r+"):
            raise ValueError(f"mode must be 'r' or 'r+', got {mode!r}")
        directory = Path(directory)
        if not (directory / META_NAME).is_file():
            raise FileNotFoundError(f"{directory} holds no recording ({META_NAME} is missing)")
        self = cls.__new__(cls)
        self.directory = directory
        self._lock_fd = None
        self._writable = mode == "r+"
        if self._writable:
            self._acquire_lock()
        try:
            info = _read_meta(directory)
            self._load(info, mode)
        except BaseException:
            self._release_lock()
            raise
        if self._writable and not self._sums_valid:
            self._recompute_sums()
        return self

    def _load(self, info: dict, mode: str) -> None:
        if info.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{self.directory}: unsupported recording format version {info.get('format_version')!r} "
                             f"(this version reads {FORMAT_VERSION})")
        self.n_samples, self.n_epochs, self.n_classes = (int(info[k]) for k in ("n_samples", "n_epochs", "n_classes"))
        self._completed = int(info["completed_epochs"])
        self._managed = bool(info.get("managed", True))
        self._sums_valid = info.get("sums_epochs") == self._completed
        self.meta = dict(info.get("meta") or {})
        self.duplicates = np.zeros(self.n_epochs, dtype=np.int64)
        dups = np.asarray(info.get("duplicates") or [], dtype=np.int64)[:self.n_epochs]
        self.duplicates[:dups.size] = dups
        self.nonfinite = np.zeros(self.n_epochs, dtype=np.int64)
        for name in _ARRAYS:
            spec = info["arrays"].get(name)
            if spec is None:
                setattr(self, name, None)
                continue
            path = self.directory / f"{name}.npy"
            try:
                arr = np.load(path, mmap_mode=mode, allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise ValueError(f"{self.directory}: cannot read {path.name} ({exc}); the folder is "
                                 f"incomplete") from exc
            if list(arr.shape) != list(spec["shape"]) or str(arr.dtype) != spec["dtype"]:
                raise ValueError(f"{self.directory}: {path.name} has shape {arr.shape} {arr.dtype}, "
                                 f"{META_NAME} says {tuple(spec['shape'])} {spec['dtype']}")
            setattr(self, name, arr)
        for name in ("probs", "seen", "targets", "class_sums"):
            if getattr(self, name) is None:
                raise ValueError(f"{self.directory}: {name}.npy is missing")

    def _recompute_sums(self) -> None:
        """Rebuild the running class sums from the completed epochs (after a crash during an epoch end)."""
        self.class_sums[...] = 0.0
        for epoch in range(self._completed):
            self._add_to_sums(epoch)
        self._sums_valid = True
        self.flush()

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

    def _check_epoch(self, epoch: int) -> int:
        epoch = int(epoch)
        if not 0 <= epoch < self.n_epochs:
            raise ValueError(f"epoch must lie in [0, {self.n_epochs}), got {epoch}")
        if self._managed and epoch < self._completed:
            raise ValueError(f"epoch {epoch} is already completed ({self._completed} completed epochs); "
                             f"completed epochs are never rewritten")
        return epoch

    def update(self, epoch: int, sample_ids, probs, *, targets=None, logits=None, losses=None,
               step: Optional[int] = None) -> None:
        """Write one batch. A sample written twice in an epoch keeps the later copy (counted in ``duplicates``).

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
            Stored only when ``keep_logits`` was set (always checked for non-finite values).
        losses : array-like of shape (B,), optional
            Stored only when ``keep_losses`` was set (always checked for non-finite values).
        step : int, optional
            Batch number within the epoch, stored when ``keep_steps`` was set.
        """
        self._check_writable()
        epoch = self._check_epoch(epoch)
        ids = self._ids(sample_ids)
        probs = np.asarray(probs)
        if probs.shape != (ids.size, self.n_classes):
            raise ValueError(f"probs must have shape ({ids.size}, {self.n_classes}), got {probs.shape}")
        bad = ~np.isfinite(probs).all(axis=1)
        if logits is not None:
            logits = np.asarray(logits).reshape(ids.size, self.n_classes)
            bad |= ~np.isfinite(logits).all(axis=1)
        if losses is not None:
            losses = np.asarray(losses).reshape(ids.size)
            bad |= ~np.isfinite(losses)
        if bad.any():  # counted now, refused at end_epoch (and by transform/save): never a gap to fill in
            self.nonfinite[epoch] += int(np.unique(ids[bad]).size)
        unique = np.unique(ids)
        self.duplicates[epoch] += ids.size - unique.size + int(self.seen[unique, epoch].sum())
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
            self.logits[ids, epoch] = logits
        if losses is not None and self.losses is not None:
            self.losses[ids, epoch] = losses
        if step is not None and self.steps is not None:
            self.steps[ids, epoch] = int(step)

    def begin_epoch(self, epoch: int) -> None:
        """Start ``epoch`` (which must be ``completed_epochs``): clear anything a cut-short attempt left in it."""
        self._check_writable()
        self._managed = True
        if int(epoch) != self._completed:
            raise ValueError(f"epoch {epoch} cannot begin: {self._completed} epoch(s) are completed, so the next "
                             f"one is epoch {self._completed}")
        self.discard_epoch(epoch)

    def discard_epoch(self, epoch: int) -> None:
        """Forget everything written into a not-yet-completed ``epoch``."""
        epoch = self._check_epoch(epoch)
        if self.seen[:, epoch].any():
            self.probs[:, epoch] = np.nan
            self.seen[:, epoch] = False
            if self.logits is not None:
                self.logits[:, epoch] = np.nan
            if self.losses is not None:
                self.losses[:, epoch] = np.nan
            if self.steps is not None:
                self.steps[:, epoch] = -1
        self.nonfinite[epoch] = 0
        self.duplicates[epoch] = 0

    def end_epoch(self, epoch: int) -> None:
        """Complete ``epoch``: check it, add it to the running class sums, flush, count it in ``completed_epochs``.

        Raises
        ------
        NonFiniteDynamicsError
            If any sample had non-finite values in this epoch; the epoch is discarded and the completed
            epochs before it are kept.
        """
        self._check_writable()
        self._managed = True
        epoch = self._check_epoch(epoch)
        if epoch != self._completed:
            raise ValueError(f"epoch {epoch} cannot end: the next epoch to complete is {self._completed}")
        if self.nonfinite[epoch]:
            count = int(self.nonfinite[epoch])
            self.discard_epoch(epoch)
            self.flush()
            raise NonFiniteDynamicsError(epoch, count, self._completed, self.n_samples)
        self.flush()  # the epoch's cells are on disk before they are counted
        self._completed = epoch + 1
        self._sums_valid = False
        self._write_meta()  # completed, sums marked stale while they change
        self._add_to_sums(epoch)
        self._sums_valid = True
        self.flush()

    def _add_to_sums(self, epoch: int) -> None:
        # float32 running sums in epoch order: the same sequential float32 accumulation as numpy's float16 mean
        for start in range(0, self.n_samples, 65536):
            stop = start + 65536
            block = self.probs[start:stop, epoch].astype(np.float32)
            self.class_sums[start:stop] += np.where(self.seen[start:stop, epoch, None], block, 0.0)

    # ------------------------------------------------------------------ reading
    @property
    def completed_epochs(self) -> int:
        """Whole epochs recorded. A recorder filled with :meth:`update` only (never :meth:`end_epoch`) counts
        every epoch that holds data."""
        return self._completed if self._managed else self.epochs_recorded()

    @property
    def missing(self) -> np.ndarray:
        """Bool ``(N, E)``: True where a sample was never recorded in an epoch."""
        return ~self.seen

    def epochs_recorded(self) -> int:
        """Number of leading epochs in which at least one sample was recorded."""
        any_seen = self.seen.any(axis=0)
        return int(np.flatnonzero(any_seen)[-1] + 1) if any_seen.any() else 0

    def running_means(self, n_epochs: Optional[int] = None) -> Optional[np.ndarray]:
        """Per-class means over the first ``n_epochs`` completed epochs as float32 ``(N, C)``, or None.

        Valid only for samples seen in all of those epochs; None when the running sums do not cover
        exactly those epochs (e.g. a recorder filled with :meth:`update` only).
        """
        n_epochs = self.completed_epochs if n_epochs is None else int(n_epochs)
        if not (self._managed and self._sums_valid and n_epochs == self._completed and n_epochs > 0):
            return None
        from .transform import running_class_means

        return running_class_means(self.class_sums, n_epochs)

    def coverage(self, n_epochs: Optional[int] = None) -> np.ndarray:
        """Share of samples seen in each of the first ``n_epochs`` epochs, shape (E',) float64."""
        n_epochs = self.completed_epochs if n_epochs is None else int(n_epochs)
        return self.seen[:, :n_epochs].mean(axis=0)

    # ------------------------------------------------------------------ merging shards
    @classmethod
    def merge(cls, shards: Iterable[Union["DynamicsRecorder", PathLike]], *, directory: Optional[PathLike] = None,
              ranks: Optional[Sequence[int]] = None) -> "DynamicsRecorder":
        """Merge shards (e.g. one per data-parallel rank) into one recorder.

        Parameters
        ----------
        shards : iterable of DynamicsRecorder or path
            Recorders, or folders written by recorders with ``directory=`` (opened read-only). All must
            have the same ``(N, E, C)``.
        directory : path, optional
            Write the merged recording into this folder (memory-mapped) instead of memory.
        ranks : sequence of int, optional
            Rank of each shard; defaults to the ``rank`` stored in a shard's ``meta``, else its position.

        Returns
        -------
        DynamicsRecorder
            Holding the epochs completed in every shard.

        Notes
        -----
        Tie rule, the same as recording under ``paddle.distributed``: when several shards hold the same
        (sample, epoch) cell, the copy with the latest ``(step, rank)`` wins, where ``step`` is the batch
        number within the epoch (kept by shards recorded with ``keep_steps=True``, as the generator does
        per rank with ``distributed=False``). Shards without steps are ordered by rank alone. Replaced
        copies are counted in the result's ``duplicates``.
        """
        shards = [cls.open(s) if isinstance(s, (str, os.PathLike)) else s for s in shards]
        if not shards:
            raise ValueError("merge needs at least one shard")
        first = shards[0]
        shape = (first.n_samples, first.n_epochs, first.n_classes)
        for shard in shards:
            if (shard.n_samples, shard.n_epochs, shard.n_classes) != shape:
                raise ValueError(f"cannot merge a shard of shape {(shard.n_samples, shard.n_epochs, shard.n_classes)}"
                                 f" into {shape}")
        if ranks is None:
            ranks = [int(s.meta.get("rank", i)) for i, s in enumerate(shards)]
        if len(set(ranks)) != len(ranks):
            raise ValueError(f"shards need distinct ranks, got {list(ranks)}")
        completed = min(s.completed_epochs for s in shards)
        if completed == 0:
            raise ValueError("no epoch is completed in every shard; nothing to merge")
        meta = {"merged_ranks": [int(r) for r in ranks]}
        out = cls(*shape, keep_logits=all(s.logits is not None for s in shards),
                  keep_losses=all(s.losses is not None for s in shards), prob_dtype=first.probs.dtype,
                  directory=directory, meta=meta)
        order = np.argsort(ranks, kind="stable")
        for epoch in range(completed):
            out.begin_epoch(epoch)
            best = np.full(shape[0], -1, dtype=np.int64)  # winning (step, rank) key per sample
            copies = np.zeros(shape[0], dtype=np.int64)
            for i in order:
                shard, rank = shards[i], int(ranks[i])
                seen = np.asarray(shard.seen[:, epoch])
                step = (np.asarray(shard.steps[:, epoch], dtype=np.int64) if shard.steps is not None
                        else np.zeros(shape[0], dtype=np.int64))
                key = np.where(seen, (step + 1) * (1 << 20) + rank, -1)
                win = key > best
                copies += seen
                if not win.any():
                    continue
                best[win] = key[win]
                ids = np.flatnonzero(win)
                out.probs[ids, epoch] = shard.probs[ids, epoch]
                out.seen[ids, epoch] = True
                if out.logits is not None:
                    out.logits[ids, epoch] = shard.logits[ids, epoch]
                if out.losses is not None:
                    out.losses[ids, epoch] = shard.losses[ids, epoch]
                known = np.asarray(shard.targets)[ids] >= 0
                out.targets[ids[known]] = np.asarray(shard.targets)[ids[known]]
            out.duplicates[epoch] = int(np.maximum(copies - 1, 0).sum()) + int(
                sum(s.duplicates[epoch] for s in shards))
            out.end_epoch(epoch)
        return out

    def __repr__(self) -> str:
        where = f", directory={os.fspath(self.directory)!r}" if self.directory else ""
        return (f"DynamicsRecorder(n_samples={self.n_samples}, n_epochs={self.n_epochs}, "
                f"n_classes={self.n_classes}, completed_epochs={self.completed_epochs}{where})")


def _read_meta(directory: Path) -> dict:
    try:
        with open(directory / META_NAME) as fh:
            info = json.load(fh)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{directory / META_NAME} is not a readable recording description ({exc})") from exc
    if not isinstance(info, dict) or "arrays" not in info:
        raise ValueError(f"{directory / META_NAME} is not a DynamicsRecorder description")
    return info

