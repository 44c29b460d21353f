"""CoNAL vs majority vote / Dawid-Skene + training, on a simulated common-confusion crowd over digits.

Run (CPU, about 5-10 minutes for 3 seeds on 2 cores)::

    /work/venv/bin/python benchmarks/bench_conal.py                 # seeds 0 1 2, 100 epochs
    /work/venv/bin/python benchmarks/bench_conal.py --quick         # 1 seed, 20 epochs (smoke run)

Protocol (fixed before looking at test numbers; nothing is tuned on the test split):

- Data: scikit-learn digits (1797 x 64), per seed a stratified split 56% train / 14% val / 30% test.
  The train tasks get crowd labels only; val and test keep their true labels (peerannot's layout).
- Crowd (``simulate_crowd``): 30 annotators, 3 distinct annotators per task; 40% confusers sharing one
  common confusion (class pairs swapped with probability 0.6), 10% spammers, the rest experts with
  accuracy drawn in [0.7, 0.95].
- Methods, the same MLP 64-128-10 backbone, Adam, batch 64, 100 epochs, the epoch with the lowest val loss
  kept: ``truth`` (true labels, an upper reference), ``MV`` and ``DS`` (aggregate, then train),
  ``CoNAL`` (confusion_input='softmax', the default) and ``CoNAL-logits`` (peerannot's choice). Each
  method picks its learning rate in {1e-3, 1e-2} by the lowest validation loss; scale = 1e-5.
- Confusion recovery: mean row total-variation distance between the row-softmax of the learned global
  confusion and the true common confusion (0 = identical, identity matrix gives 0.6 here).
- Time: training-loop seconds per epoch (evaluation excluded), CoNAL vs the plain classifier, same data,
  loader and batch size.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time

import numpy as np
from sklearn.model_selection import train_test_split

from interpretdl_noise import ArrayDataset, load_digits_arrays
from interpretdl_noise._paddle import paddle
from interpretdl_noise.crowd import (
    CoNAL,
    dawid_skene,
    majority_vote,
    simulate_crowd,
    train_classifier,
)

LRS = (1e-3, 1e-2)


def mlp(seed: int):
    state = paddle.get_rng_state()
    paddle.seed(seed)
    net = paddle.nn.Sequential(paddle.nn.Linear(64, 128), paddle.nn.ReLU(), paddle.nn.Linear(128, 10))
    paddle.set_rng_state(state)
    return net


def row_tv(a: np.ndarray, b: np.ndarray) -> float:
    return float(0.5 * np.abs(a - b).sum(-1).mean())


def run_seed(seed: int, epochs: int) -> dict:
    x, y = load_digits_arrays()
    idx = np.arange(len(y))
    tr, te = train_test_split(idx, test_size=0.3, random_state=seed, stratify=y)
    tr, va = train_test_split(tr, test_size=0.2, random_state=seed, stratify=y[tr])
    sim = simulate_crowd(y[tr], 10, n_workers=30, labels_per_task=3, frac_confusers=0.4, frac_spammers=0.1,
                         confusion_rate=0.6, seed=seed)
    val, test = ArrayDataset(x[va], y[va]), ArrayDataset(x[te], y[te])
    mv = majority_vote(sim.labels, 10, seed=seed)
    ds = dawid_skene(sim.labels, 10)
    out = {"seed": seed, "n_train": len(tr), "answer_acc": sim.label_accuracy(),
           "mv_label_acc": float((mv == y[tr]).mean()), "ds_label_acc": float((ds.labels == y[tr]).mean())}
    conf = sim.worker_types == "confuser"
    out["ds_confuser_tv"] = row_tv(ds.confusions[conf], sim.common_confusion[None])
    out["identity_tv"] = row_tv(np.eye(10), sim.common_confusion)

    def pick(runs):
        return min(runs, key=lambda r: min(r["val_loss"]))

    for name, labels in (("truth", y[tr]), ("MV", mv), ("DS", ds.labels)):
        runs = []
        for lr in LRS:
            r = train_classifier(mlp(seed), ArrayDataset(x[tr], labels), val, test, n_classes=10, optimizer="adam",
                                 n_epochs=epochs, batch_size=64, lr=lr, seed=seed)
            r["lr"] = lr
            runs.append(r)
        best = pick(runs)
        out[name] = {"test_accuracy": best["test_accuracy"], "lr": best["lr"],
                     "sec_per_epoch": statistics.median(best["epoch_seconds"]),
                     "by_lr": {r["lr"]: r["test_accuracy"] for r in runs}}
    train = ArrayDataset(x[tr], np.arange(len(tr)))
    for name, ci in (("CoNAL", "softmax"), ("CoNAL-logits", "logits")):
        runs = []
        for lr in LRS:
            with tempfile.TemporaryDirectory() as tmp:
                trainer = CoNAL(None, sim.answers, mlp(seed), 10, "adam", epochs, scale=1e-5, verbose=False,
                                lr=lr, batch_size=64, seed=seed, confusion_input=ci, train_dataset=train,
                                val_dataset=val, test_dataset=test, output_dir=tmp)
                r = trainer.run()
            g, loc = trainer.transition_matrices()
            r.update(lr=lr, global_tv=row_tv(g, sim.common_confusion),
                     confuser_local_tv=row_tv(loc[conf], sim.common_confusion[None]))
            runs.append(r)
        best = pick(runs)
        out[name] = {"test_accuracy": best["test_accuracy"], "lr": best["lr"], "global_tv": best["global_tv"],
                     "confuser_local_tv": best["confuser_local_tv"],
                     "sec_per_epoch": statistics.median(best["epoch_seconds"]),
                     "by_lr": {r["lr"]: r["test_accuracy"] for r in runs}}
    return out


def time_backbones(epochs: int = 5) -> list:
    """Seconds per epoch of CoNAL vs the plain classifier for a small and a wider MLP (seed 0 crowd)."""
    x, y = load_digits_arrays()
    tr, _ = train_test_split(np.arange(len(y)), test_size=0.3, random_state=0, stratify=y)
    tr, va = train_test_split(tr, test_size=0.2, random_state=0, stratify=y[tr])
    sim = simulate_crowd(y[tr], 10, seed=0)
    val = ArrayDataset(x[va], y[va])
    rows = []
    for hidden in ((128,), (1024, 1024)):
        def net(hidden=hidden):
            state = paddle.get_rng_state()
            paddle.seed(0)
            sizes, layers = (64, *hidden), []
            for a, b in zip(sizes[:-1], sizes[1:]):
                layers += [paddle.nn.Linear(a, b), paddle.nn.ReLU()]
            model = paddle.nn.Sequential(*layers, paddle.nn.Linear(sizes[-1], 10))
            paddle.set_rng_state(state)
            return model
        plain = train_classifier(net(), ArrayDataset(x[tr], majority_vote(sim.labels, 10)), val, n_classes=10,
                                 n_epochs=epochs, lr=1e-3)
        with tempfile.TemporaryDirectory() as tmp:
            conal = CoNAL(None, sim.answers, net(), 10, "adam", epochs, verbose=False, lr=1e-3,
                          train_dataset=ArrayDataset(x[tr], np.arange(len(tr))), val_dataset=val, test_dataset=val,
                          output_dir=tmp).run()
        rows.append(("64-" + "-".join(map(str, hidden)) + "-10", statistics.median(plain["epoch_seconds"]),
                     statistics.median(conal["epoch_seconds"])))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="1 seed, 20 epochs")
    parser.add_argument("--json", help="also write the raw results to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.epochs = args.seeds[:1], 20
    start = time.perf_counter()
    rows = []
    for seed in args.seeds:
        rows.append(run_seed(seed, args.epochs))
        print(f"seed {seed} done ({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    methods = ("truth", "MV", "DS", "CoNAL", "CoNAL-logits")
    print(f"\n## Test accuracy (%) over seeds {args.seeds}, {args.epochs} epochs\n")
    print("| seed | answers correct | MV labels | DS labels | " + " | ".join(methods) + " |")
    print("|---|---|---|---|" + "---|" * len(methods))
    for r in rows:
        cells = [f"{r[m]['test_accuracy']:.2f} (lr {r[m]['lr']:g})" for m in methods]
        print(f"| {r['seed']} | {100 * r['answer_acc']:.1f} | {100 * r['mv_label_acc']:.1f} | "
              f"{100 * r['ds_label_acc']:.1f} | " + " | ".join(cells) + " |")
    accs = {m: [r[m]["test_accuracy"] for r in rows] for m in methods}
    means = [f"{np.mean(accs[m]):.2f} ± {np.std(accs[m]):.2f}" for m in methods]
    print("| mean ± std | | | | " + " | ".join(means) + " |")
    print("\n## Sensitivity: test accuracy (%) of every learning rate, mean over seeds (not used for selection)\n")
    print("| lr | " + " | ".join(methods) + " |")
    print("|---|" + "---|" * len(methods))
    for lr in LRS:
        print(f"| {lr:g} | " + " | ".join(f"{np.mean([r[m]['by_lr'][lr] for r in rows]):.2f}" for m in methods) + " |")
    print("\n## Common confusion recovery (mean row total variation to the true common confusion)\n")
    print("| seed | identity | DS confusers (mean) | CoNAL global | CoNAL confusers' local | CoNAL-logits global |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['seed']} | {r['identity_tv']:.3f} | {r['ds_confuser_tv']:.3f} | {r['CoNAL']['global_tv']:.3f} | "
              f"{r['CoNAL']['confuser_local_tv']:.3f} | {r['CoNAL-logits']['global_tv']:.3f} |")
    print("\n## Training time per epoch (median over epochs, training loop only)\n")
    print("| seed | plain classifier (MV labels) s/epoch | CoNAL s/epoch | ratio |")
    print("|---|---|---|---|")
    for r in rows:
        plain, conal = r["MV"]["sec_per_epoch"], r["CoNAL"]["sec_per_epoch"]
        print(f"| {r['seed']} | {plain:.4f} | {conal:.4f} | {conal / plain:.1f}x |")
    print("\n| backbone (5 epochs, lr 1e-3) | plain s/epoch | CoNAL s/epoch | ratio |")
    print("|---|---|---|---|")
    for name, plain, conal in time_backbones():
        print(f"| {name} | {plain:.4f} | {conal:.4f} | {conal / plain:.1f}x |")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(rows, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
