"""From scores to decisions (issue 14): noise-rate estimators, the 'auto' cut-off, suggested labels, downstream.

Every setting trains a fresh model with our recorder (``TrainingDynamics.generator``) on the training split
(80 %, stratified) of an offline data set whose training labels were corrupted with
``inject_label_noise``; the other 20 % (clean labels) is the held-out test split of ``--downstream``.

    python benchmarks/bench_decisions.py --cache CACHE_DIR            # all settings (resumable)
    python benchmarks/bench_decisions.py --cache CACHE_DIR --quick    # 12 settings, a few minutes
    python benchmarks/bench_decisions.py --cache CACHE_DIR --downstream   # retrain on cleaned data
    python benchmarks/bench_decisions.py --cache HELDOUT_DIR --heldout    # 33 held-out settings (own folder)

Each recording is cached as ``CACHE_DIR/<setting>.npz`` and its measurements as ``CACHE_DIR/<setting>.json``;
re-running skips finished settings (delete a file to redo it). Tables are printed as markdown and written to
``CACHE_DIR/tables.md``.

Targets: mean absolute error of the estimated noise rate <= 2 percentage points, none above 5 (all
settings); suggestions equal the clean label for >= 85 % of the truly mislabeled samples on uniform noise.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

warnings.filterwarnings("ignore", message="No ccache found")
warnings.filterwarnings("ignore", message="the recording has")
warnings.filterwarnings("ignore", message="the model fits")  # memorising runs: measured, not hidden (see tables)
INTERVAL_ESTIMATORS = ("early_learning", "confident_joint")  # the ones measured with a 100-resample interval

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

import interpretdl_noise as inl  # noqa: E402
from interpretdl_noise._paddle import paddle  # noqa: E402
from interpretdl_noise.common.file_utils import atomic_path  # noqa: E402
from interpretdl_noise.common.seeding import paddle_seed  # noqa: E402
from interpretdl_noise.decisions.issues import top_k_mask  # noqa: E402
from interpretdl_noise.decisions.noise import DEFAULT_ESTIMATOR  # noqa: E402
from interpretdl_noise.detector_training.sources import build_model, load_source  # noqa: E402
from interpretdl_noise.interpreter.registry import run_detector  # noqa: E402

GROUPS = (("digits", "mlp"), ("breast_cancer", "mlp"), ("wine", "mlp"), ("mnist1d", "mlp"), ("mnist1d", "cnn"),
          ("digits", "cnn"))
KINDS = ("uniform", "flip", "pair", "class_dependent")
RATES = (0.02, 0.05, 0.10, 0.20, 0.40)
DETECTORS = ("bhdf", "aum", "ema", "forgetting", "datamaps", "small_loss")
# name -> (estimate_noise method, kwargs)
ESTIMATORS = {
    "early_learning": ("early_learning", {}),
    "confident_joint": ("confident_joint", {}),
    "confident_joint_early": ("confident_joint", {"epochs": "early"}),  # first half, set per run
    "confident_joint_late": ("confident_joint", {"epochs": "late"}),
    "mixture_aum": ("mixture", {"detector": "aum"}),
    "mixture_small_loss": ("mixture", {"detector": "small_loss"}),
    "bhdf_prior": ("bhdf_prior", {}),
}
# training recipe per (data set, model): epochs, batch size, learning rate, width, depth
RECIPES = {
    ("digits", "mlp"): (30, 64, 1e-3, 128, 1),
    ("breast_cancer", "mlp"): (30, 32, 1e-3, 64, 1),
    ("wine", "mlp"): (40, 16, 1e-3, 64, 1),
    ("mnist1d", "mlp"): (40, 64, 1e-3, 256, 2),
    ("mnist1d", "cnn"): (30, 64, 3e-3, 128, 1),  # build_model's CNN uses width // 4 = 32 and 64 channels
    ("digits", "cnn"): (20, 64, 2e-3, 32, 1),
    # held-out only (never used to choose a default): two sources the main table does not contain
    ("iris", "mlp"): (40, 16, 1e-3, 64, 1),
    ("synthetic", "mlp"): (30, 64, 1e-3, 128, 1),
}
SUGGEST_EPOCHS = {"all": None, "late": "late", "early": slice(0, None)}  # 'early' is set per run (first half)
RELABEL_THRESHOLDS = (0.0, 0.3, 0.5, 0.7, 0.9)


@dataclass(frozen=True)
class Setting:
    source: str
    model: str
    kind: str
    rate: float
    epochs: Optional[int] = None  # None: the recipe's; else a shorter or longer run
    variant: int = 0  # > 0: another seed (and, for 'synthetic', another generated data set)
    imbalance: float = 1.0  # < 1: class c keeps imbalance ** (c / (C - 1)) of its training samples

    @property
    def name(self) -> str:
        base = f"{self.source}-{self.model}-{self.kind}-{int(round(self.rate * 100)):02d}"
        if self.epochs is not None:
            base += f"-e{self.epochs}"
        if self.variant:
            base += f"-s{self.variant}"
        if self.imbalance < 1.0:
            base += f"-imb{int(round(self.imbalance * 100)):02d}"
        return base

    @property
    def seed(self) -> int:
        return zlib.crc32(self.name.encode()) % 10_000


def all_settings(quick: bool) -> list[Setting]:
    out = []
    for source, model in GROUPS:
        binary = source == "breast_cancer"
        for kind in KINDS:
            if binary and kind in ("flip", "pair"):
                continue  # with two classes flip, pair and uniform noise are the same thing
            for rate in RATES:
                out.append(Setting(source, model, kind, rate))
    if quick:
        keep = {("digits", "mlp"), ("breast_cancer", "mlp"), ("mnist1d", "mlp")}
        out = [s for s in out if (s.source, s.model) in keep and s.kind in ("uniform", "class_dependent")
               and s.rate in (0.05, 0.2)]
    return out


# ------------------------------------------------------------------------------------------------ data + runs
def split_data(setting: Setting):
    """Train/test split (80/20, stratified) and the noisy training labels; deterministic per setting."""
    from sklearn.model_selection import train_test_split

    src = load_source(setting.source, seed=setting.variant)
    idx_tr, idx_te = train_test_split(np.arange(src.y.size), test_size=0.2, stratify=src.y, random_state=setting.seed)
    if setting.imbalance < 1.0:  # a geometric class imbalance of the training split (the test split stays balanced)
        rng = np.random.default_rng(setting.seed)
        keep_share = setting.imbalance ** (src.y[idx_tr] / max(src.n_classes - 1, 1))
        idx_tr = idx_tr[rng.random(idx_tr.size) < keep_share]
    y_tr = src.y[idx_tr]
    noisy, flips = inl.inject_label_noise(y_tr, setting.rate, kind=setting.kind, n_classes=src.n_classes,
                                          seed=setting.seed)
    return src, src.x[idx_tr], y_tr, noisy, flips, src.x[idx_te], src.y[idx_te]


def _model(setting: Setting, src):
    _, _, _, width, depth = RECIPES[(setting.source, setting.model)]
    return build_model(setting.model, src, width=width, depth=depth)


def _epochs(setting: Setting) -> int:
    return RECIPES[(setting.source, setting.model)][0] if setting.epochs is None else int(setting.epochs)


def record(setting: Setting, path: Path) -> None:
    src, x, y, noisy, flips, _, _ = split_data(setting)
    _, batch, lr, _, _ = RECIPES[(setting.source, setting.model)]
    epochs = _epochs(setting)
    with paddle_seed(setting.seed):
        net = _model(setting, src)
        loader = paddle.io.DataLoader(inl.DatasetWithIndex(inl.ArrayDataset(x, noisy), index_first=True),
                                      batch_sampler=inl.SeededBatchSampler(y.size, batch, seed=setting.seed))
        opt = paddle.optimizer.Adam(learning_rate=lr, parameters=net.parameters())
        td = inl.TrainingDynamics(net)
        rec = td.generator(loader, opt, epochs, keep_logits=True, keep_losses=True, progress=False)
    meta = {"setting": setting.name, "source": setting.source, "model": setting.model, "noise": setting.kind,
            "rate": setting.rate, "epochs": epochs}
    td.save(rec, label_flip=flips, save_path=path, meta=meta)


def train_eval(setting: Setting, src, x, y, x_te, y_te) -> float:
    """Test accuracy of the setting's model trained (same recipe and seed) on ``(x, y)``."""
    _, batch, lr, _, _ = RECIPES[(setting.source, setting.model)]
    epochs = _epochs(setting)
    rng = np.random.default_rng(setting.seed)
    with paddle_seed(setting.seed):
        net = _model(setting, src)
        opt = paddle.optimizer.Adam(learning_rate=lr, parameters=net.parameters())
        xt, yt = paddle.to_tensor(x), paddle.to_tensor(np.asarray(y, dtype=np.int64))
        net.train()
        for _ in range(epochs):
            order = rng.permutation(y.size)
            for start in range(0, y.size, batch):
                idx = paddle.to_tensor(order[start:start + batch])
                loss = paddle.nn.functional.cross_entropy(net(paddle.gather(xt, idx)), paddle.gather(yt, idx))
                loss.backward()
                opt.step()
                opt.clear_grad()
        net.eval()
        with paddle.no_grad():
            pred = net(paddle.to_tensor(x_te)).numpy().argmax(axis=1)
    return float((pred == y_te).mean())


