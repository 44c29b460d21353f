"""``TrainingDynamics``: record per-sample softmax while a Paddle model trains (InterpretDL-compatible API).

The Paddle side is thin: run the loop, take ``softmax(logits)`` of each batch and hand it to a
:class:`~interpretdl_noise.recording.DynamicsRecorder`, which writes by sample id into preallocated
arrays. ``transform`` and ``save`` use the numpy core in :mod:`interpretdl_noise.recording`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

import numpy as np
from tqdm.auto import tqdm

from .._paddle import paddle
from ..common.file_utils import PathLike
from ..recording import DynamicsRecorder, load_training_dynamics, save_training_dynamics, transform_dynamics
from ..recording.transform import dict_to_array, recorder_arrays
from .abc_interpreter import Interpreter

RECORD_MODES = ("train", "eval")


def _batches(loader):
    """InterpretDL calls ``train_loader()``; a ``paddle.io.DataLoader`` is also plainly iterable."""
    return iter(loader) if hasattr(loader, "__iter__") else loader()


def _to_numpy(value) -> np.ndarray:
    return value.numpy() if isinstance(value, paddle.Tensor) else np.asarray(value)


def _as_batch(x, y):
    """Inputs as a tensor and labels as an int64 tensor of shape (B,), whatever the loader yields."""
    x = x if isinstance(x, paddle.Tensor) else paddle.to_tensor(np.asarray(x))
    y = y if isinstance(y, paddle.Tensor) else paddle.to_tensor(np.asarray(y))
    return x, y.reshape([-1]).astype("int64")


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
                  loss_fn: Optional[Callable] = None, lr_scheduler=None, record: str = "train",
                  eval_loader=None, keep_logits: bool = False, keep_losses: bool = False,
                  n_samples: Optional[int] = None, directory: Optional[PathLike] = None,
                  progress: bool = True) -> DynamicsRecorder:
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
            Stepped once per epoch. Defaults to the optimizer's scheduler when it has one.
        record : {'train', 'eval'}, default='train'
            ``'train'``: the softmax of the logits used for the SGD step (InterpretDL's behaviour).
            ``'eval'``: a separate ``model.eval()`` pass after each epoch (the BHDF paper's protocol).
        eval_loader : optional
            Loader for the ``'eval'`` pass; defaults to ``train_loader``.
        keep_logits, keep_losses : bool, default=False
            Also keep raw logits (N, E, C) and per-sample losses (N, E).
        n_samples : int, optional
            ``N``; defaults to ``len(train_loader.dataset)``.
        directory : path, optional
            Memory-map the recording to this folder (for large ``N``).
        progress : bool, default=True
            Show a tqdm bar.

        Returns
        -------
        DynamicsRecorder
            Accepted by :meth:`transform` and :meth:`save`; also kept as ``self.recorder``.
        """
        if record not in RECORD_MODES:
            raise ValueError(f"record must be one of {RECORD_MODES}, got {record!r}")
        if not isinstance(epochs, (int, np.integer)) or epochs < 1:
            raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
        if n_samples is None:
            dataset = getattr(train_loader, "dataset", None)
            if dataset is None:
                raise ValueError("n_samples is required when train_loader has no .dataset")
            n_samples = len(dataset)
        scheduler = getattr(optimizer, "_learning_rate", None)
        if lr_scheduler is None and isinstance(scheduler, paddle.optimizer.lr.LRScheduler):
            lr_scheduler = scheduler
        loss_fn = loss_fn or per_sample_cross_entropy
        model = self.model
        was_training = model.training
        self.recorder = None

        def store(epoch, ids, logits, y, losses):
            probs = paddle.nn.functional.softmax(logits.detach(), axis=-1).numpy()
            if self.recorder is None:
                self.recorder = DynamicsRecorder(int(n_samples), int(epochs), probs.shape[1], keep_logits=keep_logits,
                                                 keep_losses=keep_losses, directory=directory)
            self.recorder.update(epoch, ids, probs, targets=_to_numpy(y),
                                 logits=logits.detach().numpy() if keep_logits else None,
                                 losses=losses.detach().numpy() if (keep_losses and losses is not None) else None)

        bar = tqdm(range(epochs), desc="training dynamics", unit="epoch", disable=not progress)
        try:
            with self.device_scope():
                for epoch in bar:
                    model.train()
                    seen = correct = 0
                    total_loss = 0.0
                    for indices, x, y in _batches(train_loader):
                        x, y = _as_batch(x, y)
                        logits = model(x)
                        losses = loss_fn(logits, y)
                        per_sample = losses.ndim > 0 and int(np.prod(losses.shape)) == int(y.shape[0])
                        loss = losses.mean() if losses.ndim > 0 else losses
                        loss.backward()
                        optimizer.step()
                        optimizer.clear_grad()
                        if per_sample:
                            losses = losses.reshape([-1])
                        else:
                            losses = per_sample_cross_entropy(logits.detach(), y) if keep_losses else None
                        if record == "train":
                            store(epoch, _to_numpy(indices), logits, y, losses)
                        batch = int(y.shape[0])
                        seen += batch
                        total_loss += float(loss) * batch
                        correct += int((logits.argmax(axis=-1) == y).astype("int64").sum())
                    if record == "eval":
                        self._eval_pass(eval_loader or train_loader, epoch, loss_fn, store, keep_losses)
                    if lr_scheduler is not None:
                        lr_scheduler.step()
                    bar.set_postfix(loss=f"{total_loss / max(seen, 1):.4f}", acc=f"{correct / max(seen, 1):.3f}")
        finally:
            if was_training:
                model.train()
            else:
                model.eval()
        if self.recorder is None:
            raise ValueError("train_loader yielded no batch; nothing was recorded")
        self.recorder.flush()
        return self.recorder

    def _eval_pass(self, loader, epoch, loss_fn, store, keep_losses):
        model = self.model
        model.eval()
        with paddle.no_grad():
            for indices, x, y in _batches(loader):
                x, y = _as_batch(x, y)
                logits = model(x)
                losses = per_sample_cross_entropy(logits, y) if keep_losses else None
                store(epoch, _to_numpy(indices), logits, y, losses)
        model.train()

    # ------------------------------------------------------------------ transform / save
    @staticmethod
    def _as_arrays(logits, assigned_targets) -> Tuple[np.ndarray, np.ndarray, np.ndarray, Dict[str, Any]]:
        """Normalise the accepted record types to ``(probs (N,E,C), targets (N,), ids (N,), extras)``."""
        extras: Dict[str, Any] = {}
        if isinstance(logits, DynamicsRecorder):
            if assigned_targets is None:
                return recorder_arrays(logits)
            probs, _, ids, extras = recorder_arrays(logits, check_targets=False)
            return probs, np.asarray(assigned_targets).reshape(-1), ids, extras
        if isinstance(logits, Mapping):
            ids, probs = dict_to_array(logits)
        else:
            probs = np.asarray(logits, dtype=np.float32)
            ids = np.arange(probs.shape[0]) if probs.ndim == 3 else None
        if assigned_targets is None:
            raise ValueError("assigned_targets is required unless a DynamicsRecorder from generator() is given")
        return probs, np.asarray(assigned_targets).reshape(-1), ids, extras

    def transform(self, logits, assigned_targets=None) -> Tuple[np.ndarray, np.ndarray]:
        """Turn a record into InterpretDL's ``td`` / ``labels`` (also stored on ``self``).

        Parameters
        ----------
        logits : DynamicsRecorder or dict or ndarray
            The record from :meth:`generator`; or InterpretDL's ``{index: [E probability vectors]}``
            dict (all-NaN vectors mark missing epochs; ordered by index); or an (N, E, C) array.
        assigned_targets : array-like of shape (N,), optional
            Assigned labels, in the record's sample order. Optional for a ``DynamicsRecorder``.

        Returns
        -------
        td : ndarray of shape (N, E, C), float16
        labels : ndarray of shape (N, C), int16
        """
        probs, targets, ids, _ = self._as_arrays(logits, assigned_targets)
        self.training_dynamics, self.labels = transform_dynamics(probs, targets, sample_ids=ids)
        return self.training_dynamics, self.labels

    def save(self, logits, assigned_targets=None, label_flip=None, save_path: Optional[PathLike] = None,
             meta: Optional[dict] = None) -> "TrainingDynamics":
        """Transform and write ``training_dynamics.npz`` atomically (no pickle).

        Parameters
        ----------
        logits, assigned_targets
            As in :meth:`transform`.
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
            ``self``; the written file is ``self.save_path_``.
        """
        if save_path is None:
            raise ValueError("save_path is required (a folder or an .npz path); interpretdl_noise never writes "
                             "into the working directory unasked")
        path = Path(save_path)
        if path.suffix != ".npz":
            path = path / "training_dynamics.npz"
        probs, targets, ids, extras = self._as_arrays(logits, assigned_targets)
        td, labels = transform_dynamics(probs, targets, sample_ids=ids)
        self.training_dynamics, self.labels = td, labels
        info = {"n_samples": int(td.shape[0]), "n_epochs": int(td.shape[1]), "n_classes": int(td.shape[2])}
        info.update(meta or {})
        self.save_path_ = save_training_dynamics(path, td, labels, label_flip=label_flip, meta=info,
                                                 sample_ids=np.asarray(ids, dtype=np.int64), **extras)
        return self


__all__ = ["TrainingDynamics", "load_training_dynamics", "per_sample_cross_entropy"]
