"""AUMCalculator.update throughput and memory vs the ``aum`` package (PyTorch), measured in the same run.

Run where both are importable (the ``aum`` side is skipped otherwise)::

    /work/venv-torch/bin/python benchmarks/bench_aum.py            # speed + memory
    /work/venv-torch/bin/python benchmarks/bench_aum.py --quick    # smaller stream

Speed: batches of 256 rows, C = 100 classes, 50,000 distinct sample ids visited in shuffled "epochs"
(the first epoch creates the ids, later ones update them). Each library gets its native tensors
(``torch`` for ``aum``; numpy and Paddle for ours); the returned dict of records is built in both.
Memory: 1,000,000 distinct ids in compressed mode; each measurement runs in a fresh subprocess and
reports the resident-set growth while the calculator is filled (and, for ours, the numpy state size).

Detection (``--auroc``, no ``aum`` needed): AUROC of ``AUMInterpreter`` (logit and probability margins)
on the demo recording (digits, 20 % uniform noise, seed 0, MLP 64-128-10, Adam 1e-3, 30 epochs, batch 64)::

    /work/venv/bin/python benchmarks/bench_aum.py --auroc
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import warnings

import numpy as np

warnings.filterwarnings("ignore", message="No ccache found")


def make_stream(n_ids: int, n_classes: int, batch: int, epochs: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    stream = []
    for _ in range(epochs):
        perm = rng.permutation(n_ids)
        for start in range(0, n_ids, batch):
            ids = perm[start:start + batch]
            logits = rng.normal(size=(ids.size, n_classes)).astype(np.float32)
            stream.append((logits, rng.integers(0, n_classes, ids.size), ids))
    return stream


def time_ours(stream, *, as_paddle: bool, str_ids: bool, compressed: bool = True) -> float:
    from interpretdl_noise import AUMCalculator
    from interpretdl_noise._paddle import paddle

    if as_paddle:
        batches = [(paddle.to_tensor(lg), paddle.to_tensor(t), paddle.to_tensor(i)) for lg, t, i in stream]
    else:
        batches = stream
    if str_ids:
        batches = [(lg, t, [f"id{i}" for i in np.asarray(ids).tolist()]) for lg, t, ids in batches]
    calc = AUMCalculator(None, compressed=compressed)
    start = time.perf_counter()
    for lg, t, ids in batches:
        calc.update(lg, t, ids)
    return time.perf_counter() - start


def time_aum(stream, *, str_ids: bool, compressed: bool = True) -> float:
    import aum
    import torch

    batches = [(torch.from_numpy(lg), torch.from_numpy(t),
                [f"id{i}" for i in ids.tolist()] if str_ids else ids.tolist()) for lg, t, ids in stream]
    calc = aum.AUMCalculator("/nonexistent-never-written", compressed=compressed)
    start = time.perf_counter()
    for lg, t, ids in batches:
        calc.update(lg, t, ids)
    return time.perf_counter() - start


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        import os

        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_worker(which: str, n_ids: int) -> dict:
    """Fill a compressed calculator with ``n_ids`` distinct ids (batches of 256, C=10); report growth."""
    import gc

    if which == "ours":
        from interpretdl_noise import AUMCalculator
    else:
        import torch
        from aum import AUMCalculator
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(256, 10)).astype(np.float32)
    targets = rng.integers(0, 10, 256)
    if which == "aum":
        logits, targets = torch.from_numpy(logits), torch.from_numpy(targets)
    gc.collect()
    before = rss_bytes()
    calc = AUMCalculator(None if which == "ours" else "/nonexistent-never-written", compressed=True)
    start = time.perf_counter()
    for lo in range(0, n_ids, 256):
        ids = np.arange(lo, min(lo + 256, n_ids))
        k = ids.size
        calc.update(logits[:k], targets[:k], ids if which == "ours" else ids.tolist())
    seconds = time.perf_counter() - start
    gc.collect()
    out = {"which": which, "n_ids": n_ids, "rss_growth_mb": (rss_bytes() - before) / 2**20, "fill_seconds": seconds}
    if which == "ours":
        out["numpy_state_mb"] = calc.nbytes() / 2**20
    return out


def detection_auroc() -> None:
    import tempfile
    from pathlib import Path

    from interpretdl_noise import AUMInterpreter, SmallLossInterpreter, detection_metrics, load_training_dynamics
    from interpretdl_noise.commands.demo import record_noisy_digits

    with tempfile.TemporaryDirectory() as tmp:
        path, _ = record_noisy_digits(Path(tmp), progress=False)
        record = load_training_dynamics(path)
    print("demo recording: digits, 20% uniform noise (seed 0), MLP 64-128-10, Adam 1e-3, 30 epochs, batch 64")
    for name, det in [("AUM, logit margins", AUMInterpreter(source="logits")),
                      ("AUM, probability margins", AUMInterpreter(source="probability")),
                      ("AUM, logits, skip epoch 0", AUMInterpreter(source="logits", skip_first_epoch=True)),
                      ("small-loss baseline", SmallLossInterpreter())]:
        m = detection_metrics(det.interpret(training_dynamics=record)[1], record["label_flip"])
        print(f"  {name:28s} AUROC {m['auroc']:.4f}  AP {m['ap']:.4f}  precision@{m['k']} {m['precision_at_k']:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="5,000 ids and 100,000 for memory")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memory-worker", choices=["ours", "aum"], help=argparse.SUPPRESS)
    parser.add_argument("--memory-ids", type=int, default=None)
    parser.add_argument("--auroc", action="store_true", help="only the detection AUROC on the demo recording")
    args = parser.parse_args()
    if args.auroc:
        detection_auroc()
        return
    mem_ids = args.memory_ids or (100_000 if args.quick else 1_000_000)
    if args.memory_worker:
        print(json.dumps(memory_worker(args.memory_worker, mem_ids)))
        return
    try:
        import aum  # noqa: F401
        import torch  # noqa: F401
        have_aum = True
    except ImportError:
        have_aum = False
        print("aum / torch not importable: reporting interpretdl_noise only")

    n_ids = 5_000 if args.quick else 50_000
    stream = make_stream(n_ids, 100, 256, args.epochs)
    n_batches = len(stream)
    print(f"update throughput: {n_batches} batches of 256, C=100, {n_ids:,} distinct ids, {args.epochs} epochs, "
          f"best of {args.repeats}")
    rows = []
    time_ours(stream[:20], as_paddle=True, str_ids=False)  # warm-up (imports, first allocations)
    for label, str_ids, compressed in [("int ids, compressed", False, True), ("str ids, compressed", True, True),
                                       ("int ids, full records", False, False)]:
        # best of `repeats`, interleaved so that a busy machine hurts both sides alike
        theirs, ours_np, ours_pd = [], [], []
        for _ in range(args.repeats):
            theirs.append(time_aum(stream, str_ids=str_ids, compressed=compressed) if have_aum else float("nan"))
            ours_np.append(time_ours(stream, as_paddle=False, str_ids=str_ids, compressed=compressed))
            ours_pd.append(time_ours(stream, as_paddle=True, str_ids=str_ids, compressed=compressed))
        rows.append((label, min(theirs), min(ours_np), min(ours_pd)))
    print(f"{'case':24s} {'aum ms/batch':>13s} {'ours numpy':>11s} {'ours paddle':>12s} "
          f"{'ratio np':>9s} {'ratio pd':>9s}")
    for label, theirs, ours_np, ours_pd in rows:
        print(f"{label:24s} {1e3 * theirs / n_batches:13.3f} {1e3 * ours_np / n_batches:11.3f} "
              f"{1e3 * ours_pd / n_batches:12.3f} {theirs / ours_np:8.1f}x {theirs / ours_pd:8.1f}x")

    print(f"\nmemory, compressed, {mem_ids:,} distinct int ids (fresh subprocess each):")
    for which in (["ours", "aum"] if have_aum else ["ours"]):
        res = subprocess.run([sys.executable, __file__, "--memory-worker", which, "--memory-ids", str(mem_ids)],
                             capture_output=True, text=True, check=True)
        info = json.loads(res.stdout.strip().splitlines()[-1])
        extra = f", numpy state {info['numpy_state_mb']:.1f} MB" if "numpy_state_mb" in info else ""
        print(f"  {which:5s} RSS growth {info['rss_growth_mb']:7.1f} MB{extra}, filled in {info['fill_seconds']:.1f} s")


if __name__ == "__main__":
    main()
