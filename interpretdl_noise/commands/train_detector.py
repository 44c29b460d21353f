"""``interpretdl-noise train-detector``: rebuild the BHDF LSTM from a freshly recorded corpus.

Records training dynamics of small Paddle classifiers on offline data with injected label noise
(uniform, flip, pair; 10-50 %; 10-200 epochs), trains the LSTM on ``td[:, :, 0]`` and reports AUROC /
AP on held-out sources it never saw, next to the AUM and mean-probability baselines. Writes
``OUT`` (.pdparams), ``OUT.sha256`` and a JSON report beside it. The shipped weights were built with

    interpretdl-noise train-detector --out noise_detector_trained.pdparams --preset default --seed 0

The realistic presets (augmentation, batch norm, residual nets, schedules, imbalance, class-dependent and
instance-dependent noise at 2-50 %, train- and eval-mode recordings) need --corpus-dir and can be recorded
in parts, e.g. on two processes, then trained:

    interpretdl-noise train-detector --preset realistic --seed 0 --corpus-dir CORPUS --part 1/2 --out W.pdparams
    interpretdl-noise train-detector --preset realistic --seed 0 --corpus-dir CORPUS --part 2/2 --out W.pdparams
    interpretdl-noise train-detector --preset realistic --seed 0 --corpus-dir CORPUS --features margin --out W.pdparams

The shipped ``bhdf_margin`` weights add the training plan drawn with seed 1 (620 training runs):

    interpretdl-noise train-detector --preset realistic --seed 0 --extra-train-seeds 1 --corpus-dir CORPUS \
        --features margin --out noise_detector_margin.pdparams
"""
from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from ..detector_training.realistic import REALISTIC_PRESETS
from ..detector_training.train import PRESETS, build_detector


def _part(text: str):
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--part takes I/N, e.g. 1/3; got {text!r}") from None
    if not 1 <= i <= n:
        raise argparse.ArgumentTypeError(f"--part I/N needs 1 <= I <= N, got {text!r}")
    return i, n


def _seeds(text: str):
    try:
        seeds = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--extra-train-seeds takes seeds separated by commas, got {text!r}") from None
    if any(t < 0 for t in seeds) or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"--extra-train-seeds needs distinct non-negative seeds, got {text!r}")
    return seeds


def _main_realistic(args: argparse.Namespace) -> int:
    from ..detector_training.train_realistic import build_realistic_detector

    if args.corpus_dir is None:
        raise SystemExit("the realistic presets need --corpus-dir (the build is resumable and can run in parts)")
    parts = ["interpretdl-noise", "train-detector", "--out", str(args.out), "--preset", args.preset,
             "--seed", str(args.seed), "--features", args.features]
    if args.train_epochs is not None:
        parts += ["--train-epochs", str(args.train_epochs)]
    if args.extra_train_seeds:
        parts += ["--extra-train-seeds", ",".join(str(t) for t in args.extra_train_seeds)]
    report = build_realistic_detector(args.out, preset=args.preset, seed=args.seed, corpus_dir=args.corpus_dir,
                                      features=args.features, part=args.part, max_runs=args.max_runs,
                                      device=args.device, progress=not args.quiet,
                                      command=" ".join(shlex.quote(a) for a in parts),
                                      extra_train_seeds=args.extra_train_seeds, train_epochs=args.train_epochs)
    status = ", ".join(f"{k} {v['finished']}/{v['planned']}" for k, v in report["status"].items())
    if not report["complete"]:
        print(f"corpus incomplete ({status} runs recorded); rerun the same command (or the other parts) to "
              "continue; training starts once every run exists")
        return 0
    print(f"wrote {args.out} (+ .sha256, .json); corpus {status}; held-out mean gain share "
          f"{100 * report['holdout_mean_gain']:+.1f} %, worst source {100 * report['holdout_min_source_gain']:+.1f} %; "
          f"{report['total_seconds']:.0f} s")
    return 0


def _main(args: argparse.Namespace) -> int:
    if args.preset in REALISTIC_PRESETS:
        return _main_realistic(args)
    if args.part != (1, 1) or args.max_runs is not None or args.features != "curve" or args.extra_train_seeds:
        raise SystemExit("--part, --max-runs, --features and --extra-train-seeds apply to the realistic presets only")
    overrides = {}
    if args.train_epochs is not None:
        overrides["train_epochs"] = args.train_epochs
    parts = ["interpretdl-noise", "train-detector", "--out", str(args.out), "--preset", args.preset,
             "--seed", str(args.seed)]
    if args.train_epochs is not None:
        parts += ["--train-epochs", str(args.train_epochs)]
    command = " ".join(shlex.quote(a) for a in parts)
    report = build_detector(args.out, preset=args.preset, seed=args.seed, corpus_dir=args.corpus_dir,
                            device=args.device, progress=not args.quiet, command=command, **overrides)
    history = report["history"]
    best = history["epochs"][history["best_epoch"] - 1]
    print(f"wrote {args.out} (+ .sha256, .json); {report['n_train_runs']} training runs, "
          f"{history['n_train']} curves, best epoch {history['best_epoch']} "
          f"(validation AUROC {best.get('val_auroc', float('nan')):.4f}); {report['total_seconds']:.0f} s")
    if report.get("skipped_sources"):
        print(f"skipped unavailable sources: {', '.join(report['skipped_sources'])}")
    if "holdout_summary_markdown" in report:
        print("\nheld-out sources (never seen in training):\n" + report["holdout_summary_markdown"])
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("train-detector", help="record a noisy-label corpus and train the BHDF LSTM detector",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="the .pdparams file to write")
    p.add_argument("--preset", choices=sorted(PRESETS) + sorted(REALISTIC_PRESETS), default="default",
                   help="corpus: 'default' (the shipped weights, ~33 min on 2 cores), 'quick' (< 1 min), "
                        "'realistic' (issue 18's corpus) or 'realistic_quick' (smoke test)")
    p.add_argument("--seed", type=int, default=0, help="seed of the corpus plan and the training (default 0)")
    p.add_argument("--train-epochs", type=int, default=None, help="LSTM epochs (default: the preset's)")
    p.add_argument("--corpus-dir", type=Path, default=None,
                   help="keep the recorded runs here and reuse them when rerun (default: memory only)")
    p.add_argument("--features", choices=("curve", "margin"), default="curve",
                   help="realistic presets: the single-channel detector or the 3-channel margin detector")
    p.add_argument("--part", type=_part, default=(1, 1), metavar="I/N",
                   help="realistic presets: record every N-th run starting at the I-th (default 1/1)")
    p.add_argument("--max-runs", type=int, default=None,
                   help="realistic presets: stop after recording this many new runs")
    p.add_argument("--extra-train-seeds", type=_seeds, default=(), metavar="T[,T...]",
                   help="realistic presets: also train on the training plan drawn with these seeds (recorded into "
                        "CORPUS/train-seed<T>); the shipped bhdf_margin weights use --seed 0 --extra-train-seeds 1")
    p.add_argument("--device", default="cpu", help="'cpu' or 'gpu:N' (default cpu)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_main)
