"""Record training dynamics from ``paddle.Model.fit`` (hapi).

hapi callbacks see only batch-mean logs, never per-sample outputs. What does see them is a
``paddle.metric.Metric``: ``Model`` calls ``metric.compute(*outputs, *labels)`` on the very logits of
the training step and then ``metric.update(...)`` with numpy arrays. So the sample id travels as an
extra *label*: the dataset yields ``(x, y, index)`` (use ``DatasetWithIndex``), the ``Model`` declares
two labels, and the loss is wrapped so that it ignores the index. No second forward pass is made.

Usage::

    rec = RecordTrainingDynamics(n_samples=len(train_ds))
    model = paddle.Model(net, inputs=[InputSpec([None, 64], "float32", "x")],
                         labels=[InputSpec([None, 1], "int64", "y"), InputSpec([None, 1], "int64", "index")])
    model.prepare(optimizer, loss=rec.wrap_loss(paddle.nn.CrossEntropyLoss()), metrics=[rec.metric])
    model.fit(DatasetWithIndex(train_ds), epochs=20, batch_size=64, callbacks=[rec])
    TrainingDynamics(net).save(rec.recorder, label_flip=flips, save_path="out/")
"""
from __future__ import annotations

import warnings
from typing import Optional

import numpy as np

from .._paddle import paddle
from ..common.atomic import PathLike
from ..recording.distributed import RecordingSession
from ._hapi import TapMetric, TrainingPhaseCallback


class RecordTrainingDynamics(TrainingPhaseCallback):
    """A hapi callback (plus its metric) that records every sample's softmax in every epoch.

    Parameters
    ----------
    n_samples : int
        ``N``; the indices the dataset yields must lie in ``[0, N)`` (global ids, also under
        ``paddle.distributed``).
    n_epochs : int, optional
        ``E``; defaults to the ``epochs`` given to ``fit``.
    keep_logits, keep_losses : bool, default=False
        Also keep raw logits (N, E, C) and per-sample cross-entropy (N, E).
    directory : path, optional
        Keep the recording in this folder (see :meth:`TrainingDynamics.generator`).
    index_position : int, default=-1
        Which of the extra labels (after the class label) is the sample index; the default, the last one,
        matches ``DatasetWithIndex``. Other extra labels (e.g. a corrupted flag for a ``LabelTracker``)
        are ignored.
    distributed : bool, optional
        Default: automatic (``paddle.distributed.get_world_size() > 1``); rank 0 gathers every rank's
        batches after each epoch, as :meth:`TrainingDynamics.generator` does.
    on_nonfinite : {'raise', 'stop'}, default='raise'
        ``'stop'`` ends ``fit`` (``model.stop_training``) at the first epoch with non-finite outputs and
        keeps the completed epochs.

    Attributes
    ----------
    metric : paddle.metric.Metric
        Pass it in ``model.prepare(metrics=[...])``.
    recorder : DynamicsRecorder or RemoteRecording or None
        Filled during training (allocated at the first batch, when ``C`` is known); a
        ``RemoteRecording`` on data-parallel ranks other than 0.

    Notes
    -----
    Recorded probabilities are those of the training step (train mode, before the optimizer step), as
    in :meth:`TrainingDynamics.generator` with ``record='train'``. Evaluation batches run by ``fit``
    (``eval_data``) are ignored.
    """

    def __init__(self, n_samples: int, n_epochs: Optional[int] = None, *, keep_logits: bool = False,
                 keep_losses: bool = False, directory: Optional[PathLike] = None, index_position: int = -1,
                 distributed: Optional[bool] = None, on_nonfinite: str = "raise"):
        super().__init__()
        self.index_position = index_position
        self.n_samples, self.n_epochs = int(n_samples), n_epochs
        self.keep_logits, self.keep_losses, self.directory = keep_logits, keep_losses, directory
        self.distributed, self.on_nonfinite = distributed, on_nonfinite
        self.metric = TapMetric("record_dynamics", self._compute, self._write)
        self.recorder = None
        self.stopped_ = None
        self._session: Optional[RecordingSession] = None
        self._step = 0

    def _compute(self, pred, label, *extra_labels):
        index = extra_labels[self.index_position]
        probs = paddle.nn.functional.softmax(pred, axis=-1)
        losses = paddle.nn.functional.cross_entropy(pred, label.reshape([-1, 1]), reduction="none").reshape([-1])
        return probs, pred, losses, label, index

    def _ensure_session(self) -> RecordingSession:
        if self._session is None:
            if self.n_epochs is None:
                raise RuntimeError("RecordTrainingDynamics needs n_epochs when used outside Model.fit")
            self._session = RecordingSession(self.n_samples, int(self.n_epochs), keep_logits=self.keep_logits,
                                             keep_losses=self.keep_losses, directory=self.directory,
                                             distributed=self.distributed, on_nonfinite=self.on_nonfinite)
        return self._session

    def on_train_begin(self, logs=None):
        if self.n_epochs is None:
            self.n_epochs = int(self.params["epochs"])
        self.recorder = None
        self.stopped_ = None
        self._session = None
        self._ensure_session()

    def on_epoch_begin(self, epoch, logs=None):
        super().on_epoch_begin(epoch, logs)
        self._step = 0
        self._ensure_session().begin_epoch(epoch)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        session = self._ensure_session()
        if not session.end_epoch(epoch):
            self.stopped_ = session.stopped
            warnings.warn(f"recording stopped: {session.stopped}", RuntimeWarning, stacklevel=2)
            self.model.stop_training = True
        self.recorder = session.recorder if session.is_main else None

    def on_train_end(self, logs=None):
        if self._session is not None:
            self.recorder = self._session.finish()

    def _write(self, probs, logits, losses, label, index):
        if not self._training:
            return  # evaluation batches of fit(eval_data=...) are not training dynamics
        session = self._ensure_session()
        session.add(self._step, np.asarray(index).reshape(-1), np.asarray(probs), targets=np.asarray(label).reshape(-1),
                    logits=logits if self.keep_logits else None, losses=losses if self.keep_losses else None)
        self._step += 1
