"""``interpretdl-noise compare RECORDING.npz --out DIR``: every applicable detector, side by side."""
from __future__ import annotations

import argparse
import sys

from ..compare import compare_detectors
from ..interpreter.registry import detector_names


def _methods(text: str):
    names = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in names if m not in detector_names()]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown detector(s) {bad or text!r}; "
                                         f"choose from {', '.join(detector_names())}")
    return names


def add_parser(sub) -> argparse.ArgumentParser:
    """Register the ``compare`` sub-command on ``sub`` (an argparse subparsers object)."""
    parser = sub.add_parser(
        "compare", help="run every applicable detector on a recording and compare them",
        description="Run every applicable detector on one recording. With label_flip in the recording: "
                    "AUROC, AP and precision/recall/F1 at the true noise count and at top-k (printed and written "
                    "to DIR/metrics.csv and DIR/metrics.json), ROC/PR curves, score histograms and the data map. "
                    "Without it: top-k agreement between detectors. Always: DIR/ranked_<name>.csv. "
                    "confident_learning needs the raw data and runs only from Python "
                    "(interpretdl_noise.compare_detectors(recording, x=x)).")
    parser.add_argument("recording", help="training_dynamics.npz")
    parser.add_argument("--out", required=True, help="output folder for the report")
    parser.add_argument("--methods", type=_methods, default=None,
                        help=f"comma-separated detectors (default: all of {', '.join(detector_names())})")
    parser.add_argument("-k", "--k", type=int, default=None, help="top-k size (default: 10%% of the samples)")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Execute ``compare`` for parsed ``args``; returns the exit status."""
    result = compare_detectors(args.recording, methods=args.methods, out_dir=args.out, k=args.k,
                               plots=not args.no_plots, progress=not args.quiet)
    print(result.summary())
    print(f"report written to {args.out}")
    if not result.scores:
        print("interpretdl-noise compare: error: no detector could run on this recording", file=sys.stderr)
        return 1
    return 0
