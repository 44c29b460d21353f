"""AUM for ``paddle.Model.fit`` (hapi) users, without a hand-written training loop.

As in :mod:`interpretdl_noise.callbacks.dynamics`, the per-sample logits reach us through a
``paddle.metric.Metric``: the dataset yields ``(x, y, index)`` (``DatasetWithIndex``), the ``Model``
declares two labels, the loss is wrapped to ignore the index, and the metric feeds each training batch's
logits to an :class:`~interpretdl_noise.interpreter.aum.AUMCalculator`. No second forward pass is made.

Usage::

    aum = AUMCallback(save_dir="out/aum")
    model = paddle.Model(net, inputs=[InputSpec([None, 64], "float32", "x")],
                         labels=[InputSpec([None, 1], "int64", "y"), InputSpec([None, 1], "int64", "index")])
    model.prepare(optimizer, loss=aum.wrap_loss(paddle.nn.CrossEntropyLoss()), metrics=[aum.metric])
    model.fit(DatasetWithIndex(train_ds), epochs=20, batch_size=64, callbacks=[aum])
    ids, values, _ = aum.calculator.aum_array()        # and out/aum/aum_values.csv
"""
from __future__ import annotations


import numpy as np

from ..common.atomic import PathLike
from ..interpreter.aum import AUMCalculator
from ._hapi import TapMetric, TrainingPhaseCallback

__all__ = ["AUMCallback"]


class AUMCallback(TrainingPhaseCallback):
    """A hapi callback (plus its metric) that computes AUM during ``paddle.Model.fit``.

    Parameters
    ----------
    save_dir : path, optional
        When given, :meth:`AUMCalculator.finalize` writes ``aum_values.csv`` there at the end of training.
    compressed : bool, default=True
        Passed to :class:`AUMCalculator` (False keeps every record and writes ``full_aum_records.csv``).
    skip_first_epoch : bool, default=False
        Do not record margins in epoch 0 (the paper's replication code skips it).

    Attributes
    ----------
    metric : paddle.metric.Metric
        Pass it in ``model.prepare(metrics=[...])``.
    calculator : AUMCalculator
        A new one for every ``fit`` call. AUM is low (negative) for likely mislabeled samples; use
        ``-aum`` as a score where higher must mean more suspicious.

    Notes
    -----
    Margins are those of the training step (train mode, before the optimizer step). Evaluation batches
    run by ``fit(eval_data=...)`` are ignored.
    """

    def __init__(self, save_dir: PathLike | None = None, compressed: bool = True, *,
                 skip_first_epoch: bool = False):
        super().__init__()
        self.save_dir, self.compressed, self.skip_first_epoch = save_dir, compressed, bool(skip_first_epoch)
        self.metric = TapMetric("aum", lambda pred, label, index: (pred, label, index), self._update)
        self.calculator = AUMCalculator(save_dir, compressed=compressed)

    def on_train_begin(self, logs=None):
        self.calculator = AUMCalculator(self.save_dir, compressed=self.compressed)

    def on_train_end(self, logs=None):
        if self.save_dir is not None:
            self.calculator.finalize()

    def _update(self, logits, label, index):
        if not self._training or (self.skip_first_epoch and self._epoch == 0):
            return
        self.calculator.update(logits, np.asarray(label).reshape(-1), np.asarray(index).reshape(-1))
