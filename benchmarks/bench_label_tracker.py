"""Overhead of LabelTracker in ``paddle.Model.fit``: the same fit with and without the tracker, same run.

Workloads (CPU, Paddle's default threads):

* ``digits``: scikit-learn digits (1797 x 64), MLP 64-64-10, batch 64, train + eval on the same data: the
  worst case, a tiny model where per-batch bookkeeping weighs most.
* ``wide``: 20,000 generated samples x 256 features, MLP 256-512-10, batch 128, train + eval.

The tracker runs with ``mode=None`` (train and eval batches), ``metric='loss'``, ``bounds='std'``. Reported:
seconds per epoch without / with the tracker (minimum of ``--repeats`` alternating runs, the estimate least
biased by other processes), in wall-clock and in
process CPU time (the steadier figure on a shared machine; Paddle runs one thread here), their ratio, the
overhead per epoch, the one-off cost of drawing the figure at the end of ``fit`` (``plot()``, timed
separately), and the raw accumulation speed of the numpy core (``GroupedStats.add``).

Usage::

    /work/venv/bin/python benchmarks/bench_label_tracker.py [--repeats 5] [--epochs 10]
"""
from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

warnings.filterwarnings("ignore", message="No ccache found")
warnings.filterwarnings("ignore", message="To copy construct from a tensor")

import paddle  # noqa: E402
from paddle.static import InputSpec  # noqa: E402

from interpretdl_noise import ArrayDataset, LabelTracker, load_digits_arrays  # noqa: E402
from interpretdl_noise.common.stat import GroupedStats  # noqa: E402
from interpretdl_noise.common.seeding import paddle_seed  # noqa: E402


def _data(name: str):
    if name == "digits":
        x, y = load_digits_arrays()
        return x, y, 64, 64
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20_000, 256)).astype(np.float32)
    y = (x[:, :10].argmax(axis=1)).astype(np.int64)
    return x, y, 512, 128


def _fit(x, y, hidden, batch, epochs, tracker):
    with paddle_seed(0):
        net = paddle.nn.Sequential(paddle.nn.Linear(x.shape[1], hidden), paddle.nn.ReLU(), paddle.nn.Linear(hidden, 10))
        model = paddle.Model(net, inputs=[InputSpec([None, x.shape[1]], "float32", "x")],
                             labels=[InputSpec([None, 1], "int64", "y")])
        model.prepare(paddle.optimizer.Adam(0.003, parameters=net.parameters()), paddle.nn.CrossEntropyLoss(),
                      metrics=[tracker.metric] if tracker else None)
        ds = ArrayDataset(x, y.reshape(-1, 1))
        wall, cpu = time.perf_counter(), time.process_time()
        model.fit(ds, eval_data=ds, epochs=epochs, batch_size=batch, verbose=0,
                  callbacks=[tracker] if tracker else None)
        return time.perf_counter() - wall, time.process_time() - cpu


def bench_fit(name: str, epochs: int, repeats: int) -> None:
    x, y, hidden, batch = _data(name)
    _fit(x, y, hidden, batch, 1, None)  # warm-up
    plain, tracked, plots = [], [], []
    for _ in range(repeats):
        plain.append(_fit(x, y, hidden, batch, epochs, None))
        tracker = LabelTracker("label", "loss", mode=None, bounds="std")
        tracked.append(_fit(x, y, hidden, batch, epochs, tracker))
        wall, cpu = time.perf_counter(), time.process_time()
        tracker.plot()
        plots.append((time.perf_counter() - wall, time.process_time() - cpu))
    for i, clock in enumerate(("wall", "cpu")):
        t0 = min(p[i] for p in plain)
        t1 = min(p[i] for p in tracked)
        tp = min(p[i] for p in plots)
        per_epoch = (t1 - tp - t0) / epochs
        print(f"{name:6s} N={len(y):5d} E={epochs:2d} {clock:4s}: without {t0 / epochs * 1e3:7.1f} ms/epoch, "
              f"with {t1 / epochs * 1e3:7.1f} ms/epoch (ratio {t1 / t0:.3f}); tracking {per_epoch * 1e3:6.1f} "
              f"ms/epoch ({per_epoch * epochs / t0 * 100:+.1f} %) + end-of-fit plot {tp * 1e3:.0f} ms")


def bench_core() -> None:
    """The numpy path alone: 1e6 samples in batches of 128 through update() + end_epoch()."""
    rng = np.random.default_rng(0)
    labels, values = rng.integers(0, 10, 1_000_000), rng.normal(size=1_000_000)
    logits = rng.normal(size=(1_000_000, 10)).astype(np.float32)
    n_batches = labels.size // 128
    tracker = LabelTracker("label", "loss", mode="train")
    start = time.process_time()
    for b in range(n_batches):
        tracker.update(labels[b * 128:(b + 1) * 128], values[b * 128:(b + 1) * 128])
    tracker.end_epoch()
    t_values = time.process_time() - start
    start = time.process_time()
    tracker._phase = "train"  # the metric path, as Model.fit drives it (logits -> loss at the flush)
    for b in range(n_batches):
        sl = slice(b * 128, (b + 1) * 128)
        tracker._metric_update(logits[sl], labels[sl], labels[sl])
    tracker.end_epoch()
    t_logits = time.process_time() - start
    print(f"core   1e6 samples, batches of 128: update(labels, values) {t_values:.2f} s "
          f"({t_values / n_batches * 1e6:.1f} us/batch); from logits (loss computed at flush) {t_logits:.2f} s "
          f"({t_logits / n_batches * 1e6:.1f} us/batch)")
    stats = GroupedStats()
    start = time.process_time()
    stats.add(labels, values)
    print(f"core   GroupedStats.add of 1e6 samples at once: {(time.process_time() - start) * 1e3:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    bench_fit("digits", args.epochs, args.repeats)
    bench_fit("wide", max(1, args.epochs // 5), args.repeats)
    bench_core()


if __name__ == "__main__":
    main()
