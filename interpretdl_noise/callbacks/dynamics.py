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

from typing import Optional

import numpy as np

from .._paddle import paddle
from ..common.file_utils import PathLike
from ..recording import DynamicsRecorder
from ._hapi import TapMetric, TrainingPhaseCallback


class RecordTrainingDynamics(TrainingPhaseCallback):
    """A hapi callback (plus its metric) that records every sample's softmax in every epoch.

    Parameters
    ----------
    n_samples : int
        ``N``; the indices the dataset yields must lie in ``[0, N)``.
    n_epochs : int, optional
        ``E``; defaults to the ``epochs`` given to ``fit``.
    keep_logits, keep_losses : bool, default=False
        Also keep raw logits (N, E, C) and per-sample cross-entropy (N, E).
    directory : path, optional
        Memory-map the recording there.
    index_position : int, default=-1
        Which of the extra labels (after the class label) is the sample index; the default, the last one,
        matches ``DatasetWithIndex``. Other extra labels (e.g. a corrupted flag for a ``LabelTracker``)
        are ignored.

    Attributes
    ----------
    metric : paddle.metric.Metric
        Pass it in ``model.prepare(metrics=[...])``.
    recorder : DynamicsRecorder or None
        Filled during training (allocated at the first batch, when ``C`` is known).

    Notes
    -----
    Recorded probabilities are those of the training step (train mode, before the optimizer step), as
    in :meth:`TrainingDynamics.generator` with ``record='train'``. Evaluation batches run by ``fit``
    (``eval_data``) are ignored.
    """

    def __init__(self, n_samples: int, n_epochs: Optional[int] = None, *, keep_logits: bool = False,
                 keep_losses: bool = False, directory: Optional[PathLike] = None, index_position: int = -1):
        super().__init__()
        self.index_position = index_position
        self.n_samples, self.n_epochs = int(n_samples), n_epochs
        self.keep_logits, self.keep_losses, self.directory = keep_logits, keep_losses, directory
        self.metric = TapMetric("record_dynamics", self._compute, self._write)
        self.recorder: Optional[DynamicsRecorder] = None

    def _compute(self, pred, label, *extra_labels):
        index = extra_labels[self.index_position]
        probs = paddle.nn.functional.softmax(pred, axis=-1)
        losses = paddle.nn.functional.cross_entropy(pred, label.reshape([-1, 1]), reduction="none").reshape([-1])
        return probs, pred, losses, label, index

    def on_train_begin(self, logs=None):
        if self.n_epochs is None:
            self.n_epochs = int(self.params["epochs"])
        self.recorder = None

    def on_train_end(self, logs=None):
        if self.recorder is not None:
            self.recorder.flush()

    def _write(self, probs, logits, losses, label, index):
        if not self._training:
            return  # evaluation batches of fit(eval_data=...) are not training dynamics
        probs = np.asarray(probs)
        if self.recorder is None:
            if self.n_epochs is None:
                raise RuntimeError("RecordTrainingDynamics needs n_epochs when used outside Model.fit")
            self.recorder = DynamicsRecorder(self.n_samples, int(self.n_epochs), probs.shape[1],
                                             keep_logits=self.keep_logits, keep_losses=self.keep_losses,
                                             directory=self.directory)
        self.recorder.update(self._epoch, np.asarray(index).reshape(-1), probs, targets=np.asarray(label).reshape(-1),
                             logits=logits if self.keep_logits else None, losses=losses if self.keep_losses else None)
