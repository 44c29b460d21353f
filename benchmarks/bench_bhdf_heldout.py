"""BHDF on realistic held-out runs: AUROC / AP against every baseline, gain share, calibration (issue 18).

The held-out runs are the ``holdout`` split of a realistic preset
(:data:`interpretdl_noise.detector_training.realistic.REALISTIC_PRESETS`): whole data sets (breast_cancer,
MNIST-1D, Gaussian quantiles, Hastie) and a model family (residual CNN with batch norm) that no detector
was trained or selected on; uniform, flip, pair, class-dependent, confusable-class and instance-dependent
noise at 2-50 %; augmentation, imbalance, cosine / step / warm-up schedules, train- and eval-mode
recordings, 5-200 epochs. They are recorded once into ``--corpus-dir`` (resumable) by
``TrainingDynamics.generator``.

For every run: AUROC and AP of each BHDF variant and of small loss, mean probability, AUM on logits, AUM
on probabilities, forgetting events and EMA loss (same recording); the gain share
``(AUROC_bhdf - AUROC_best) / max(1 - AUROC_best, 0.01)``; calibration (mean P, share P >= 0.5, and both
after the Saerens prior-shift EM) against the true rate.

Usage::

    python benchmarks/bench_bhdf_heldout.py --corpus-dir CORPUS            # shipped weights only
    python benchmarks/bench_bhdf_heldout.py --corpus-dir CORPUS --weights new=path/to/new.pdparams
    python benchmarks/bench_bhdf_heldout.py --corpus-dir CORPUS --preset realistic_quick   # smoke test

    python benchmarks/bench_bhdf_heldout.py --speed-only --weights margin=path/to/margin.pdparams
    python benchmarks/bench_bhdf_heldout.py --recordings DECISIONS_CACHE --ensemble bhdf_margin+aum_prob

Both shipped detectors (``bhdf``, ``bhdf_margin``) are always scored. ``--recordings DIR`` evaluates on any
folder of recordings with ``label_flip``, ``logits`` and ``losses`` instead (e.g. ``bench_decisions.py
--cache DIR``; sources are ``source-model`` from each recording's metadata). ``--ensemble A+B`` adds the
mean within-run rank of those detectors (variants or baselines).

Optional sections: ``--estimators`` (the library's ``estimate_noise`` rates vs the true rates),
``--rate-regression`` and ``--stacked`` (a rate regressor and a gradient-boosting reference over all
baselines, both fit on the preset's training split, which must then be recorded in ``--corpus-dir``).

The first call records the 72 held-out runs (about 10 minutes on 2 idle cores); later calls reuse them.
``--speed`` (or ``--speed-only``) also times every variant on 50,000 samples x 200 epochs x 10 classes against
InterpretDL 0.8's ``BHDFInterpreter`` when InterpretDL is importable (``pip install --no-deps interpretdl==0.8.0``).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

warnings.filterwarnings("ignore", message="No ccache found")

from interpretdl_noise import BHDFInterpreter  # noqa: E402
from interpretdl_noise.detector_training.heldout import (  # noqa: E402
    BASELINES, calibration_summary, evaluate_heldout, markdown_table, summarize_heldout)
from interpretdl_noise.detector_training.realistic import build_realistic_corpus, realistic_plan  # noqa: E402


def _train_prior(interp: BHDFInterpreter) -> float:
    info = interp.weights_info or {}
    if "train_prior" in info:
        return float(info["train_prior"])
    history = info.get("history") or {}
    if "noise_fraction" in history:
        return float(history["noise_fraction"])
    from interpretdl_noise.decisions.noise import bhdf_train_prior

    return bhdf_train_prior()


def _bhdf_scorer(interp):
    return lambda rec: interp.predict_curves(rec.td[:, :, 0])


def load_variants(specs):
    """``name=path`` pairs -> (scorers, training priors); 'bhdf' and 'bhdf_margin' are always the shipped weights."""
    from interpretdl_noise.interpreter.bhdf_margin import BHDFMarginInterpreter

    shipped = BHDFInterpreter()
    shipped_margin = BHDFMarginInterpreter()
    scorers = {"bhdf": _bhdf_scorer(shipped), "bhdf_margin": lambda rec: shipped_margin.predict_td(rec.td)}
    priors = {"bhdf": _train_prior(shipped), "bhdf_margin": float(shipped_margin.train_prior)}
    for spec in specs or []:
        name, _, path = spec.partition("=")
        if not path:
            raise SystemExit(f"--weights takes NAME=PATH, got {spec!r}")
        info = json.loads(Path(path).with_suffix(".json").read_text())
        if info.get("kind") == "margin":
            from interpretdl_noise.interpreter.bhdf_margin import BHDFMarginInterpreter

            interp = BHDFMarginInterpreter(weights=path)
            scorers[name] = lambda rec, interp=interp: interp.interpret(training_dynamics=rec)[1]
            priors[name] = float(info.get("train_prior", interp.train_prior))
        else:
            interp = BHDFInterpreter(weights=path)
            scorers[name] = _bhdf_scorer(interp)
            priors[name] = _train_prior(interp)
    return scorers, priors


def rank_average(spec: str, scorers):
    """Scorer for ``"a+b+..."``: the mean within-run percentile rank of those detectors (variants or baselines)."""
    from scipy.stats import rankdata

    from interpretdl_noise.detector_training.heldout import baseline_detectors

    known = {**baseline_detectors(), **scorers}
    parts = spec.split("+")
    unknown = [p for p in parts if p not in known]
    if len(parts) < 2 or unknown:
        raise SystemExit(f"--ensemble takes two or more of {sorted(known)} joined by '+', got {spec!r}")
    return lambda rec: np.mean([rankdata(known[p](rec)) / rec.n_samples for p in parts], axis=0)


def speed(scorers) -> None:
    """Inference seconds on 50,000 x 200 epochs x 10 classes (a recorded run tiled), vs InterpretDL 0.8."""
    import contextlib
    import io

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import load_interpretdl_training_dynamics, machine_info, timeit_median

    from interpretdl_noise.detector_training.realistic import RealisticRunSpec, record_realistic_run
    from interpretdl_noise.recording.recording import Recording

    with tempfile.TemporaryDirectory() as tmp:
        spec = RealisticRunSpec("digits", "resmlp", "uniform", 0.2, 200, seed=11, optimizer="adam", lr=1e-3)
        rec = Recording.load(record_realistic_run(spec, Path(tmp) / "run.npz"))
    n = 50_000
    reps = int(np.ceil(n / rec.n_samples))
    td = np.concatenate([rec.td] * reps)[:n]
    big = Recording.coerce({"td": td, "labels": np.concatenate([rec.labels] * reps)[:n]})
    print(f"## Inference speed: {n:,} samples x {td.shape[1]} epochs x {td.shape[2]} classes ({machine_info()})\n")
    print("| detector | seconds (median of 3) | speed-up vs InterpretDL |\n|---|---|---|")
    t_idl = None
    try:
        idl = load_interpretdl_training_dynamics()
        from interpretdl_noise.interpreter.bhdf import default_weights_path
        from interpretdl_noise._paddle import paddle

        lstm = idl.LSTM()
        with contextlib.redirect_stdout(io.StringIO()):
            paddle.Model(lstm).load(str(default_weights_path()))
            theirs = idl.BHDFInterpreter(detector=lstm, device="cpu")

        def run_theirs():
            with contextlib.redirect_stdout(io.StringIO()):
                theirs.interpret(training_dynamics={"td": td}, training_dynamics_path=None)

        t_idl = timeit_median(run_theirs, repeat=1)["median"]
        print(f"| InterpretDL 0.8 BHDFInterpreter.interpret (raw {td.shape[1]}-step curves) | {t_idl:.1f} | 1.0x |")
    except ImportError as exc:
        print(f"| InterpretDL 0.8 | not installed ({exc}) | |")
    for name, fn in scorers.items():
        t = timeit_median(lambda fn=fn: fn(big), repeat=3)["median"]
        ratio = f"**{t_idl / t:.1f}x**" if t_idl else "n/a"
        print(f"| {name} | {t:.1f} | {ratio} |")
    print()


def estimators(paths, table, scorers, priors) -> None:
    """The library's noise-rate estimators (``estimate_noise``) per run against the true rate."""
    from interpretdl_noise.common.metrics import detection_metrics
    from interpretdl_noise.decisions.noise import estimate_noise
    from interpretdl_noise.recording.recording import Recording

    rows, f1 = [], {}
    for path in paths:
        rec = Recording.load(path)
        flips = np.asarray(rec.label_flip).astype(bool)
        row = {"true_rate": float(flips.mean())}
        for method in ("confident_joint", "mixture", "early_learning"):
            row[method] = estimate_noise(rec, method, n_bootstrap=0).rate
        for name, fn in scorers.items():
            scores = fn(rec)
            if name in priors:
                row[f"bhdf_prior[{name}]"] = estimate_noise(rec, "bhdf_prior", n_bootstrap=0, scores=scores,
                                                            train_prior=priors[name]).rate
            # what the decisions' 'auto' cut-off gives (top k = the default estimate) against the true count
            for cut, k in (("estimated", int(round(row["early_learning"] * flips.size))), ("true", int(flips.sum()))):
                f1.setdefault((name, cut), []).append(detection_metrics(scores, flips, k=k)["f1_at_k"])
        rows.append(row)
    print("## Noise-rate estimators (interpretdl_noise.estimate_noise, no bootstrap) vs the true rate\n")
    print("| estimator | mean abs gap (pp) | bias (pp) | runs within 3 pp |\n|---|---|---|---|")
    truth = np.array([r["true_rate"] for r in rows])
    for key in [k for k in rows[0] if k != "true_rate"]:
        est = np.array([r[key] for r in rows])
        gap = 100 * (est - truth)
        within = int(np.sum(np.abs(gap) <= 3))
        print(f"| {key} | {np.mean(np.abs(gap)):.1f} | {np.mean(gap):+.1f} | {within}/{len(rows)} |")
    print("\nF1 of the top k, k = the early_learning estimate (the decisions' 'auto' cut-off) or the true count:\n")
    print("| detector | F1 at the estimated count | F1 at the true count |\n|---|---|---|")
    for name in scorers:
        print(f"| {name} | {np.mean(f1[name, 'estimated']):.3f} | {np.mean(f1[name, 'true']):.3f} |")
    print()


