"""``interpretdl-noise train-detector``: rebuild the BHDF LSTM from a freshly recorded corpus.

Records training dynamics of small Paddle classifiers on offline data with injected label noise
(uniform, flip, pair; 10-50 %; 10-200 epochs), trains the LSTM on ``td[:, :, 0]`` and reports AUROC /
AP on held-out sources it never saw, next to the AUM and mean-probability baselines. Writes
``OUT`` (.pdparams), ``OUT.sha256`` and a JSON report beside it. The shipped weights were built with

    interpretdl-noise train-detector --out noise_detector_trained.pdparams --preset default --seed 0
"""
from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from ..detector_training.train import PRESETS, build_detector


def _main(args: argparse.Namespace) -> int:
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
    p.add_argument("--preset", choices=sorted(PRESETS), default="default",
                   help="corpus size: 'default' (the shipped weights, ~33 min on 2 cores) or 'quick' (< 1 min)")
    p.add_argument("--seed", type=int, default=0, help="seed of the corpus plan and the training (default 0)")
    p.add_argument("--train-epochs", type=int, default=None, help="LSTM epochs (default: the preset's)")
    p.add_argument("--corpus-dir", type=Path, default=None,
                   help="keep the recorded runs here and reuse them when rerun (default: memory only)")
    p.add_argument("--device", default="cpu", help="'cpu' or 'gpu:N' (default cpu)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_main)
