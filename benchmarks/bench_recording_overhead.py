"""Benchmark: training-time overhead of recording dynamics (target: <= 1.05x a plain loop).

Data: 10,000 seeded random 3x32x32 float32 images with random labels in 10 classes (generated; no
download). Model: a small CNN (conv 3->16 s2, conv 16->32 s2, conv 32->32 s2, global average pool,
linear 32->10; ReLU between). Loader: ``paddle.io.DataLoader`` over a dataset yielding
``(index, image, label)``, batch 128, shuffled, ``drop_last=False`` (the last batch of 16 is incomplete).
Optimizer: Momentum(lr=0.01, 0.9). Paddle CPU, default threads.

Variants, each starting from the same initial weights:

* ``plain``: the bare loop: forward, mean cross-entropy, backward, step, clear_grad.
* ``ours``: ``interpretdl_noise.TrainingDynamics(model).generator(loader, opt, epochs, progress=False)``
  (records the softmax of every sample in every epoch into a ``DynamicsRecorder``; also tracks loss and
  accuracy for its progress bar).
* ``interpretdl``: InterpretDL 0.8's ``TrainingDynamics.generator`` (its per-step stdout progress line is sent
  to /dev/null), loaded from its installed file (see ``_common.py``). Optional.

The variants are interleaved (rotating order) for ``--repeat`` rounds of ``--epochs`` epochs each, so load
from other processes on the shared machine hits them alike. Reported: the median wall time per variant,
the ratio of medians, and the median of the per-round ratios (each round's runs are adjacent in time),
for wall time and for this process's CPU time (all threads; steadier when other jobs share the cores).

    /work/venv-bench/bin/python benchmarks/bench_recording_overhead.py
"""
from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import load_interpretdl_training_dynamics, machine_info

VARIANTS = ("plain", "ours", "interpretdl")


def build(paddle, n, seed):
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((n, 3, 32, 32), dtype=np.float32)
    labels = rng.integers(0, 10, size=n).astype(np.int64)

    class IndexedImages(paddle.io.Dataset):
        def __len__(self):
            return n

        def __getitem__(self, i):
            return np.int64(i), images[i], labels[i]

    def make_model():
        nn = paddle.nn
        return nn.Sequential(
            nn.Conv2D(3, 16, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2D(16, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2D(32, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2D(1), nn.Flatten(), nn.Linear(32, 10))

    return IndexedImages(), make_model


def plain_loop(paddle, model, loader, opt, epochs):
    model.train()
    for _ in range(epochs):
        for _indices, x, y in loader:
            logits = model(x)
            loss = paddle.nn.functional.cross_entropy(logits, y.reshape([-1, 1]))
            loss.backward()
            opt.step()
            opt.clear_grad()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--epochs", type=int, default=1, help="epochs per timed run")
    ap.add_argument("--repeat", type=int, default=5, help="interleaved rounds")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma list of {VARIANTS}")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    variants = args.variants.split(",")

    warnings.filterwarnings("ignore", message="No ccache found")
    import paddle

    from interpretdl_noise import TrainingDynamics

    idl = load_interpretdl_training_dynamics() if "interpretdl" in variants else None
    warnings.simplefilter("ignore")  # InterpretDL's deprecated softmax_with_cross_entropy warns every step
    paddle.seed(args.seed)  # benchmark script: global seeding is fine here
    dataset, make_model = build(paddle, args.n, args.seed)
    init_state = {k: v.clone() for k, v in make_model().state_dict().items()}
    print(f"# recording overhead: N={args.n} random 3x32x32 images, small CNN, batch {args.batch_size}, "
          f"{args.epochs} epoch(s) per run, {args.repeat} interleaved rounds; {machine_info()}, "
          f"paddle threads default")

    def run(variant):
        model = make_model()
        model.set_state_dict(init_state)
        opt = paddle.optimizer.Momentum(learning_rate=0.01, momentum=0.9, parameters=model.parameters())
        loader = paddle.io.DataLoader(dataset, batch_size=args.batch_size, shuffle=True, drop_last=False)
        t0, c0 = time.perf_counter(), time.process_time()
        if variant == "plain":
            plain_loop(paddle, model, loader, opt, args.epochs)
            check = None
        elif variant == "ours":
            rec = TrainingDynamics(model).generator(loader, opt, args.epochs, progress=False)
            check = int(rec.seen.sum())
        else:
            with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
                history = idl.TrainingDynamics(model, device="cpu").generator(loader, opt, args.epochs)
            check = sum(len(v) for v in history.values())
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        if check is not None and check != args.n * args.epochs:
            raise RuntimeError(f"{variant} recorded {check} sample-epochs, expected {args.n * args.epochs}")
        return seconds, cpu

    run(variants[0])  # warm-up (kernel selection, allocator)
    times = {v: [] for v in variants}
    cpus = {v: [] for v in variants}
    for r in range(args.repeat):
        order = variants[r % len(variants):] + variants[:r % len(variants)]
        for v in order:
            wall, cpu = run(v)
            times[v].append(wall)
            cpus[v].append(cpu)
        print("round", r + 1, "  ".join(f"{v} {times[v][-1]:.2f}s (CPU {cpus[v][-1]:.2f}s)" for v in variants),
              flush=True)

    def summary(samples):
        base = statistics.median(samples["plain"])
        out = {}
        for v in variants:
            med = statistics.median(samples[v])
            paired = statistics.median(t / p for t, p in zip(samples[v], samples["plain"]))
            out[v] = (med, med / base, paired)
        return out

    wall, cpu = summary(times), summary(cpus)
    print(f"{'variant':<12}{'wall s':>8}{'ratio':>8}{'paired':>8}  |{'CPU s':>8}{'ratio':>8}{'paired':>8}")
    for v in variants:
        print(f"{v:<12}{wall[v][0]:>8.2f}{wall[v][1]:>7.3f}x{wall[v][2]:>7.3f}x  |"
              f"{cpu[v][0]:>8.2f}{cpu[v][1]:>7.3f}x{cpu[v][2]:>7.3f}x")
    if "ours" in variants:
        print(f"RESULT recording overhead ours/plain: wall {wall['ours'][1]:.3f}x (paired {wall['ours'][2]:.3f}x), "
              f"CPU time {cpu['ours'][1]:.3f}x (paired {cpu['ours'][2]:.3f}x); target <= 1.05x")


if __name__ == "__main__":
    main()