def _run_features(td) -> np.ndarray:
    """Run-level statistics a rate regressor may use: the margin detector's context prefix (16 steps), the
    share misclassified (min, max, last), log E, log C, and quantiles of per-sample mean p and margin."""
    from interpretdl_noise.interpreter.bhdf_margin import margin_features

    prefix, _ = margin_features(td, 16)
    p = td[:, :, 0].astype(np.float32)
    m = p - td[:, :, 1:].max(axis=2).astype(np.float32)
    qs = np.linspace(0.02, 0.6, 20)
    return np.concatenate([prefix.ravel(), [prefix[:, 2].min(), prefix[:, 2].max(), prefix[-1, 2],
                                            np.log(td.shape[1]), np.log(td.shape[2])],
                           np.quantile(p.mean(1), qs), np.quantile(m.mean(1), qs), [(m.mean(1) < 0).mean()]])


def rate_regression(corpus: Path, preset: str, seed: int, paths) -> None:
    """Can the noise rate be read from run-level statistics? Ridge fit on the training runs, scored held out."""
    from sklearn.linear_model import RidgeCV

    from interpretdl_noise.recording.recording import Recording

    train = [corpus / "train" / f"{s.name(i)}.npz" for i, s in enumerate(realistic_plan(preset, "train", seed=seed))]
    if not all(p.is_file() for p in train):
        print("## Rate regression: skipped (the training split is not recorded in --corpus-dir)\n")
        return

    def xy(files):
        recs = [Recording.load(f) for f in files]
        return (np.array([_run_features(r.td) for r in recs]),
                np.array([float(np.asarray(r.label_flip).mean()) for r in recs]))

    x_train, y_train = xy(train)
    x_hold, y_hold = xy(paths)
    model = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(x_train, y_train)
    gap = 100 * (np.clip(model.predict(x_hold), 0.0, 0.6) - y_hold)
    print(f"## Rate regression (ridge on {x_train.shape[1]} run-level features, {len(train)} training runs)\n")
    print(f"held-out runs: mean abs gap {np.mean(np.abs(gap)):.1f} pp, bias {np.mean(gap):+.1f} pp, "
          f"within 3 pp {int(np.sum(np.abs(gap) <= 3))}/{len(gap)}\n")


