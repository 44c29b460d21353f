"""Detector benchmark suite: every registered detector on reproducible CPU recordings.

For each setting (data set x model x noise kind x noise rate) the script

1. holds out a clean, stratified 25 % test split, injects seeded label noise into the rest;
2. trains the model with :class:`interpretdl_noise.TrainingDynamics` recording (logits and losses kept)
   and saves the npz recording;
3. runs :func:`interpretdl_noise.compare.compare_detectors` with every detector (``confident_learning``
   gets the raw training data and the same model architecture, K = 5 folds);
4. downstream: retrains the same model from the same initial weights after removing each detector's
   top-r % (r = the injected noise rate) and measures test accuracy, against no removal and against
   removing exactly the true flips (oracle).

Data (all offline): scikit-learn digits (1797 x 64, 10 classes; MLP and a small CNN on 1x8x8 images),
breast_cancer (569 x 30, 2 classes) and wine (178 x 13, 3 classes), both standardised, MLP. Noise:
uniform and flip (c -> c+1) at 10 / 20 / 40 %. With 2 classes uniform and flip noise are identical, so
breast_cancer runs flip only.

Usage::

    python benchmarks/detect_suite.py --quick            # < 3 min on 2 cores
    python benchmarks/detect_suite.py                    # full suite, < 20 min on 2 cores
    python benchmarks/detect_suite.py --out results/     # also write per-setting CSVs

This is a script, not library code: it seeds numpy's and Paddle's global generators for reproducible
recordings (paddle.io.DataLoader shuffles with numpy's global RNG).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from interpretdl_noise import (
    ArrayDataset,
    DatasetWithIndex,
    TrainingDynamics,
    inject_label_noise,
    load_digits_arrays,
    load_training_dynamics,
)
from interpretdl_noise._paddle import paddle
from interpretdl_noise.common.metrics import top_k_mask
from interpretdl_noise.compare import compare_detectors
from interpretdl_noise.interpreter.confident_learning import default_model, fit_classifier, predict_proba
from interpretdl_noise.interpreter.registry import detector_names

RATES = (0.1, 0.2, 0.4)
KINDS = ("uniform", "flip")


def load_dataset(name: str):
    """(x, y) of an offline data set; x float32, standardised (digits scaled to [0, 1])."""
    from sklearn.datasets import load_breast_cancer, load_wine

    if name == "digits":
        return load_digits_arrays()
    loader = {"breast_cancer": load_breast_cancer, "wine": load_wine}[name]
    data = loader()
    return data.data.astype(np.float32), data.target.astype(np.int64)


def settings(quick: bool):
    """List of (dataset, model, kind, rate)."""
    if quick:
        return [("digits", "mlp", "uniform", 0.2), ("digits", "mlp", "flip", 0.2), ("wine", "mlp", "uniform", 0.2),
                ("breast_cancer", "mlp", "flip", 0.2)]
    out = []
    for dataset, models, kinds in (("digits", ("mlp", "cnn"), KINDS), ("breast_cancer", ("mlp",), ("flip",)),
                                   ("wine", ("mlp",), KINDS)):
        for model in models:
            for kind in kinds:
                for rate in RATES:
                    out.append((dataset, model, kind, rate))
    return out


def make_model_fn(shape, n_classes: int):
    return lambda: default_model(shape, n_classes)


def init_model(model_fn, seed: int):
    paddle.seed(seed)
    return model_fn()


def record(x, y, model_fn, *, epochs: int, seed: int):
    """Train with the recorder on; returns (recorder, TrainingDynamics)."""
    np.random.seed(seed)  # DataLoader shuffling
    model = init_model(model_fn, seed)
    opt = paddle.optimizer.Adam(learning_rate=1e-3, parameters=model.parameters())
    loader = paddle.io.DataLoader(DatasetWithIndex(ArrayDataset(x, y), index_first=True), batch_size=64,
                                  shuffle=True)
    td = TrainingDynamics(model)
    rec = td.generator(loader, opt, epochs, keep_logits=True, keep_losses=True, progress=False)
    return rec, td


def accuracy_after_removal(x, y, x_test, y_test, keep, model_fn, *, epochs: int, seed: int) -> float:
    model = init_model(model_fn, seed)
    fit_classifier(model, x[keep], y[keep], epochs=epochs, seed=seed)
    return float((predict_proba(model, x_test).argmax(1) == y_test).mean())


def run_setting(dataset: str, model: str, kind: str, rate: float, *, seed: int, epochs: int, workdir: Path):
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    x, y = load_dataset(dataset)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, stratify=y, random_state=seed)
    if dataset != "digits":
        scaler = StandardScaler().fit(x_tr)
        x_tr, x_te = scaler.transform(x_tr).astype(np.float32), scaler.transform(x_te).astype(np.float32)
    n_classes = int(y.max()) + 1
    shape = (1, 8, 8) if model == "cnn" else (x.shape[1],)
    x_tr, x_te = x_tr.reshape((-1,) + shape), x_te.reshape((-1,) + shape)
    noisy, flips = inject_label_noise(y_tr, rate, kind=kind, n_classes=n_classes, seed=seed)
    model_fn = make_model_fn(shape, n_classes)

    t0 = time.perf_counter()
    rec, td = record(x_tr, noisy, model_fn, epochs=epochs, seed=seed)
    path = workdir / f"{dataset}_{model}_{kind}_{int(rate * 100)}.npz"
    td.save(rec, label_flip=flips, save_path=path, meta={"dataset": dataset, "model": model, "noise": kind,
                                                         "rate": rate, "seed": seed})
    t_record = time.perf_counter() - t0
    recording = load_training_dynamics(path)
    result = compare_detectors(recording, x=x_tr, plots=False, progress=False,
                               detector_kwargs={"confident_learning": {"model_fn": model_fn, "epochs": epochs,
                                                                       "seed": seed}})
    metrics = result.metrics.copy() if result.metrics is not None else pd.DataFrame()

    r = round(rate * len(noisy))
    acc = {"none": accuracy_after_removal(x_tr, noisy, x_te, y_te, np.ones(len(noisy), bool), model_fn,
                                          epochs=epochs, seed=seed),
           "oracle": accuracy_after_removal(x_tr, noisy, x_te, y_te, ~flips, model_fn, epochs=epochs, seed=seed)}
    for name, s in result.scores.items():
        acc[name] = accuracy_after_removal(x_tr, noisy, x_te, y_te, ~top_k_mask(s, r), model_fn,
                                           epochs=epochs, seed=seed)
    setting = f"{dataset}/{model}/{kind}/{int(rate * 100)}%"
    skipped = {n: i.get("reason") for n, i in result.status.items() if i["status"] != "ran"}
    return setting, metrics, acc, skipped, t_record


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 small settings (< 3 min)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="folder for CSV results (default: print only)")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    rows, acc_rows, skipped_all = [], [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for dataset, model, kind, rate in settings(args.quick):
            epochs = {"mlp": 20 if args.quick else 40, "cnn": 20}[model]
            t0 = time.perf_counter()
            setting, metrics, acc, skipped, t_rec = run_setting(dataset, model, kind, rate, seed=args.seed,
                                                                epochs=epochs, workdir=Path(tmp))
            for name, row in metrics.iterrows():
                rows.append({"setting": setting, "detector": name, **row.to_dict()})
            acc_rows.append({"setting": setting, **acc})
            skipped_all.update({k: v for k, v in skipped.items()})
            print(f"[{time.perf_counter() - start:6.1f}s] {setting}: {time.perf_counter() - t0:.1f}s "
                  f"(recording {t_rec:.1f}s)", flush=True)
    long = pd.DataFrame(rows)
    order = [n for n in detector_names() if n in set(long["detector"])]
    tables = {}
    for metric in ("auroc", "ap"):
        table = long.pivot(index="setting", columns="detector", values=metric)[order]
        table = table.reindex([r["setting"] for r in acc_rows])
        table.loc["mean"] = table.mean()
        tables[metric] = table
    acc = pd.DataFrame(acc_rows).set_index("setting")
    acc = acc[["none", "oracle"] + [n for n in order if n in acc.columns]]
    acc.loc["mean"] = acc.mean()
    pd.set_option("display.width", 200)
    for metric, table in tables.items():
        print(f"\n## {metric.upper()} (higher is better)\n")
        print(markdown(table))
    print("\n## Test accuracy after removing each detector's top-r% (r = noise rate)\n")
    print(markdown(acc))
    wins = tables["auroc"].drop(index="mean").idxmax(axis=1).value_counts()
    print("\nbest AUROC per setting (count):", wins.to_dict())
    if skipped_all:
        print("\nnot run:", skipped_all)
    print(f"\ntotal {time.perf_counter() - start:.1f}s")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        long.to_csv(out / "detect_suite_metrics.csv", index=False)
        acc.to_csv(out / "detect_suite_downstream.csv")
    return 0


def markdown(table: pd.DataFrame) -> str:
    """A GitHub markdown table with 3 decimals; the best value of each row in bold."""
    cols = [str(c) for c in table.columns]
    lines = ["| " + " | ".join([table.index.name or ""] + cols) + " |", "|" + "---|" * (len(cols) + 1)]
    for idx, row in table.iterrows():
        best = np.nanmax(row.to_numpy(dtype=float))
        cells = [f"**{v:.3f}**" if v == best else f"{v:.3f}" for v in row.to_numpy(dtype=float)]
        lines.append("| " + " | ".join([str(idx)] + cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
