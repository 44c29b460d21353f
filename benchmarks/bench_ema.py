"""Benchmark: vectorised EMA of per-sample losses vs a plain per-sample Python recurrence.

    /work/venv/bin/python benchmarks/bench_ema.py                       # 100,000 samples x 1,000 steps
    /work/venv/bin/python benchmarks/bench_ema.py --n 20000 --steps 200  # quicker

Measured in the same run, on the same float32 losses (the recorder's dtype):

* ``vectorised``: :func:`interpretdl_noise.interpreter.loss_dynamics.ema_loss_dynamics` on all N rows
  (median of ``--repeat`` runs);
* ``python loop``: ``ema = (1 - alpha) * ema + alpha * loss`` per sample and step in plain Python, timed on
  ``--python-rows`` rows and **extrapolated linearly** to N rows (it would take minutes on all of them), in two
  flavours: over Python lists (``row.tolist()``, appending to a list: the fastest plain-Python form) and over
  the numpy arrays (``losses[i, t]`` read, ``out[i, t]`` written: the naive form);
* ``pandas per-series ewm``: Datumaro's own method (one ``pd.Series(...).ewm(adjust=False).mean()`` per
  annotation), timed on ``--pandas-rows`` rows and extrapolated the same way;
* ``analyzer``: the whole ``LossDynamicsAnalyzer.from_losses`` (EMA + sorted Datumaro-layout DataFrame)
  plus ``get_top_k_cands(100)``, once.

The values of the vectorised EMA are checked against the Python loop on the timed rows.
"""
from __future__ import annotations

import argparse
import resource
import statistics
import time
import warnings

import numpy as np
import pandas as pd

warnings.filterwarnings("ignore", message="No ccache found")

from interpretdl_noise import LossDynamicsAnalyzer  # noqa: E402
from interpretdl_noise.interpreter.loss_dynamics import _ema_rows, ema_loss_dynamics  # noqa: E402


def python_loop(rows: np.ndarray, alpha: float) -> list:
    out = []
    for row in rows.tolist():
        ema, hist = 0.0, []
        for loss in row:
            ema = (1.0 - alpha) * ema + alpha * loss
            hist.append(ema)
        out.append(hist)
    return out


def python_loop_numpy(rows: np.ndarray, alpha: float) -> np.ndarray:
    out = np.empty(rows.shape)
    for i in range(rows.shape[0]):
        ema = 0.0
        for t in range(rows.shape[1]):
            ema = (1.0 - alpha) * ema + alpha * float(rows[i, t])
            out[i, t] = ema
    return out


def pandas_per_series(rows: np.ndarray, alpha: float) -> list:
    iters = list(range(rows.shape[1]))
    return [pd.Series([0.0, *row], index=[-1, *iters]).ewm(alpha=alpha, adjust=False).mean().iloc[1:]
            for row in rows.tolist()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="samples (rows)")
    parser.add_argument("--steps", type=int, default=1_000, help="steps (columns)")
    parser.add_argument("--alpha", type=float, default=0.001)
    parser.add_argument("--python-rows", type=int, default=1_000, help="rows timed for the Python loop")
    parser.add_argument("--pandas-rows", type=int, default=500, help="rows timed for per-series pandas ewm")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    losses = rng.gamma(2.0, 0.5, size=(args.n, args.steps)).astype(np.float32)
    labels = rng.integers(0, 10, size=args.n)
    print(f"losses: {args.n:,} samples x {args.steps:,} steps, float32 ({losses.nbytes / 2**20:,.0f} MiB), "
          f"alpha={args.alpha}")

    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        ema = ema_loss_dynamics(losses, args.alpha)
        times.append(time.perf_counter() - t0)
    buffer = np.empty((args.steps, args.n))    # preallocated output: the EMA work alone, no page faults
    buffer[...] = 0.0
    times_pre = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        _ema_rows(losses, args.alpha, out=buffer)
        times_pre.append(time.perf_counter() - t0)
    del buffer

    k = min(args.python_rows, args.n)
    times_py = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        ref = python_loop(losses[:k], args.alpha)
        times_py.append((time.perf_counter() - t0) * args.n / k)
    np.testing.assert_allclose(ema[:k], np.array(ref), rtol=1e-12)
    kn = max(1, k // 4)
    times_np = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        ref_np = python_loop_numpy(losses[:kn], args.alpha)
        times_np.append((time.perf_counter() - t0) * args.n / kn)
    np.testing.assert_allclose(ema[:kn], ref_np, rtol=1e-12)

    kp = min(args.pandas_rows, args.n)
    t0 = time.perf_counter()
    pandas_per_series(losses[:kp], args.alpha)
    t_pd = (time.perf_counter() - t0) * args.n / kp
    del ema

    t0 = time.perf_counter()
    an = LossDynamicsAnalyzer.from_losses(losses, labels, alpha=args.alpha)
    an.get_top_k_cands(100)
    t_an = time.perf_counter() - t0
    shape = an.ema_dataframe.shape
    del an

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10

    def fmt(ts):
        return f"min {min(ts):7.3f} s, median {statistics.median(ts):7.3f} s"

    print(f"vectorised ema_loss_dynamics      : {fmt(times)} (new (S, N) float64 output each call)")
    print(f"vectorised, preallocated output   : {fmt(times_pre)}")
    print(f"python loop over lists            : {fmt(times_py)} (timed on {k:,} rows, extrapolated x{args.n / k:,.0f})")
    print(f"python loop over numpy arrays     : {fmt(times_np)} (timed on {kn:,} rows, extrapolated "
          f"x{args.n / kn:,.0f})")
    print(f"pandas per-series ewm (Datumaro)  : {t_pd:7.1f} s (timed once on {kp:,} rows, extrapolated "
          f"x{args.n / kp:,.0f})")
    print(f"LossDynamicsAnalyzer + top-100    : {t_an:7.3f} s (frame {shape[0]:,} x {shape[1]:,})")
    print(f"speed-up vs python lists (min/min): {min(times_py) / min(times):7.0f}x  (target >= 50x); "
          f"{min(times_py) / min(times_pre):.0f}x with a preallocated output")
    print(f"speed-up vs python numpy loop     : {min(times_np) / min(times):7.0f}x; "
          f"{min(times_np) / min(times_pre):.0f}x with a preallocated output")
    print(f"speed-up vs pandas per-series     : {t_pd / min(times):7.0f}x")
    print(f"peak RSS                          : {peak:,.0f} MiB")


if __name__ == "__main__":
    main()
