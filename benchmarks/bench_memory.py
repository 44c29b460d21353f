"""Benchmark: peak memory of recording N=200,000, E=50, C=10 (target: <= 1.3x the raw float16 array).

No model: every epoch, the N sample ids are shuffled and fed in batches of 256 (the last batch of each
epoch is incomplete) with a seeded random softmax batch, float32 (B, C), as a training loop would produce.

* ``ours``: ``DynamicsRecorder(N, E, C)`` (defaults: float16 probabilities + a bool ``seen`` mask +
  int64 targets; no logits/losses), ``update(epoch, ids, probs, targets=...)`` per batch.
* ``ours_all``: the same with ``keep_logits=True, keep_losses=True`` (informational; these extras are off
  by default and are float32).
* ``interpretdl``: InterpretDL 0.8's generator-style storage, its recording code reproduced line for line
  without the model: ``dict[index] -> list`` and, per sample, ``list.append(softmax_batch[j])`` (a float32
  row view that keeps the batch array alive); an incomplete batch appends ``np.full([C], np.nan)`` instead.

Each variant runs in its own subprocess. After the imports, the peak-RSS counter is reset
(``/proc/self/clear_refs``) and the RSS is read; the figure is the peak RSS (``VmHWM``) at the end minus
that baseline, compared with the raw float16 array
N*E*C*2 bytes (200,000*50*10*2 B = 190.7 MiB).

    /work/venv-bench/bin/python benchmarks/bench_memory.py
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _common import fmt_mb, machine_info, peak_rss_bytes, reset_peak_rss, rss_bytes  # noqa: E402

VARIANTS = ("ours", "ours_all", "interpretdl")


def batches(n, e, c, batch_size, seed):
    """Yield (epoch, ids (B,), softmax (B, C) float32, targets (B,)) as a shuffled loader + model would."""
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, c, size=n)
    for epoch in range(e):
        order = rng.permutation(n)
        for start in range(0, n, batch_size):
            ids = order[start:start + batch_size]
            z = rng.standard_normal((ids.size, c), dtype=np.float32)
            z = np.exp(z - z.max(axis=1, keepdims=True))
            yield epoch, ids, z / z.sum(axis=1, keepdims=True), targets[ids]


def run_variant(name, n, e, c, batch_size, seed):
    warnings.filterwarnings("ignore", message="No ccache found")
    if name.startswith("ours"):
        from interpretdl_noise import DynamicsRecorder  # imports paddle (baseline taken afterwards)
    if not reset_peak_rss():
        raise OSError("cannot reset the peak RSS counter (/proc/self/clear_refs); Linux >= 4.0 is needed")
    base = rss_bytes()
    t0 = time.perf_counter()
    if name.startswith("ours"):
        keep = name == "ours_all"
        rec = DynamicsRecorder(n, e, c, keep_logits=keep, keep_losses=keep)
        for epoch, ids, probs, y in batches(n, e, c, batch_size, seed):
            rec.update(epoch, ids, probs, targets=y, logits=probs if keep else None,
                       losses=probs[:, 0] if keep else None)
        held = rec
        check = int(rec.seen.sum())
    else:
        # InterpretDL 0.8 TrainingDynamics.generator, recording part (indices are ints here, not tensors).
        training_dynamics = {}
        for epoch, indices, training_dynamics_per_epoch, y in batches(n, e, c, batch_size, seed):
            if len(indices) == batch_size:
                for j, index in enumerate(indices):
                    index = index.item()
                    training_dynamics_previous = training_dynamics.get(index, [])
                    training_dynamics_previous.append(training_dynamics_per_epoch[j])
                    training_dynamics[index] = training_dynamics_previous
            else:
                for j, index in enumerate(indices):
                    index = index.item()
                    training_dynamics_previous = training_dynamics.get(index, [])
                    training_dynamics_previous.append(np.full([training_dynamics_per_epoch.shape[1], ], np.nan))
                    training_dynamics[index] = training_dynamics_previous
        held = training_dynamics
        check = sum(len(v) for v in training_dynamics.values())
    seconds = time.perf_counter() - t0
    peak = peak_rss_bytes()
    out = {"variant": name, "base_rss": base, "peak_rss": peak, "end_rss": rss_bytes(), "seconds": seconds,
           "cells": check}
    del held
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma list of {VARIANTS}")
    ap.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    shape = (args.n, args.epochs, args.classes)
    if args.child:
        print(json.dumps(run_variant(args.child, *shape, args.batch_size, args.seed)))
        return

    raw = args.n * args.epochs * args.classes * 2
    print(f"# memory benchmark: N={args.n}, E={args.epochs}, C={args.classes}, batch {args.batch_size}; "
          f"raw float16 array {fmt_mb(raw)}; {machine_info()}")
    results = {}
    for name in args.variants.split(","):
        cmd = [sys.executable, os.path.abspath(__file__), "--child", name, "--n", str(args.n), "--epochs",
               str(args.epochs), "--classes", str(args.classes), "--batch-size", str(args.batch_size),
               "--seed", str(args.seed)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        results[name] = r = json.loads(proc.stdout.strip().splitlines()[-1])
        inc = r["peak_rss"] - r["base_rss"]
        print(f"{name:<12} peak RSS increase {fmt_mb(inc):>14} = {inc / raw:5.2f}x raw float16; "
              f"{r['seconds']:.1f} s; {r['cells']:,} sample-epochs stored")
    if "ours" in results:
        ours = results["ours"]["peak_rss"] - results["ours"]["base_rss"]
        print(f"RESULT ours peak increase / raw float16 = {ours / raw:.2f}x (target <= 1.3x): "
              f"{'PASS' if ours / raw <= 1.3 else 'FAIL'}")
        if "interpretdl" in results:
            idl = results["interpretdl"]["peak_rss"] - results["interpretdl"]["base_rss"]
            print(f"RESULT InterpretDL-style dict of lists / raw float16 = {idl / raw:.2f}x; "
                  f"InterpretDL / ours = {idl / ours:.1f}x")


if __name__ == "__main__":
    main()
