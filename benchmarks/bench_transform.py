"""Benchmark: ``transform`` speed, interpretdl_noise vs InterpretDL 0.8 (target: >= 20x faster).

Data: N=50,000 samples, E=200 epochs, C=10 classes of seeded Dirichlet softmax vectors. By default every
sample is recorded in every epoch, which is what our generator records (``--missing 0.02`` removes 2 % of
the (sample, epoch) cells to exercise the interpolation). InterpretDL's input is its generator's format:
``{index: [E vectors]}`` whose recorded vectors are float32 row views of a batch array and whose missing
epochs are ``np.full([C], np.nan)`` (float64), exactly what its ``generator`` appends.

InterpretDL 0.8's ``TrainingDynamics.transform`` runs its class-mixing ``np.interp`` over the flattened
(E, C) block of every sample (one Python iteration per sample, gaps or not), then casts to float16, ranks
classes by the float16 mean and fills ``td`` / ``labels`` in a Python loop over samples and classes. It
is measured as is.

Measured (median of ``--repeat`` runs each, in the same process):

* ``ours/recorder``: ``TrainingDynamics.transform(recorder)``: the path of our generator, whose
  ``DynamicsRecorder`` holds a float16 (N, E, C) array, a ``seen`` mask and float32 running per-class
  sums (added at each epoch end while training; their cost is printed separately), so ``transform``
  reads each float16 value once, for the output, and ranks classes from the sums.
* ``ours/array``: ``transform_dynamics(probs, targets)`` on the same values as an (N, E, C) float32 array with
  NaN gaps (the numpy core, which computes the float16 mean itself).
* ``ours/dict``: ``TrainingDynamics.transform(dict, targets)``: our InterpretDL-compatible entry point fed
  InterpretDL's own dict (includes converting 10M small arrays).
* ``interpretdl/dict``: InterpretDL 0.8 ``TrainingDynamics.transform(dict, targets)``.

Needs InterpretDL 0.8.0 importable (``pip install --no-deps interpretdl==0.8.0``; it is loaded without
running its package ``__init__``, see ``_common.py``):

    python benchmarks/bench_transform.py
    python benchmarks/bench_transform.py --missing 0.02
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import fmt_mb, load_interpretdl_training_dynamics, machine_info, rss_bytes, timeit_median


def make_data(n, e, c, missing, seed):
    rng = np.random.default_rng(seed)
    probs = np.empty((n, e, c), dtype=np.float32)
    alpha = np.full(c, 0.5)
    for start in range(0, n, 5000):  # chunked to bound the float64 temporaries
        stop = min(start + 5000, n)
        probs[start:stop] = rng.dirichlet(alpha, size=(stop - start, e))
    targets = rng.integers(0, c, size=n)
    gaps = rng.random((n, e)) < missing
    gaps[gaps.all(axis=1), 0] = False  # every sample keeps at least one recorded epoch
    return probs, targets, gaps


def interpretdl_dict(probs, gaps):
    """``{index: [E vectors]}`` as InterpretDL's generator builds it (views of float32 rows; float64 NaN vectors)."""
    c = probs.shape[2]
    out = {}
    for i in range(probs.shape[0]):
        rows = list(probs[i])
        for j in np.flatnonzero(gaps[i]):
            rows[j] = np.full([c], np.nan)
        out[i] = rows
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--missing", type=float, default=0.0,
                    help="fraction of missing (sample, epoch) cells; 0 is what the generator records")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each of our variants (median reported)")
    ap.add_argument("--repeat-dict", type=int, default=1, help="runs of our transform fed InterpretDL's dict")
    ap.add_argument("--repeat-interpretdl", type=int, default=1, help="runs of InterpretDL's transform")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    warnings.filterwarnings("ignore", message="No ccache found")
    import paddle

    from interpretdl_noise import DynamicsRecorder, TrainingDynamics, transform_dynamics

    idl = load_interpretdl_training_dynamics()
    n, e, c = args.n, args.epochs, args.classes
    print(f"# transform benchmark: N={n}, E={e}, C={c}, missing={args.missing:.0%}; {machine_info()}")
    probs, targets, gaps = make_data(n, e, c, args.missing, args.seed)
    t_end = 0.0
    print(f"missing cells: {int(gaps.sum()):,} of {gaps.size:,}")

    # our recorder, filled as the generator does (by sample id; each epoch begun and ended, which adds it to
    # the float32 running per-class sums that transform ranks classes with)
    rec = DynamicsRecorder(n, e, c)
    ids = np.arange(n)
    t_fill = time.process_time()
    for ep in range(e):
        keep = ~gaps[:, ep]
        rec.begin_epoch(ep)
        rec.update(ep, ids[keep], probs[keep, ep], targets=targets[keep])
        t0 = time.process_time()
        rec.end_epoch(ep)
        t_end += time.process_time() - t0
    print(f"recorder filled in {time.process_time() - t_fill:.2f} s CPU, of which end_epoch (running sums) "
          f"{t_end:.2f} s = {t_end / e * 1000:.1f} ms per epoch (paid while training, not by transform)")
    probs_nan = probs.copy()
    probs_nan[gaps] = np.nan
    td_ours = TrainingDynamics(paddle.nn.Linear(1, c))

    results = {}
    results["ours/recorder"] = timeit_median(lambda: td_ours.transform(rec), args.repeat)
    ours_td, ours_labels = td_ours.training_dynamics, td_ours.labels
    results["ours/array"] = timeit_median(lambda: transform_dynamics(probs_nan, targets), args.repeat)
    probs_nan = None  # free 400 MB before building the dict

    rss0 = rss_bytes()
    the_dict = interpretdl_dict(probs, gaps)
    print(f"InterpretDL-style dict built: +{fmt_mb(rss_bytes() - rss0)} RSS for {n * e:,} vector objects")
    results["ours/dict"] = timeit_median(lambda: td_ours.transform(the_dict, targets), args.repeat_dict)
    dict_td, dict_labels = td_ours.training_dynamics, td_ours.labels

    idl_td = idl.TrainingDynamics.__new__(idl.TrainingDynamics)  # skip __init__: it sets paddle's device globally
    with contextlib.redirect_stderr(io.StringIO()):  # its tqdm bar
        results["interpretdl/dict"] = timeit_median(lambda: idl_td.transform(the_dict, targets),
                                                    args.repeat_interpretdl)

    # sanity: same results where the two are meant to agree
    rec_ok = ~gaps
    ch0_equal = np.array_equal(ours_td[:, :, 0][rec_ok], idl_td.training_dynamics[:, :, 0][rec_ok])
    same_rows = ~gaps.any(axis=1)
    label_agree = float((ours_labels[same_rows] == idl_td.labels[same_rows]).all(axis=1).mean())
    sums_ours = ours_td[gaps].astype(np.float32).sum(axis=-1) if gaps.any() else np.ones(1)
    sums_idl = idl_td.training_dynamics[gaps].astype(np.float32).sum(axis=-1) if gaps.any() else np.ones(1)
    same = (dict_labels == ours_labels).all(axis=1)
    dict_vs_rec = float(np.abs(dict_td[same].astype(np.float32) - ours_td[same].astype(np.float32)).max())
    print(f"check: dict path vs recorder path (the recorder interpolates float16 values, the dict path float32 "
          f"ones): label rows equal {same.mean():.4%}, max |td difference| on those rows {dict_vs_rec:.2g}")
    print(f"check: channel 0 on recorded cells equals InterpretDL's: {ch0_equal}; "
          f"label order (all channels) equal to InterpretDL's on the {int(same_rows.sum())} gap-free samples: "
          f"{label_agree:.4%}")
    print(f"check: filled epochs' probability sums: ours [{sums_ours.min():.3f}, {sums_ours.max():.3f}], "
          f"InterpretDL [{sums_idl.min():.3f}, {sums_idl.max():.3f}]")

    ref, ref_cpu = results["interpretdl/dict"]["median"], results["interpretdl/dict"]["cpu_median"]
    print(f"{'variant':<18}{'wall s':>8}{'CPU s':>8}  {'wall runs':<22}{'speed-up wall':>14}{'speed-up CPU':>13}")
    for name, r in results.items():
        runs = ", ".join(f"{t:.2f}" for t in r["times"])
        print(f"{name:<18}{r['median']:>8.2f}{r['cpu_median']:>8.2f}  {runs:<22}{ref / r['median']:>13.1f}x"
              f"{ref_cpu / r['cpu_median']:>12.1f}x")
    for name, label in (("ours/recorder", "transform speed-up (InterpretDL dict / ours recorder)"),
                        ("ours/dict", "same-input speed-up (InterpretDL dict / ours dict)")):
        cpu = ref_cpu / results[name]["cpu_median"]
        wall = ref / results[name]["median"]
        print(f"RESULT {label} = {cpu:.1f}x CPU time, {wall:.1f}x wall (target >= 20x): "
              f"{'PASS' if min(cpu, wall) >= 20 else 'FAIL'}")


if __name__ == "__main__":
    main()
