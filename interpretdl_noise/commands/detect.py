"""``interpretdl-noise detect RECORDING.npz --method NAME [--out FILE]``: one ranked CSV."""
from __future__ import annotations

import argparse
import sys

from ..common.atomic import atomic_path, check_output_path
from ..common.metrics import detection_metrics
from ..compare import ranked_table
from ..interpreter.abc_interpreter import read_training_dynamics
from ..interpreter.registry import DetectorNotApplicable, detector_names, run_detector


def add_parser(sub) -> argparse.ArgumentParser:
    """Register the ``detect`` sub-command on ``sub`` (an argparse subparsers object)."""
    parser = sub.add_parser(
        "detect", help="rank the samples of a recording with one detector (CSV)",
        description="Score every sample of a recording with one detector and write a CSV with columns "
                    "sample_id, given_label, score, rank (rank 1 = most suspicious; higher score = more likely "
                    "mislabeled).")
    parser.add_argument("recording", help="training_dynamics.npz")
    parser.add_argument("--method", required=True, choices=detector_names(), metavar="NAME",
                        help=f"detector: {', '.join(detector_names())}")
    parser.add_argument("--out", default=None, help="CSV file to write (default: print the CSV to stdout)")
    parser.add_argument("--top", type=int, default=None, help="only the N most suspicious rows")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Execute ``detect`` for parsed ``args``; returns the exit status."""
    if args.top is not None and args.top < 1:
        raise ValueError(f"--top must be a positive integer, got {args.top}")
    if args.out is not None:  # before any work: never overwrite the recording or another non-CSV file
        check_output_path(args.out, inputs=[args.recording], allowed_suffixes=(".csv", ".tsv", ".txt"))
    record = read_training_dynamics(training_dynamics_path=args.recording)
    try:
        scores = run_detector(args.method, record)
    except DetectorNotApplicable as exc:
        raise ValueError(str(exc)) from exc
    table = ranked_table(scores, record)
    if args.top is not None:
        table = table.head(args.top)
    if args.out is None:
        table.to_csv(sys.stdout, index=False, float_format="%.6g")
        return 0
    with atomic_path(args.out) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    line = f"{args.method}: ranked {len(scores)} samples -> {args.out}"
    flips = record.get("label_flip")
    if flips is not None and 0 < int(flips.sum()) < len(flips):
        m = detection_metrics(scores, flips)
        line += f"  (AUROC {m['auroc']:.3f}, AP {m['ap']:.3f} against label_flip)"
    print(line)
    return 0