def prf(mask: np.ndarray, truth: np.ndarray) -> dict:
    tp = int((mask & truth).sum())
    p = tp / max(int(mask.sum()), 1)
    r = tp / max(int(truth.sum()), 1)
    return {"precision": p, "recall": r, "f1": 0.0 if p + r == 0 else 2 * p * r / (p + r), "n": int(mask.sum())}


def measure(setting: Setting, path: Path) -> dict:
    rec = inl.Recording.coerce(path)
    _, _, clean, noisy, flips, _, _ = split_data(setting)
    assert np.array_equal(rec.assigned_labels, noisy)
    out: dict = {"setting": setting.name, "source": setting.source, "model": setting.model, "kind": setting.kind,
                 "rate": setting.rate, "true_rate": float(flips.mean()), "n": rec.n_samples, "estimates": {},
                 "auto": {}, "oracle_f1": {}, "suggest": {}, "relabel": {}}
    t0 = time.perf_counter()
    scores = {d: run_detector(d, rec) for d in DETECTORS}
    out["seconds_detectors"] = time.perf_counter() - t0
    estimates = {}
    for name, (method, kw) in ESTIMATORS.items():
        extra = {"scores": scores["bhdf"]} if method == "bhdf_prior" else {}
        if method == "mixture":
            extra = {"scores": scores[kw["detector"]]}
            kw = {}
        if kw.get("epochs") == "early":
            kw = {"epochs": slice(0, max(1, rec.n_epochs // 2))}
        t0 = time.perf_counter()
        n_boot = 100 if name in INTERVAL_ESTIMATORS else 0
        est = inl.estimate_noise(rec, method, n_bootstrap=n_boot, **kw, **extra)
        estimates[name] = est
        out["estimates"][name] = {"rate": est.rate, "interval": list(est.interval), "seconds": time.perf_counter() - t0,
                                  "per_class": est.per_class.tolist(),
                                  "identifiable": bool(est.details.get("identifiable", True))}
    true_per_class = np.array([flips[noisy == c].mean() if (noisy == c).any() else 0.0 for c in range(rec.n_classes)])
    out["true_per_class"] = true_per_class.tolist()
    k_true = int(flips.sum())
    for d in DETECTORS:
        out["oracle_f1"][d] = prf(top_k_mask(scores[d], k_true), flips)["f1"]
        out["auto"][d] = {}
        for name, est in estimates.items():
            for per_class in (True, False):
                mask = inl.find_label_issues(rec, d, estimate=est, per_class=per_class, scores=scores[d])
                out["auto"][d][f"{name}|{'class' if per_class else 'global'}"] = prf(mask, flips)
    early = slice(0, max(1, rec.n_epochs // 2))
    for label, epochs in (("all", None), ("late", "late"), ("early", early)):
        s = inl.suggest_labels(rec, flips, epochs=epochs)
        out["suggest"][label] = float((s.label[flips] == clean[flips]).mean()) if flips.any() else float("nan")
    flagged = inl.find_label_issues(rec, "bhdf", estimate=estimates[DEFAULT_ESTIMATOR],
                                   scores=scores["bhdf"])
    sug = inl.suggest_labels(rec, flagged)
    for t in RELABEL_THRESHOLDS:
        chosen = flagged & (sug.confidence >= t)
        out["relabel"][str(t)] = {"n": int(chosen.sum()), "n_flagged": int(flagged.sum()),
                                  "correct": float((sug.label[chosen] == clean[chosen]).mean()) if chosen.any()
                                  else float("nan")}
    return out


def downstream(setting: Setting, path: Path, detectors=("bhdf", "aum", "small_loss")) -> dict:
    rec = inl.Recording.coerce(path)
    src, x, clean, noisy, flips, x_te, y_te = split_data(setting)
    res = {"setting": setting.name, "true_rate": float(flips.mean()),
           "noisy": train_eval(setting, src, x, noisy, x_te, y_te),
           "oracle": train_eval(setting, src, x[~flips], noisy[~flips], x_te, y_te), "detectors": {}}
    for d in detectors:
        drop = inl.clean(rec, d, relabel=False, n_bootstrap=0)
        both = inl.clean(rec, d, n_bootstrap=0)
        kd, kb = drop.keep_indices, both.keep_indices  # sample ids = rows of the training split here
        res["detectors"][d] = {
            "drop": train_eval(setting, src, x[kd], noisy[kd], x_te, y_te),
            "relabel_drop": train_eval(setting, src, x[kb], both.labels[kb], x_te, y_te),
            "n_dropped": int(flips.size - kd.size), "n_relabelled": both.summary["counts"]["relabel"],
            "relabel_correct": float((both.labels[kb] == clean[kb]).mean()),
        }
    return res


# ------------------------------------------------------------------------------------------------ tables
def _pp(v: float) -> str:
    return f"{100 * v:.1f}"


def _category(result: dict) -> str:
    """Group of a setting: data set / model, or for the held-out settings what differs from the main grid."""
    name = result["setting"]
    if result["source"] == "synthetic":
        return "synthetic (make_classification)"
    if result["source"] == "iris":
        return "iris"
    if "-imb" in name:
        return "class imbalance (" + result["source"] + "-" + result["model"] + ")"
    if "-e10" in name or "-e80" in name:
        return name.split("-")[-1].replace("e", "") + " epochs"
    if name.rsplit("-", 1)[-1].startswith("s"):
        return "other seed"
    return result["source"] + "-" + result["model"]


def tables(results: list[dict], default: str) -> str:
    lines = []
    names = list(ESTIMATORS)
    rows = []
    for r in results:
        row = {"setting": r["setting"], "true": r["true_rate"]}
        row.update({n: r["estimates"][n]["rate"] for n in names})
        rows.append(row)
    df = pd.DataFrame(rows)
    err = {n: (df[n] - df["true"]).abs() for n in names}
    lines.append(f"Noise-rate estimators over {len(df)} settings (absolute error, percentage points):\n")
    lines.append("| estimator | MAE | median | max | settings > 5 pp | MAE true <= 10 % | MAE true >= 20 % |")
    lines.append("|---|---|---|---|---|---|---|")
    for n in names:
        e = err[n]
        lo, hi = df["true"] <= 0.105, df["true"] >= 0.195
        lines.append(f"| {n}{' (default)' if n == default else ''} | {_pp(e.mean())} | {_pp(e.median())} | "
                     f"{_pp(e.max())} | {int((e > 0.05).sum())} | {_pp(e[lo].mean())} | {_pp(e[hi].mean())} |")
    lines.append("\n95 % intervals: share of settings whose interval contains the true rate, and mean width (pp):\n")
    lines.append("| estimator | coverage | mean width | settings flagged not identifiable |")
    lines.append("|---|---|---|---|")
    for n in INTERVAL_ESTIMATORS:
        iv = np.array([r["estimates"][n]["interval"] for r in results])
        inside = (iv[:, 0] <= df["true"].to_numpy()) & (df["true"].to_numpy() <= iv[:, 1])
        flagged = sum(not r["estimates"][n].get("identifiable", True) for r in results)
        lines.append(f"| {n} | {100 * inside.mean():.0f} % | {_pp(np.mean(iv[:, 1] - iv[:, 0]))} | {flagged} |")
    ok = np.array([r["estimates"][default].get("identifiable", True) for r in results])
    if (~ok).any() and ok.any():
        e = err[default]
        lines.append(f"\n{default} on the {int(ok.sum())} settings it calls identifiable: MAE {_pp(e[ok].mean())}, "
                     f"max {_pp(e[ok].max())}, {int((e[ok] > 0.05).sum())} > 5 pp; on the {int((~ok).sum())} it "
                     f"flags: MAE {_pp(e[~ok].mean())}.\n")
    df["group"] = [_category(r) for r in results]
    df["kind"] = [r["kind"] for r in results]
    lines.append("MAE (pp) by data set / model and by noise kind:\n")
    lines.append("| group | settings | " + " | ".join(names) + f" | {default} max | {default} > 5 pp | "
                 f"{default} interval coverage |")
    lines.append("|---|---|" + "---|" * (len(names) + 3))
    iv = np.array([r["estimates"][default]["interval"] for r in results])
    df["covered"] = (iv[:, 0] <= df["true"].to_numpy()) & (df["true"].to_numpy() <= iv[:, 1])
    for key, part in list(df.groupby("group", sort=False)) + list(df.groupby("kind", sort=False)):
        e = (part[default] - part["true"]).abs()
        lines.append(f"| {key} | {len(part)} | " + " | ".join(_pp((part[n] - part["true"]).abs().mean())
                                                            for n in names)
                     + f" | {_pp(e.max())} | {int((e > 0.05).sum())} | {100 * part['covered'].mean():.0f} % |")
    lines.append("\n<details><summary>Estimated vs true noise rate per setting (%)</summary>\n")
    lines.append("| setting | true | " + " | ".join(names) + " |")
    lines.append("|---|---|" + "---|" * len(names))
    for _, row in df.iterrows():
        lines.append(f"| {row['setting']} | {_pp(row['true'])} | " + " | ".join(_pp(row[n]) for n in names) + " |")
    lines.append("\n</details>\n")
    # cut-off F1
    lines.append(f"'auto' cut-off (the {default} estimate of the number of issues, taken from the whole ranking: the "
                 "default) vs the same count allotted per given class, and vs the oracle count (top k = the true "
                 "number of flips); means over settings:\n")
    lines.append("| detector | precision | recall | F1 auto | F1 auto, per class | F1 oracle k |")
    lines.append("|---|---|---|---|---|---|")
    for d in DETECTORS:
        a = [r["auto"][d][f"{default}|global"] for r in results]
        c = [r["auto"][d][f"{default}|class"]["f1"] for r in results]
        lines.append(f"| {d} | {np.mean([x['precision'] for x in a]):.3f} | {np.mean([x['recall'] for x in a]):.3f} | "
                     f"{np.mean([x['f1'] for x in a]):.3f} | {np.mean(c):.3f} | "
                     f"{np.mean([r['oracle_f1'][d] for r in results]):.3f} |")
    # suggestions
    lines.append("\nSuggested label = clean label, share of the truly mislabeled samples (flagged = the true flips):\n")
    lines.append("| noise kind | settings | all epochs (default) | late epochs | early epochs |")
    lines.append("|---|---|---|---|---|")
    for kind in KINDS:
        part = [r for r in results if r["kind"] == kind]
        if part:
            lines.append(f"| {kind} | {len(part)} | " + " | ".join(
                f"{100 * np.nanmean([r['suggest'][e] for r in part]):.1f} %" for e in ("all", "late", "early")) + " |")
    lines.append("\nRelabel policy on bhdf's 'auto' flags: share of relabelled samples whose new label is the clean "
                 "one, by confidence threshold (pooled over settings):\n")
    lines.append("| min_confidence | relabelled / flagged | correct |")
    lines.append("|---|---|---|")
    for t in RELABEL_THRESHOLDS:
        n = sum(r["relabel"][str(t)]["n"] for r in results)
        f = sum(r["relabel"][str(t)]["n_flagged"] for r in results)
        c = sum(r["relabel"][str(t)]["n"] * np.nan_to_num(r["relabel"][str(t)]["correct"]) for r in results)
        lines.append(f"| {t} | {n} / {f} ({100 * n / max(f, 1):.0f} %) | {100 * c / max(n, 1):.1f} % |")
    return "\n".join(lines)


def downstream_table(results: list[dict]) -> str:
    dets = ("bhdf", "aum", "small_loss")
    lines = ["Test accuracy (%) of the same model retrained on: (a) noisy data, (b) 'auto' flags dropped, "
             "(c) confident suggestions relabelled and the other flags dropped, (d) the true flips removed:\n",
             "| setting | (a) noisy | (d) oracle | " + " | ".join(f"{d} (b) / (c)" for d in dets) + " |",
             "|---|---|---|" + "---|" * len(dets)]

    def cell(rs, d):
        return (f"{100 * np.mean([r['detectors'][d]['drop'] for r in rs]):.1f} / "
                f"{100 * np.mean([r['detectors'][d]['relabel_drop'] for r in rs]):.1f}")

    for r in results:
        lines.append(f"| {r['setting']} | {100 * r['noisy']:.1f} | {100 * r['oracle']:.1f} | "
                     + " | ".join(cell([r], d) for d in dets) + " |")
    noisy, oracle = (100 * np.mean([r[k] for r in results]) for k in ("noisy", "oracle"))
    lines.append(f"| **mean** | {noisy:.1f} | {oracle:.1f} | " + " | ".join(cell(results, d) for d in dets) + " |")
    return "\n".join(lines)


# Held-out settings: never used to choose or tune an estimator; they check that the default generalises to
# other seeds, shorter and longer runs, class imbalance, unseen noise rates and two unseen sources.
HELDOUT = ([Setting(s, m, k, r, variant=1) for (s, m), (k, r) in zip(
               GROUPS, (("uniform", 0.15), ("class_dependent", 0.30), ("pair", 0.15), ("uniform", 0.03),
                        ("flip", 0.30), ("class_dependent", 0.15)))]
           + [Setting(s, m, k, r, variant=2) for (s, m), (k, r) in zip(
               GROUPS, (("class_dependent", 0.30), ("uniform", 0.40), ("uniform", 0.08), ("pair", 0.30),
                        ("uniform", 0.08), ("flip", 0.40)))]
           + [Setting(s, m, "uniform", 0.2, epochs=e) for s, m in (("digits", "mlp"), ("wine", "mlp"),
                                                                  ("mnist1d", "cnn")) for e in (10, 80)]
           + [Setting("mnist1d", "mlp", "uniform", 0.2, epochs=10)]
           + [Setting(s, m, k, r, imbalance=0.2) for s, m in (("digits", "mlp"), ("wine", "mlp"), ("mnist1d", "cnn"))
              for k, r in (("class_dependent", 0.10), ("uniform", 0.30))]
           + [Setting("iris", "mlp", k, r)
              for k, r in (("uniform", 0.10), ("uniform", 0.30), ("class_dependent", 0.15))]
           + [Setting("synthetic", "mlp", k, r, variant=v) for v, (k, r) in enumerate(
               (("uniform", 0.05), ("uniform", 0.20), ("uniform", 0.40), ("pair", 0.15), ("class_dependent", 0.25)),
               start=1)])

DOWNSTREAM = ([Setting(s, m, k, r) for s, m in (("digits", "mlp"), ("mnist1d", "mlp"), ("breast_cancer", "mlp"))
               for k in ("uniform", "class_dependent") for r in (0.1, 0.2, 0.4)]
              + [Setting("mnist1d", "cnn", k, 0.2) for k in ("uniform", "class_dependent")])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, required=True, help="folder for recordings and results (resumable)")
    parser.add_argument("--quick", action="store_true", help="12 settings instead of all")
    parser.add_argument("--downstream", action="store_true", help="retrain on cleaned data (fewer settings)")
    parser.add_argument("--heldout", action="store_true",
                        help="the held-out settings (other seeds, run lengths, imbalance, iris, synthetic)")
    parser.add_argument("--only", default=None, help="substring filter on setting names")
    args = parser.parse_args(argv)
    args.cache.mkdir(parents=True, exist_ok=True)
    settings = DOWNSTREAM if args.downstream else HELDOUT if args.heldout else all_settings(args.quick)
    if args.downstream and args.quick:
        settings = [s for s in settings if s.source == "digits" and s.rate == 0.2]
    if args.only:
        settings = [s for s in settings if args.only in s.name]
    results = []
    for i, s in enumerate(settings):
        npz = args.cache / f"{s.name}.npz"
        res_path = args.cache / (f"downstream_{s.name}.json" if args.downstream else f"{s.name}.json")
        if res_path.exists():
            results.append(json.loads(res_path.read_text()))
            continue
        t0 = time.perf_counter()
        if not npz.exists():
            record(s, npz)
        res = downstream(s, npz) if args.downstream else measure(s, npz)
        with atomic_path(res_path) as tmp:
            tmp.write_text(json.dumps(res, indent=1))
        results.append(res)
        print(f"[{i + 1}/{len(settings)}] {s.name}: {time.perf_counter() - t0:.1f} s", flush=True)
    text = downstream_table(results) if args.downstream else tables(results, DEFAULT_ESTIMATOR)
    out = args.cache / ("downstream.md" if args.downstream else "tables_heldout.md" if args.heldout
                        else "tables_quick.md" if args.quick else "tables.md")
    out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