def _sample_features(rec, base, shipped) -> np.ndarray:
    """Per-sample features (N, F) for the stacked reference: within-run percentile ranks of the six
    baselines and of the shipped BHDF, curve summaries, and run context (E, C, share misclassified)."""
    from scipy.stats import rankdata

    td = rec.td
    n = td.shape[0]
    p = td[:, :, 0].astype(np.float32)
    m = p - td[:, :, 1:].max(axis=2).astype(np.float32)
    scores = [fn(rec) for fn in base.values()] + [shipped(rec)]
    ranks = [(rankdata(s_) - 1) / max(n - 1, 1) for s_ in scores]
    half = max(1, td.shape[1] // 2)
    per = [p.mean(1), p[:, -1], p.min(1), p[:, :half].mean(1), m.mean(1), m[:, -1], m[:, :half].mean(1), p.std(1)]
    run = [np.log(td.shape[1]), np.log(td.shape[2]), float((m[:, -1] < 0).mean()), float((m.mean(1) < 0).mean()),
           float(np.median(p[:, :half].mean(1))), float(np.median(p[:, -1]))]
    return np.column_stack(ranks + per + [np.full(n, v, dtype=np.float64) for v in run])


def stacked(corpus: Path, preset: str, seed: int, paths, table) -> None:
    """A reference ceiling: gradient boosting on the baselines' ranks + curve summaries, trained on the
    training split, scored on the held-out runs with the same gain share as BHDF."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    from interpretdl_noise.detector_training.heldout import baseline_detectors
    from interpretdl_noise.recording.recording import Recording

    train = [corpus / "train" / f"{s.name(i)}.npz" for i, s in enumerate(realistic_plan(preset, "train", seed=seed))]
    if not all(p.is_file() for p in train):
        print("## Stacked reference: skipped (the training split is not recorded in --corpus-dir)\n")
        return
    base = baseline_detectors()
    shipped = _bhdf_scorer(BHDFInterpreter())
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    t0 = time.perf_counter()
    for path in train:
        rec = Recording.load(path)
        x = _sample_features(rec, base, shipped)
        keep = rng.choice(x.shape[0], size=min(400, x.shape[0]), replace=False)
        xs.append(x[keep])
        ys.append(np.asarray(rec.label_flip).astype(int)[keep])
    model = HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05, random_state=seed)
    model.fit(np.concatenate(xs), np.concatenate(ys))
    fit_seconds = time.perf_counter() - t0
    aurocs, aps = [], []
    from sklearn.metrics import average_precision_score, roc_auc_score

    for path in paths:
        rec = Recording.load(path)
        score = model.predict_proba(_sample_features(rec, base, shipped))[:, 1]
        flips = np.asarray(rec.label_flip).astype(bool)
        aurocs.append(roc_auc_score(flips, score))
        aps.append(average_precision_score(flips, score))
    frame = table.copy()
    frame["stacked_auroc"], frame["stacked_ap"] = aurocs, aps
    summary = summarize_heldout(frame, ["bhdf", "stacked"], by=("group",))
    print(f"## Stacked reference (gradient boosting on baseline ranks + curve summaries; features and fit "
          f"{fit_seconds:.0f} s)\n")
    print(markdown_table(summary, ["group", "runs", "bhdf_auroc", "stacked_auroc", "best_baseline", "best_auroc",
                                   "bhdf_gain", "stacked_gain", "stacked_ap", "best_ap", "stacked_ap_gain"]))
    src = summary[summary["group"] != "all"]
    print(f"\n- stacked: mean gain share {100 * src['stacked_gain'].mean():+.1f} %, worst source "
          f"{100 * src['stacked_gain'].min():+.1f} %, mean AP gain {src['stacked_ap_gain'].mean():+.4f}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus-dir", type=Path, default=None,
                        help="record / reuse the held-out runs here (default: a temporary folder)")
    parser.add_argument("--preset", default="realistic", help="realistic preset whose holdout split is used")
    parser.add_argument("--seed", type=int, default=0, help="plan seed of the held-out runs")
    parser.add_argument("--weights", action="append", help="NAME=PATH of further detector weights to compare")
    parser.add_argument("--ensemble", action="append", metavar="A+B", default=None,
                        help="also score the rank average of these detectors, e.g. bhdf_margin+aum_prob; repeatable")
    parser.add_argument("--recordings", type=Path, action="append", default=None, metavar="DIR",
                        help="evaluate on every recording (*.npz with label_flip, logits and losses) in DIR instead "
                             "of the preset's held-out runs, e.g. bench_decisions.py's --cache folder; repeatable")
    parser.add_argument("--out", type=Path, default=None, help="also write the per-run table (CSV) here")
    parser.add_argument("--speed", action="store_true", help="also time inference against InterpretDL 0.8")
    parser.add_argument("--speed-only", action="store_true", help="only the inference timing")
    parser.add_argument("--rate-regression", action="store_true",
                        help="also fit a noise-rate regressor on the training split's run statistics")
    parser.add_argument("--stacked", action="store_true",
                        help="also fit the stacked reference (boosting on baseline ranks) on the training split")
    parser.add_argument("--estimators", action="store_true",
                        help="also compare estimate_noise's rate estimators with the true rates")
    args = parser.parse_args()
    if args.speed_only:
        speed(load_variants(args.weights)[0])
        return

    tmp = None
    corpus = args.corpus_dir
    if corpus is None:
        tmp = tempfile.TemporaryDirectory()
        corpus = Path(tmp.name)
    t0 = time.perf_counter()
    if args.recordings:
        paths = sorted(p for folder in args.recordings for p in folder.glob("*.npz"))
        if not paths:
            raise SystemExit(f"no *.npz recordings in {', '.join(map(str, args.recordings))}")
    else:
        specs = realistic_plan(args.preset, "holdout", seed=args.seed)
        paths = build_realistic_corpus(specs, corpus / "holdout", progress=True)
    seconds = time.perf_counter() - t0
    scorers, priors = load_variants(args.weights)
    for spec in args.ensemble or []:
        scorers[spec] = rank_average(spec, scorers)
    detectors = list(scorers)
    table = evaluate_heldout(paths, scorers, calibrated=priors)
    if args.out is not None:
        table.to_csv(args.out, index=False)
    where = (f"recordings in {', '.join(str(d) for d in args.recordings)}" if args.recordings else
             f"preset {args.preset}, seed {args.seed}")
    print(f"# bench_bhdf_heldout: {where}, {len(paths)} held-out runs "
          f"(recorded or reloaded in {seconds:.0f} s); training priors {priors}\n")
    base = list(BASELINES)
    for by in (("group",), ("noise",), ("group", "noise"), ("record",), ("model",)):
        summary = summarize_heldout(table, detectors, by=by)
        cols = list(by) + ["runs"] + [f"{d}_auroc" for d in detectors] + [f"{b}_auroc" for b in base] + \
            ["best_baseline"] + [f"{d}_gain" for d in detectors]
        print(f"## AUROC by {', '.join(by)} (gain = share of the best baseline's remaining error)\n")
        print(markdown_table(summary, cols))
        cols = list(by) + ["runs"] + [f"{d}_ap" for d in detectors] + [f"{b}_ap" for b in base] + \
            [f"{d}_ap_gain" for d in detectors]
        print(f"\n## AP by {', '.join(by)}\n")
        print(markdown_table(summary, cols))
        print()
    bins = ["a <5%", "b 5-10%", "c 10-20%", "d 20-35%", "e >=35%"]      # prefixed so they sort in order
    table["rate_bin"] = np.array(bins)[np.digitize(table["true_rate"], [0.05, 0.1, 0.2, 0.35])]
    summary = summarize_heldout(table, detectors, by=("rate_bin",))
    cols = ["rate_bin", "runs"] + [f"{d}_auroc" for d in detectors] + ["best_auroc", "best_baseline"] + \
        [f"{d}_gain" for d in detectors]
    print("## AUROC by true noise rate\n")
    print(markdown_table(summary, cols))
    print("\n## Goal check (per held-out source = data set x model)\n")
    by_source = summarize_heldout(table, detectors, by=("group",))
    for d in detectors:
        src = by_source[by_source["group"] != "all"]
        print(f"- {d}: mean gain share {100 * src[f'{d}_gain'].mean():+.1f} % (goal >= +25 %), worst source "
              f"{src.loc[src[f'{d}_gain'].idxmin(), 'group']} {100 * src[f'{d}_gain'].min():+.1f} % (goal >= -10 %), "
              f"mean AP gain {src[f'{d}_ap_gain'].mean():+.4f} (goal >= +0.02); per-run mean gain "
              f"{100 * table[f'{d}_gain'].mean():+.1f} %")
    print("\n## Calibration per run (true rate vs mean P, share P >= 0.5, and after the prior-shift EM)\n")
    cols = ["group", "noise", "epochs", "record", "true_rate"]
    calibrated = [d for d in detectors if d in priors]     # the rank averages are not probabilities
    for d in calibrated:
        cols += [f"{d}_mean_p", f"{d}_share05", f"{d}_prior", f"{d}_prior_share05"]
    print(markdown_table(table.sort_values("true_rate"), cols))
    print()
    for d in calibrated:
        gap = calibration_summary(table, d)
        print(f"- {d} (training prior {priors[d]:.3f}): mean |gap| in percentage points: mean P {gap['mean_p']:.1f} "
              f"(bias {gap['mean_p_bias']:+.1f}), share P>=0.5 {gap['share05']:.1f} ({gap['share05_bias']:+.1f}); "
              f"after prior shift: prior {gap['prior']:.1f} ({gap['prior_bias']:+.1f}), "
              f"share {gap['prior_share05']:.1f} ({gap['prior_share05_bias']:+.1f}); goal <= 3 each")
    if args.rate_regression:
        print()
        rate_regression(corpus, args.preset, args.seed, paths)
    if args.stacked:
        print()
        stacked(corpus, args.preset, args.seed, paths, table)
    if args.estimators:
        print()
        estimators(paths, table, scorers, priors)
    if args.speed:
        print()
        speed(scorers)
    if tmp is not None:
        tmp.cleanup()
    sys.stdout.flush()


if __name__ == "__main__":
    main()
