"""``TrainingDynamics``: record per-sample softmax while a Paddle model trains (InterpretDL-compatible API).

The Paddle side is thin: run the loop, take ``softmax(logits)`` of each batch and hand it to a
:class:`~interpretdl_noise.recording.DynamicsRecorder`, which writes by sample id into preallocated
arrays. ``transform`` and ``save`` use the numpy core in :mod:`interpretdl_noise.recording`.
"""
from __future__ import annotations

from pathlib import Path
import warnings
from typing import Any, Callable, Dict, Mapping, Optional, Tuple, Union

import numpy as np
from tqdm.auto import tqdm

from .._paddle import paddle
from ..common.atomic import PathLike
from ..recording import DynamicsRecorder, load_training_dynamics, save_training_dynamics, transform_dynamics
from ..recording.distributed import RecordingSession, RemoteRecording
from ..recording.transform import (DEFAULT_MAX_UNSEEN, check_coverage, dict_to_array, recorder_arrays,
                                   transform_recorder)
from .abc_interpreter import Interpreter

RECORD_MODES = ("train", "eval")
SCHEDULER_STEPS = ("epoch", "step")


def _batches(loader):
    """InterpretDL calls ``train_loader()``; a ``paddle.io.DataLoader`` is also plainly iterable."""
    return iter(loader) if hasattr(loader, "__iter__") else loader()


_BATCH_HINT = ("the generator expects each batch as (indices, x, y): the integer sample ids in [0, N) first, "
               "as InterpretDL's generator does; wrap your dataset as DatasetWithIndex(dataset, index_first=True)")


def _check_loader(loader) -> None:
    """Refuse, before training, a ``DatasetWithIndex`` in ``paddle.Model`` order (index last)."""
    from ..data.datasets import DatasetWithIndex

    dataset = getattr(loader, "dataset", None)
    if isinstance(dataset, DatasetWithIndex) and not dataset.index_first:
        raise ValueError(f"train_loader's DatasetWithIndex yields (x, y, index) (index_first=False, the order "
                         f"paddle.Model needs); {_BATCH_HINT}")


def _unpack(batch):
    """``(indices, x, y)`` from one batch, with a clear error for the other layouts."""
    if not isinstance(batch, (tuple, list)) or len(batch) != 3:
        got = f"{len(batch)} items" if isinstance(batch, (tuple, list)) else type(batch).__name__
        raise ValueError(f"train_loader yielded a batch of {got}; {_BATCH_HINT}")
    indices = batch[0]
    dtype = indices.dtype if isinstance(indices, (paddle.Tensor, np.ndarray)) else np.asarray(indices).dtype
    kind = "int" if ("int" in str(dtype)) else "other"
    shape = list(indices.shape) if hasattr(indices, "shape") else list(np.shape(indices))
    if kind != "int" or len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
        raise ValueError(f"the first item of each batch must be the sample ids, integers of shape (B,), got "
                         f"{str(dtype).replace('paddle.', '')} of shape {shape}; {_BATCH_HINT}")
    return batch


def _to_numpy(value) -> np.ndarray:
    return value.numpy() if isinstance(value, paddle.Tensor) else np.asarray(value)


def _as_batch(x, y):
    """Inputs as a tensor and labels as an int64 tensor of shape (B,), whatever the loader yields."""
    x = x if isinstance(x, paddle.Tensor) else paddle.to_tensor(np.asarray(x))
    y = y if isinstance(y, paddle.Tensor) else paddle.to_tensor(np.asarray(y))
    return x, y.reshape([-1]).astype("int64")


def _set_sampler_epoch(loader, epoch: int) -> None:
    """``DistributedBatchSampler`` shuffles by its epoch; setting it makes a resumed run draw the same batches."""
    sampler = getattr(loader, "batch_sampler", None)
    if sampler is not None and hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)


def per_sample_cross_entropy(logits, labels):
    """Default loss: cross-entropy per sample, shape (B,)."""
    return paddle.nn.functional.cross_entropy(logits, labels.reshape([-1, 1]), reduction="none").reshape([-1])


