"""Shared plumbing for hapi (``paddle.Model.fit``) callbacks that need per-sample outputs.

hapi callbacks only see batch-mean logs. A ``paddle.metric.Metric`` however receives the step's own
outputs and labels: ``compute(*outputs, *labels)`` runs on the tensors, ``update(...)`` then gets numpy
arrays. A :class:`TapMetric` uses that to hand per-sample values to its callback, and extra labels
(such as the sample index of ``DatasetWithIndex``) are hidden from the loss by :class:`FirstLabelLoss`.
"""
from __future__ import annotations

from typing import Callable

from .._paddle import paddle


class FirstLabelLoss(paddle.nn.Layer):
    """``loss(pred, label, *extra_labels) -> inner(pred, label)``: extra labels are ignored."""

    def __init__(self, inner: Callable):
        super().__init__()
        self.inner = inner

    def forward(self, pred, label, *extra_labels):
        return self.inner(pred, label)


class TapMetric(paddle.metric.Metric):
    """A metric that only forwards each batch: ``sink(*compute(pred, *labels))`` (numpy arrays).

    It exists for its side effect. Its accumulated value is the sum of what ``sink`` returned in the
    current pass (e.g. the number of samples it took; 0 when it returns None).
    """

    def __init__(self, name: str, compute: Callable, sink: Callable):
        super().__init__()
        self._name, self._compute, self._sink = name, compute, sink
        self._total = 0

    def compute(self, *args):
        return self._compute(*args)

    def update(self, *arrays):
        self._total += self._sink(*arrays) or 0
        return self.accumulate()

    def reset(self):
        self._total = 0

    def accumulate(self):
        return float(self._total)

    def name(self):
        return self._name


class TrainingPhaseCallback(paddle.callbacks.Callback):
    """Knows the current epoch and whether ``fit`` is in a training pass (``eval_data`` batches are not)."""

    def __init__(self):
        super().__init__()
        self._epoch = 0
        self._training = False

    @staticmethod
    def wrap_loss(loss: Callable) -> paddle.nn.Layer:
        """Wrap ``loss(pred, y)`` so that ``Model`` can call it with the extra label(s)."""
        return FirstLabelLoss(loss)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._training = True

    def on_epoch_end(self, epoch, logs=None):
        self._training = False
