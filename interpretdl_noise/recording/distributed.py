"""One recording session for the generator and the hapi callback, single-process or under ``paddle.distributed``.

A :class:`RecordingSession` drives a :class:`~interpretdl_noise.recording.DynamicsRecorder` through its epochs:
``begin_epoch`` / ``add`` (one batch) / ``end_epoch``. It also owns resuming (``resume=True`` reopens the
folder and starts at its ``completed_epochs``) and the non-finite policy (``on_nonfinite='raise'`` or
``'stop'``).

Under ``paddle.distributed`` (detected as ``get_world_size() > 1``, or forced with ``distributed=``) every
rank buffers its own batches of the epoch. At the end of the epoch:

1. every rank ``all_gather`` s a header ``[rows, non-finite rows, C]``, so all ranks take the same
   decision about non-finite values (raise, or stop recording);
2. the rows ``(sample id, step, target)``, float16 probabilities and, when kept, float32 logits / losses
   are ``gather`` ed to rank 0 (padded to the largest rank's row count, as ``gather`` needs equal sizes);
3. rank 0 keeps, for each sample, the copy with the **latest (step, rank)**, where ``step`` is the batch
   number within the epoch (``DistributedBatchSampler`` pads every rank's share by repeating ids, so a
   sample can come twice); the replaced copies are counted in ``recorder.duplicates``. Only rank 0
   allocates the ``(N, E, C)`` store and writes files; the other ranks then wait at a barrier.

A collective that fails because another rank died raises :class:`DistributedRecordingError`, naming the
rank, the epoch and the step, instead of hanging. Paddle is imported only when running distributed.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional

import numpy as np

from .recorder import META_NAME, DynamicsRecorder, NonFiniteDynamicsError

__all__ = ["RecordingSession", "RemoteRecording", "DistributedRecordingError", "latest_copy_wins",
           "world_info", "NONFINITE_POLICIES"]

NONFINITE_POLICIES = ("raise", "stop")


class DistributedRecordingError(RuntimeError):
    """A collective of distributed recording (or training) failed, usually because another rank died."""


@dataclass(frozen=True)
class RemoteRecording:
    """What ranks other than 0 get back from a distributed recording: the recording lives on rank 0.

    Attributes
    ----------
    rank, world_size : int
    n_samples, n_epochs : int
    completed_epochs : int
    directory : Path or None
        Rank 0's folder, when recording with ``directory=``.
    """

    rank: int
    world_size: int
    n_samples: int
    n_epochs: int
    completed_epochs: int
    directory: Optional[Path] = None


def world_info() -> tuple[int, int]:
    """``(rank, world_size)`` of ``paddle.distributed``; ``(0, 1)`` when it is not initialised."""
    from .._paddle import paddle

    dist = paddle.distributed
    try:
        world = int(dist.get_world_size())
    except Exception:  # not initialised / not compiled with distributed support
        return 0, 1
    return (int(dist.get_rank()), world) if world > 1 else (0, 1)


def _initialized() -> bool:
    from .._paddle import paddle

    check = getattr(paddle.distributed, "is_initialized", None)
    return True if check is None else bool(check())


def latest_copy_wins(ids: np.ndarray, steps: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """Indices of the rows to keep: per sample id, the row with the latest ``(step, rank)``.

    Rows with the same ``(id, step, rank)`` (an id twice in one batch) keep the later row.

    Parameters
    ----------
    ids, steps, ranks : ndarray of shape (R,), integer

    Returns
    -------
    ndarray of shape (U,), int64
        One row index per distinct id, sorted by id.
    """
    ids, steps, ranks = (np.asarray(a, dtype=np.int64) for a in (ids, steps, ranks))
    width = int(ranks.max()) + 1 if ranks.size else 1
    # lexsort is stable: rows with the same (id, step, rank) keep their order, so the later row sorts last
    order = np.lexsort((steps * width + ranks, ids))  # by id, then (step, rank) ascending
    last = np.ones(ids.size, dtype=bool)
    sorted_ids = ids[order]
    last[:-1] = sorted_ids[1:] != sorted_ids[:-1]
    return order[last]


def _nonfinite_rows(probs, logits, losses) -> np.ndarray:
    bad = ~np.isfinite(probs).all(axis=1)
    if logits is not None:
        bad |= ~np.isfinite(logits).all(axis=1)
    if losses is not None:
        bad |= ~np.isfinite(losses)
    return bad


class RecordingSession:
    """Drive a recorder through a run (see the module docstring).

    Parameters
    ----------
    n_samples, n_epochs : int
        ``N`` (the global id space, ``len(dataset)``) and ``E``.
    keep_logits, keep_losses : bool
    directory : path, optional
        Persistent folder (rank 0's under ``paddle.distributed``).
    resume : bool, default=False
        Continue the recording in ``directory`` at its ``completed_epochs`` (start from 0 when the folder
        holds none yet).
    distributed : bool, optional
        None: auto (``paddle.distributed.get_world_size() > 1``). False under a multi-rank launch records
        this rank's own shard into ``directory/rank<r>`` (with steps, for :meth:`DynamicsRecorder.merge`).
    on_nonfinite : {'raise', 'stop'}, default='raise'
    """

    def __init__(self, n_samples: int, n_epochs: int, *, keep_logits: bool = False, keep_losses: bool = False,
                 directory=None, resume: bool = False, distributed: Optional[bool] = None,
                 on_nonfinite: str = "raise"):
        if on_nonfinite not in NONFINITE_POLICIES:
            raise ValueError(f"on_nonfinite must be one of {NONFINITE_POLICIES}, got {on_nonfinite!r}")
        if resume and directory is None:
            raise ValueError("resume=True needs directory= (the folder of the recording to continue)")
        self.n_samples, self.n_epochs = int(n_samples), int(n_epochs)
        self.keep_logits, self.keep_losses = keep_logits, keep_losses
        self.on_nonfinite = on_nonfinite
        rank, world = world_info()
        self.active = world > 1 and distributed is not False  # distributed=True in a single process: rank 0 alone
        if self.active and not _initialized():
            raise ValueError(f"paddle.distributed reports {world} ranks but its parallel environment is not "
                             f"initialised: call paddle.distributed.init_parallel_env() before recording (hapi's "
                             f"Model.prepare does it itself), or pass distributed=False to record this rank alone")
        self.rank, self.world_size = rank, world
        self.shard = world > 1 and not self.active
        self.directory = None if directory is None else Path(directory)
        if self.shard and self.directory is not None:
            self.directory = self.directory / f"rank{rank}"
        self.recorder: Optional[DynamicsRecorder] = None
        self.stopped: Optional[NonFiniteDynamicsError] = None
        self.start_epoch = 0
        self._buffer: List[tuple] = []
        self._n_classes: Optional[int] = None
        self._epoch = -1
        self._completed = 0
        status = self._open_existing(resume) if self.is_main else None
        if self.active:
            self._share_start(status)

    # ------------------------------------------------------------------ set-up
    @property
    def is_main(self) -> bool:
        """True on the process that holds the store (rank 0, or any process recording alone)."""
        return not self.active or self.rank == 0

    def _open_existing(self, resume: bool) -> Optional[BaseException]:
        try:
            if self.directory is None or not (self.directory / META_NAME).exists():
                return None
            if not resume:
                raise FileExistsError(
                    f"{self.directory} already holds a recording: pass resume=True to continue it (after restoring "
                    f"the model and optimizer from your checkpoint), or record into an empty folder")
            rec = DynamicsRecorder.open(self.directory, mode="r+")
            if (rec.n_samples, rec.n_epochs) != (self.n_samples, self.n_epochs):
                rec.close()
                raise ValueError(f"cannot resume {self.directory}: it was recorded with N={rec.n_samples}, "
                                 f"E={rec.n_epochs}, this run has N={self.n_samples}, E={self.n_epochs}")
            self.recorder, self._n_classes = rec, rec.n_classes
            self.start_epoch = self._completed = rec.completed_epochs
            return None
        except BaseException as exc:  # re-raised below; under distributed first told to the other ranks
            if not self.active:
                raise
            return exc

    def _share_start(self, status: Optional[BaseException]) -> None:
        """Rank 0 tells every rank where to start (or that it failed), so nobody waits forever."""
        header = [0 if status is None else 1, self.start_epoch]
        got = self._all_gather_ints(header, "starting the recording", -1)
        if self.is_main and status is not None:
            raise status
        if got[0][0]:
            raise DistributedRecordingError(f"rank {self.rank}: rank 0 refused to start the recording "
                                            f"(its log has the reason)")
        self.start_epoch = self._completed = int(got[0][1])

    # ------------------------------------------------------------------ epochs
    def begin_epoch(self, epoch: int) -> None:
        self._epoch = int(epoch)
        self._buffer = []
        if self.recorder is not None:
            self.recorder.begin_epoch(epoch)

    def _allocate(self, n_classes: int) -> DynamicsRecorder:
        meta = {"rank": self.rank, "world_size": self.world_size} if self.shard else {}
        if self.active:
            meta = {"world_size": self.world_size, "gathered_to_rank": 0}
        rec = DynamicsRecorder(self.n_samples, self.n_epochs, n_classes, keep_logits=self.keep_logits,
                               keep_losses=self.keep_losses, directory=self.directory, keep_steps=self.shard,
                               meta=meta)
        if self._epoch != 0:
            rec.close()
            raise ValueError(f"a new recording must start at epoch 0, not {self._epoch}")
        rec.begin_epoch(0)
        return rec

    def _check_classes(self, n_classes: int) -> None:
        if self._n_classes is not None and n_classes != self._n_classes:
            raise ValueError(f"the model outputs {n_classes} classes but the recording has C={self._n_classes}"
                             + (f" ({self.directory})" if self.directory else ""))
        self._n_classes = n_classes

    def add(self, step: int, ids, probs, *, targets=None, logits=None, losses=None) -> None:
        """Record one batch of the current epoch (numpy arrays: ids (B,), probs (B, C), ...)."""
        probs = np.asarray(probs)
        self._check_classes(probs.shape[1])
        if self.active:
            ids = np.asarray(ids).reshape(-1).astype(np.int64)
            if ids.size and (ids.min() < 0 or ids.max() >= self.n_samples):
                bad = ids[(ids < 0) | (ids >= self.n_samples)]
                raise ValueError(f"sample ids must lie in [0, {self.n_samples}); got {bad[:5].tolist()}")
            self._buffer.append((ids, np.full(ids.size, int(step), dtype=np.int64),
                                 np.asarray(targets).reshape(-1).astype(np.int64),
                                 probs.astype(np.float16),
                                 None if logits is None else np.asarray(logits, dtype=np.float32),
                                 None if losses is None else np.asarray(losses, dtype=np.float32).reshape(-1)))
            return
        if self.recorder is None:
            self.recorder = self._allocate(probs.shape[1])
        self.recorder.update(self._epoch, ids, probs, targets=targets, logits=logits, losses=losses, step=step)

    def end_epoch(self, epoch: int) -> bool:
        """Complete the epoch; False when recording stopped (non-finite values with ``on_nonfinite='stop'``)."""
        try:
            if self.active:
                self._end_epoch_distributed(epoch)
            elif self.recorder is not None:
                self.recorder.end_epoch(epoch)
        except NonFiniteDynamicsError as exc:
            if self.on_nonfinite == "raise":
                raise
            self.stopped = exc
            return False
        self._completed = int(epoch) + 1
        return True

    def _end_epoch_distributed(self, epoch: int) -> None:
        parts = self._buffer
        self._buffer = []

        def cat(i, dt, width):
            return np.concatenate([p[i] for p in parts]) if parts else np.zeros((0,) + width, dtype=dt)

        c = self._n_classes or 0
        ids, steps, targets = cat(0, np.int64, ()), cat(1, np.int64, ()), cat(2, np.int64, ())
        probs = cat(3, np.float16, (c,))
        logits = cat(4, np.float32, (c,)) if self.keep_logits and parts and parts[0][4] is not None else None
        losses = cat(5, np.float32, ()) if self.keep_losses and parts and parts[0][5] is not None else None
        bad = _nonfinite_rows(probs, logits, losses)
        header = self._all_gather_ints([ids.size, int(np.unique(ids[bad]).size), c], "the row counts", epoch)
        counts = [int(h[0]) for h in header]
        classes = {int(h[2]) for h, k in zip(header, counts) if k}
        if len(classes) > 1:
            raise ValueError(f"ranks disagree on the number of classes: {sorted(classes)}")
        c = classes.pop() if classes else c
        nonfinite = sum(int(h[1]) for h in header)
        if nonfinite:
            completed = epoch if self.recorder is None else self.recorder.completed_epochs
            if self.recorder is not None:
                self.recorder.discard_epoch(epoch)
                self.recorder.flush()
            self._barrier(epoch)
            raise NonFiniteDynamicsError(epoch, nonfinite, completed, self.n_samples)
        width = max(max(counts), 1)
        ints = np.zeros((width, 3), dtype=np.int64)
        f16 = np.zeros((width, max(c, 1)), dtype=np.float16)
        if ids.size:  # a rank without batches this epoch still takes part, with padding only
            ints[:ids.size] = np.stack([ids, steps, targets], axis=1)
            f16[:ids.size, :c] = probs
        gathered = [self._gather(ints, "the sample ids", epoch), self._gather(f16, "the probabilities", epoch)]
        extra_width = (c if self.keep_logits else 0) + (1 if self.keep_losses else 0)
        if extra_width:
            f32 = np.zeros((width, extra_width), dtype=np.float32)
            if self.keep_logits and logits is not None and ids.size:
                f32[:ids.size, :c] = logits
            if self.keep_losses and losses is not None and ids.size:
                f32[:ids.size, -1] = losses
            gathered.append(self._gather(f32, "the logits / losses", epoch))
        if self.is_main:
            self._store_gathered(epoch, counts, c, gathered)
        self._barrier(epoch)

    def _store_gathered(self, epoch: int, counts: List[int], c: int, gathered) -> None:
        rows = [g[:k] for g, k in zip(gathered[0], counts)]
        ints = np.concatenate(rows)
        ranks = np.concatenate([np.full(k, r, dtype=np.int64) for r, k in enumerate(counts)])
        keep = latest_copy_wins(ints[:, 0], ints[:, 1], ranks)
        probs = np.concatenate([g[:k, :c] for g, k in zip(gathered[1], counts)])[keep]
        logits = losses = None
        if len(gathered) > 2:
            f32 = np.concatenate([g[:k] for g, k in zip(gathered[2], counts)])[keep]
            logits = f32[:, :c] if self.keep_logits else None
            losses = f32[:, -1] if self.keep_losses else None
        if self.recorder is None:
            if not keep.size:
                raise ValueError(f"epoch {epoch}: no rank recorded any sample")
            self.recorder = self._allocate(c)
        rec = self.recorder
        rec.update(epoch, ints[keep, 0], probs, targets=ints[keep, 2], logits=logits, losses=losses)
        rec.duplicates[epoch] += int(ints.shape[0] - keep.size)
        rec.end_epoch(epoch)

    # ------------------------------------------------------------------ collectives
    def _collective(self, what: str, epoch: int, fn: Callable):
        try:
            return fn()
        except RuntimeError as exc:
            where = "at start-up" if epoch < 0 else f"at the end of epoch {epoch}"
            raise DistributedRecordingError(
                f"rank {self.rank} of {self.world_size}: exchanging {what} {where} failed; another rank has "
                f"probably stopped or died (see its log). Original error: {exc}") from exc

    def _all_gather_ints(self, values, what: str, epoch: int) -> List[np.ndarray]:
        from .._paddle import paddle

        tensor = paddle.to_tensor(np.asarray(values, dtype=np.int64))
        out: list = []
        self._collective(what, epoch, lambda: paddle.distributed.all_gather(out, tensor))
        return [o.numpy() for o in out]

    def _gather(self, array: np.ndarray, what: str, epoch: int) -> Optional[List[np.ndarray]]:
        from .._paddle import paddle

        tensor = paddle.to_tensor(array)
        out: Optional[list] = [] if self.is_main else None
        self._collective(what, epoch, lambda: paddle.distributed.gather(tensor, out, dst=0))
        return None if out is None else [o.numpy() for o in out]

    def _barrier(self, epoch: int) -> None:
        from .._paddle import paddle

        self._collective("the end-of-epoch barrier", epoch, lambda: paddle.distributed.barrier())

    def wrap_failure(self, exc: RuntimeError, epoch: int, step: int) -> BaseException:
        """Under distributed training, add the rank, epoch and step to a RuntimeError raised while training."""
        if not self.active or isinstance(exc, DistributedRecordingError):
            return exc
        return DistributedRecordingError(
            f"rank {self.rank} of {self.world_size}: training failed in epoch {epoch}, step {step}; when another "
            f"rank has died this is the consequence (see its log). Original error: {exc}")

    # ------------------------------------------------------------------ end
    def finish(self):
        """The recorder (closed for writing, still readable) on the main process, else a :class:`RemoteRecording`."""
        if self.recorder is not None:
            self.recorder.close()
        if self.is_main:
            return self.recorder
        return RemoteRecording(rank=self.rank, world_size=self.world_size, n_samples=self.n_samples,
                               n_epochs=self.n_epochs, completed_epochs=self._completed, directory=self.directory)

    def abort(self) -> None:
        """After an error: keep what is on disk (completed epochs), release the folder."""
        if self.recorder is not None:
            self.recorder.close()