class TrainingDynamics(Interpreter):
    """Train a Paddle classifier and record each sample's per-epoch softmax.

    Parameters
    ----------
    model : paddle.nn.Layer
        The classifier; its forward returns logits of shape (B, C).
    device : str, default='cpu'
        ``'cpu'`` or ``'gpu:N'`` (falls back to CPU with a warning). Set only while training.

    Examples
    --------
    >>> td = TrainingDynamics(net)                                   # doctest: +SKIP
    >>> record = td.generator(loader, optimizer, epochs=20)          # loader yields (indices, x, y)
    >>> td.save(record, label_flip=flips, save_path="out/")          # out/training_dynamics.npz
    """

    def __init__(self, model, device: str = "cpu"):
        super().__init__(model, device)
        self.recorder: Optional[DynamicsRecorder] = None
        self.training_dynamics: Optional[np.ndarray] = None
        self.labels: Optional[np.ndarray] = None

    def interpret(self, *args, **kwargs):
        """Alias of :meth:`generator`, so ``TrainingDynamics`` fits the Interpreter hierarchy."""
        return self.generator(*args, **kwargs)

    # ------------------------------------------------------------------ recording
    def generator(self, train_loader, optimizer, epochs: int, *,
                  loss_fn: Optional[Callable] = None, lr_scheduler=None, scheduler_step: str = "epoch",
                  record: str = "train", eval_loader=None, keep_logits: bool = False, keep_losses: bool = False,
                  n_samples: Optional[int] = None, directory: Optional[PathLike] = None, resume: bool = False,
                  distributed: Optional[bool] = None, on_nonfinite: str = "raise",
                  on_epoch_end: Optional[Callable[[int], Any]] = None,
                  progress: bool = True) -> Union[DynamicsRecorder, RemoteRecording, None]:
        """Train for ``epochs`` epochs and record every sample in every epoch.

        Parameters
        ----------
        train_loader : iterable or callable
            Yields ``(indices, x, y)`` batches with integer sample ids in ``[0, N)``, e.g. a
            ``paddle.io.DataLoader`` over ``DatasetWithIndex(ds, index_first=True)``. Incomplete last
            batches are recorded like any other.
        optimizer : paddle.optimizer.Optimizer
        epochs : int
        loss_fn : callable, optional
            ``loss_fn(logits (B, C), labels (B,)) -> losses``, per sample (B,) or a scalar. The mean is
            minimised. Default: per-sample cross-entropy. When it returns a scalar, recorded losses
            (``keep_losses``) are per-sample cross-entropy of the same logits.
        lr_scheduler : paddle.optimizer.lr.LRScheduler, optional
            Defaults to the optimizer's scheduler when it has one.
        scheduler_step : {'epoch', 'step'}, default='epoch'
            Step the scheduler once per epoch, or after every optimizer step (per batch).
        record : {'train', 'eval'}, default='train'
            ``'train'``: the softmax of the logits used for the SGD step (InterpretDL's behaviour).
            ``'eval'``: a separate ``model.eval()`` pass after each epoch (the BHDF paper's protocol).
        eval_loader : optional
            Loader for the ``'eval'`` pass; defaults to ``train_loader``.
        keep_logits, keep_losses : bool, default=False
            Also keep raw logits (N, E, C) and per-sample losses (N, E).
        n_samples : int, optional
            ``N``; defaults to ``len(train_loader.dataset)`` (the whole data set, also under
            ``paddle.distributed``: ids are global).
        directory : path, optional
            Keep the recording in this folder (memory-mapped, updated at every epoch end), so a crash
            loses at most the epoch in progress. The folder must not hold a recording unless ``resume``.
        resume : bool, default=False
            Continue the recording in ``directory`` at its ``completed_epochs`` (from 0 when there is none
            yet), running epochs ``completed_epochs .. epochs-1``. Restore the model and optimizer from
            your own checkpoint first: the recorder stores dynamics, not weights. An epoch that was cut
            short is recorded again from its start.
        distributed : bool, optional
            Default: automatic, on when ``paddle.distributed.get_world_size() > 1``. Then every rank
            records its own batches, rank 0 gathers them after each epoch into the one ``(N, E, C)``
            store (the latest ``(step, rank)`` copy of a duplicated sample wins), only rank 0 writes
            files, and the other ranks wait at a barrier. ``False`` under a multi-rank launch records
            each rank's own shard (into ``directory/rank<r>``) for :meth:`DynamicsRecorder.merge`.
        on_nonfinite : {'raise', 'stop'}, default='raise'
            Non-finite logits, probabilities or losses (a diverged run) raise
            :class:`~interpretdl_noise.recording.NonFiniteDynamicsError` naming the epoch and the number
            of samples; ``'stop'`` stops training there and returns the completed epochs (the reason is
            kept as ``self.stopped_``). They are never recorded as gaps.
        on_epoch_end : callable, optional
            ``on_epoch_end(epoch)``, called on every rank after epoch ``epoch`` is recorded (and on disk)
            and the epoch's scheduler step: the place to save your model / optimizer / scheduler checkpoint
            for ``resume`` (it then matches ``completed_epochs == epoch + 1``).
        progress : bool, default=True
            Show a tqdm bar (on rank 0 only).

        Returns
        -------
        DynamicsRecorder or RemoteRecording
            The recorder (accepted by :meth:`transform` and :meth:`save`; also ``self.recorder``) on rank 0
            or a single process; a small :class:`~interpretdl_noise.recording.distributed.RemoteRecording`
            on the other ranks.
        """
        if record not in RECORD_MODES:
            raise ValueError(f"record must be one of {RECORD_MODES}, got {record!r}")
        if scheduler_step not in SCHEDULER_STEPS:
            raise ValueError(f"scheduler_step must be one of {SCHEDULER_STEPS}, got {scheduler_step!r}")
        if not isinstance(epochs, (int, np.integer)) or epochs < 1:
            raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
        if n_samples is None:
            dataset = getattr(train_loader, "dataset", None)
            if dataset is None:
                raise ValueError("n_samples is required when train_loader has no .dataset")
            n_samples = len(dataset)
        _check_loader(train_loader)
        scheduler = getattr(optimizer, "_learning_rate", None)
        if lr_scheduler is None and isinstance(scheduler, paddle.optimizer.lr.LRScheduler):
            lr_scheduler = scheduler
        loss_fn = loss_fn or per_sample_cross_entropy
        model = self.model
        was_training = model.training
        self.recorder = None
        self.stopped_ = None
        session = RecordingSession(int(n_samples), int(epochs), keep_logits=keep_logits, keep_losses=keep_losses,
                                   directory=directory, resume=resume, distributed=distributed,
                                   on_nonfinite=on_nonfinite)
        self._session = session

        def store(step, ids, logits, y, losses):
            probs = paddle.nn.functional.softmax(logits.detach(), axis=-1).numpy()
            session.add(step, _to_numpy(ids), probs, targets=_to_numpy(y),
                        logits=logits.detach().numpy() if keep_logits else None,
                        losses=losses.detach().numpy() if (keep_losses and losses is not None) else None)

        bar = tqdm(range(session.start_epoch, epochs), desc="training dynamics", unit="epoch",
                   disable=not (progress and session.rank == 0), initial=session.start_epoch, total=epochs)
        epoch = step = session.start_epoch
        try:
            with self.device_scope():
                for epoch in bar:
                    session.begin_epoch(epoch)
                    _set_sampler_epoch(train_loader, epoch)
                    model.train()
                    seen = correct = 0
                    total_loss = 0.0
                    step = 0
                    for step, batch in enumerate(_batches(train_loader)):
                        indices, x, y = _unpack(batch)
                        x, y = _as_batch(x, y)
                        logits = model(x)
                        losses = loss_fn(logits, y)
                        per_sample = losses.ndim > 0 and int(np.prod(losses.shape)) == int(y.shape[0])
                        loss = losses.mean() if losses.ndim > 0 else losses
                        loss.backward()
                        optimizer.step()
                        optimizer.clear_grad()
                        if lr_scheduler is not None and scheduler_step == "step":
                            lr_scheduler.step()
                        if per_sample:
                            losses = losses.reshape([-1])
                        else:
                            losses = per_sample_cross_entropy(logits.detach(), y) if keep_losses else None
                        if record == "train":
                            store(step, indices, logits, y, losses)
                        batch_size = int(y.shape[0])
                        seen += batch_size
                        total_loss += float(loss) * batch_size
                        correct += int((logits.argmax(axis=-1) == y).astype("int64").sum())
                    if record == "eval":
                        self._eval_pass(eval_loader or train_loader, epoch, loss_fn, store, keep_losses)
                    if not session.end_epoch(epoch):
                        self.stopped_ = session.stopped
                        warnings.warn(f"recording stopped: {session.stopped}", RuntimeWarning, stacklevel=2)
                        break
                    if lr_scheduler is not None and scheduler_step == "epoch":
                        lr_scheduler.step()
                    if on_epoch_end is not None:
                        on_epoch_end(epoch)
                    bar.set_postfix(loss=f"{total_loss / max(seen, 1):.4f}", acc=f"{correct / max(seen, 1):.3f}")
        except RuntimeError as exc:
            session.abort()
            wrapped = session.wrap_failure(exc, epoch, step)
            if wrapped is exc:
                raise
            raise wrapped from exc
        except BaseException:
            session.abort()
            raise
        finally:
            bar.close()
            if was_training:
                model.train()
            else:
                model.eval()
        result = session.finish()
        if session.is_main:
            if result is None:
                raise ValueError("train_loader yielded no batch; nothing was recorded")
            self.recorder = result
        return result

    def _eval_pass(self, loader, epoch, loss_fn, store, keep_losses):
        model = self.model
        model.eval()
        with paddle.no_grad():
            for step, batch in enumerate(_batches(loader)):
                indices, x, y = _unpack(batch)
                x, y = _as_batch(x, y)
                logits = model(x)
                losses = per_sample_cross_entropy(logits, y) if keep_losses else None
                store(step, indices, logits, y, losses)
        model.train()

    # ------------------------------------------------------------------ transform / save
    @staticmethod
    def _as_arrays(logits, assigned_targets, max_unseen: float = DEFAULT_MAX_UNSEEN
                   ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, Dict[str, Any]]:
        """Normalise the accepted record types to ``(probs (N,E,C), targets (N,), ids (N,), extras)``."""
        extras: Dict[str, Any] = {}
        if isinstance(logits, DynamicsRecorder):
            if assigned_targets is None:
                return recorder_arrays(logits, max_unseen=max_unseen)
            probs, _, ids, extras = recorder_arrays(logits, check_targets=False, max_unseen=max_unseen)
            return probs, np.asarray(assigned_targets).reshape(-1), ids, extras
        if isinstance(logits, RemoteRecording):
            raise ValueError(f"this is rank {logits.rank} of {logits.world_size}: the recording was gathered to "
                             f"rank 0; transform it there (if paddle.distributed.get_rank() == 0: ...)")
        if isinstance(logits, Mapping):
            ids, probs = dict_to_array(logits)
        else:
            probs = np.asarray(logits, dtype=np.float32)
            ids = np.arange(probs.shape[0]) if probs.ndim == 3 else None
        if probs.ndim == 3:
            check_coverage(~np.isnan(probs).all(axis=2), max_unseen=max_unseen, source="training dynamics")
        if assigned_targets is None:
            raise ValueError("assigned_targets is required unless a DynamicsRecorder from generator() is given")
        return probs, np.asarray(assigned_targets).reshape(-1), ids, extras

    def _transform(self, logits, assigned_targets, max_unseen):
        if isinstance(logits, DynamicsRecorder):  # ranks classes from the recorder's running float32 sums
            return transform_recorder(logits, assigned_targets, max_unseen=max_unseen)
        probs, targets, ids, extras = self._as_arrays(logits, assigned_targets, max_unseen)
        td, labels = transform_dynamics(probs, targets, sample_ids=ids)
        return td, labels, ids, extras

    def transform(self, logits, assigned_targets=None, *, max_unseen: float = DEFAULT_MAX_UNSEEN
                  ) -> Tuple[np.ndarray, np.ndarray]:
        """Turn a record into InterpretDL's ``td`` / ``labels`` (also stored on ``self``).

        Parameters
        ----------
        logits : DynamicsRecorder or dict or ndarray
            The record from :meth:`generator` (its completed epochs only); or InterpretDL's
            ``{index: [E probability vectors]}`` dict (all-NaN vectors mark missing epochs; ordered by
            index); or an (N, E, C) array.
        assigned_targets : array-like of shape (N,), optional
            Assigned labels, in the record's sample order. Optional for a ``DynamicsRecorder``.
        max_unseen : float, default=0.5
            Refuse a record in which more than this share of some epoch's samples is missing (for
            example one data-parallel rank's shard); ``1.0`` accepts anything.

        Returns
        -------
        td : ndarray of shape (N, E, C), float16
        labels : ndarray of shape (N, C), int16

        Notes
        -----
        For a recorder, classes are ranked by the float32 running per-class sums it kept while recording
        (rounded to float16), so the float16 values are read once, for the output. Those means are
        InterpretDL's float16 means bit for bit (same accumulation order); means computed any other way
        could rank exact near-ties differently. Channel 0, the assigned label, never depends on it.
        """
        td, labels, _, _ = self._transform(logits, assigned_targets, max_unseen)
        self.training_dynamics, self.labels = td, labels
        return td, labels

    def save(self, logits, assigned_targets=None, label_flip=None, save_path: Optional[PathLike] = None,
             meta: Optional[dict] = None, *, max_unseen: float = DEFAULT_MAX_UNSEEN) -> "TrainingDynamics":
        """Transform and write ``training_dynamics.npz`` atomically (no pickle).

        Parameters
        ----------
        logits, assigned_targets, max_unseen
            As in :meth:`transform`. A recorder cut short (a crash, ``on_nonfinite='stop'``) is saved with
            its completed epochs only (``meta['completed_epochs']`` of ``meta['planned_epochs']``), with a
            warning; epochs that did not run are never invented.
        label_flip : array-like of shape (N,), optional
            1/True for known mislabeled samples.
        save_path : path
            A folder (``training_dynamics.npz`` is written inside, as InterpretDL does) or a ``.npz``
            file path. Required: nothing is written to the working directory by default.
        meta : dict, optional
            Extra JSON metadata.

        Returns
        -------
        TrainingDynamics
            ``self``; the written file is ``self.save_path_`` (None on data-parallel ranks other than 0,
            which write nothing, so one script runs unchanged on every rank).
        """
        if save_path is None:
            raise ValueError("save_path is required (a folder or an .npz path); interpretdl_noise never writes "
                             "into the working directory unasked")
        if isinstance(logits, RemoteRecording):  # only rank 0 writes files
            self.save_path_ = None
            return self
        path = Path(save_path)
        if path.suffix != ".npz":
            path = path / "training_dynamics.npz"
        td, labels, ids, extras = self._transform(logits, assigned_targets, max_unseen)
        self.training_dynamics, self.labels = td, labels
        info = {"n_samples": int(td.shape[0]), "n_epochs": int(td.shape[1]), "n_classes": int(td.shape[2])}
        if isinstance(logits, DynamicsRecorder):
            info.update(completed_epochs=int(td.shape[1]), planned_epochs=int(logits.n_epochs),
                        duplicates=int(np.asarray(logits.duplicates).sum()))
            if logits.meta:  # e.g. the world size of a data-parallel recording
                info["recorder"] = dict(logits.meta)
            if td.shape[1] < logits.n_epochs:
                warnings.warn(f"saving the {td.shape[1]} completed epoch(s) of {logits.n_epochs} planned; the "
                              f"others did not run and are not invented", UserWarning, stacklevel=2)
        info.update(meta or {})
        self.save_path_ = save_training_dynamics(path, td, labels, label_flip=label_flip, meta=info,
                                                 sample_ids=np.asarray(ids, dtype=np.int64), **extras)
        return self


__all__ = ["TrainingDynamics", "load_training_dynamics", "per_sample_cross_entropy"]
