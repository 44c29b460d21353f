"""One rank of the 2-process gloo runs of ``tests/test_distributed.py`` (started with the PADDLE_* variables).

Usage: ``python distributed_worker.py MODE OUT_DIR`` with MODE ``record`` (scenarios a-c) or ``die`` (d).
Rank 0's recorder writes the folders under OUT_DIR; every rank prints one ``RESULT`` line.
"""
import os
import sys
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import paddle  # noqa: E402
import paddle.distributed as dist  # noqa: E402
from paddle.static import InputSpec  # noqa: E402

from interpretdl_noise import ArrayDataset, DatasetWithIndex, TrainingDynamics  # noqa: E402
from interpretdl_noise.callbacks import RecordTrainingDynamics  # noqa: E402

N, BATCH = 45, 8  # 45 is odd: DistributedBatchSampler pads one id per epoch


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0)
    return x, y


def mlp(seed=1):
    paddle.seed(seed)
    return paddle.nn.Sequential(paddle.nn.Linear(6, 8), paddle.nn.ReLU(), paddle.nn.Linear(8, 3))


def loader(shuffle):
    x, y = data()
    ds = DatasetWithIndex(ArrayDataset(x, y), index_first=True)
    return paddle.io.DataLoader(ds, batch_sampler=paddle.io.DistributedBatchSampler(ds, batch_size=BATCH,
                                                                                    shuffle=shuffle))


def record_generator(out, name, *, lr, shuffle, epochs, **kw):
    net = paddle.DataParallel(mlp())
    opt = paddle.optimizer.SGD(lr, parameters=net.parameters())
    return TrainingDynamics(net).generator(loader(shuffle), opt, epochs, directory=out / name, progress=False, **kw)


def record_hapi(out, epochs):
    x, y = data()
    cb = RecordTrainingDynamics(N, keep_losses=True, directory=out / "hapi")
    net = mlp()
    model = paddle.Model(net, inputs=[InputSpec([None, 6], "float32", "x")],
                         labels=[InputSpec([None, 1], "int64", "y"), InputSpec([None, 1], "int64", "index")])
    model.prepare(paddle.optimizer.SGD(0.1, parameters=net.parameters()),
                  loss=cb.wrap_loss(paddle.nn.CrossEntropyLoss()), metrics=[cb.metric])
    model.fit(DatasetWithIndex(ArrayDataset(x, y)), epochs=epochs, batch_size=BATCH, shuffle=False, verbose=0,
              callbacks=[cb])
    return cb.recorder


class DyingLoader:
    """Rank 1 dies (``os._exit``) in epoch 1, as a crashed or killed process would.

    ``at_end``: after its last batch (the others meet the death at the recorder's gather); otherwise
    before its first batch (the others meet it inside ``DataParallel``'s gradient all-reduce).
    """

    def __init__(self, inner, at_end):
        self.inner, self.dataset, self.batch_sampler, self.epoch = inner, inner.dataset, inner.batch_sampler, 0
        self.at_end = at_end

    def _die(self):
        print("RESULT rank 1 dying", flush=True)
        os._exit(3)

    def __iter__(self):
        epoch, self.epoch = self.epoch, self.epoch + 1
        dies = epoch == 1 and dist.get_rank() == 1
        if dies and not self.at_end:
            self._die()
        yield from self.inner
        if dies:
            self._die()


class CrashingLoader(DyingLoader):
    """Every rank raises (a simulated crash of the whole job) at the start of epoch 1."""

    def __iter__(self):
        epoch, self.epoch = self.epoch, self.epoch + 1
        if epoch == 1:
            raise RuntimeError("simulated crash")
        return iter(self.inner)


def record_resumed(out):
    """lr 0, crashed in epoch 1, then resumed: must equal the uninterrupted lr-0 recording."""
    net = paddle.DataParallel(mlp())
    opt = paddle.optimizer.SGD(0.0, parameters=net.parameters())
    try:
        TrainingDynamics(net).generator(CrashingLoader(loader(False), at_end=False), opt, 2, directory=out / "resumed",
                                        progress=False)
    except RuntimeError as exc:
        assert "simulated crash" in str(exc), exc
    return TrainingDynamics(net).generator(loader(False), opt, 2, directory=out / "resumed", resume=True,
                                           progress=False)


def main(mode, out):
    dist.init_parallel_env()
    rank = dist.get_rank()
    out = Path(out)
    if mode == "record":
        shuffled = record_generator(out, "shuffled", lr=0.1, shuffle=True, epochs=3, keep_logits=True,
                                    keep_losses=True)
        record_generator(out, "lr0", lr=0.0, shuffle=False, epochs=2)
        record_generator(out, "gen", lr=0.1, shuffle=False, epochs=2, keep_losses=True)
        hapi = record_hapi(out, epochs=2)
        record_resumed(out)
        print(f"RESULT rank {rank} generator={type(shuffled).__name__} hapi={type(hapi).__name__} "
              f"completed={shuffled.completed_epochs}", flush=True)
    elif mode in ("die", "die-mid"):
        net = paddle.DataParallel(mlp())
        opt = paddle.optimizer.SGD(0.1, parameters=net.parameters())
        try:
            TrainingDynamics(net).generator(DyingLoader(loader(True), at_end=mode == "die"), opt, 3,
                                            directory=out / "died", progress=False)
        except Exception as exc:
            print(f"RESULT rank {rank} {type(exc).__name__}: {exc}", flush=True)
            sys.exit(1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
