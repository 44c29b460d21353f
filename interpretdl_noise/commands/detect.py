"""``interpretdl-noise detect RECORDING.npz --method NAME [--out FILE]``: one ranked CSV."""
from __future__ import annotations

import argparse
import sys
import textwrap

from ..common.atomic import atomic_path, check_output_path
from ..common.metrics import detection_metrics
from ..compare import ranked_table
from ..interpreter.registry import DetectorNotApplicable, detector_class, detector_names, detector_note, run_detector
from ..recording.recording import Recording


def add_parser(sub) -> argparse.ArgumentParser:
    """Register the ``detect`` sub-command on ``sub`` (an argparse subparsers object)."""
    parser = sub.add_parser(
        "detect", help="rank the samples of a recording with one detector (CSV)",
        description=textwrap.fill(
            "Score every sample of a recording with one detector and write a CSV with columns sample_id, "
            "given_label, score, rank (rank 1 = most suspicious; higher score = more likely mislabeled). Without "
            "--out the CSV goes to stdout and remarks (e.g. losses derived from td) to stderr.", 79),
        epilog="detectors:\n" + "\n".join(f"  {name:<20} {detector_class(name).summary}" for name in detector_names()),
        formatter_class=argparse.RawDescriptionHelpFormatter)
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
    record = Recording.load(args.recording)  # validated once; run_detector does not check it again
    try:
        scores = run_detector(args.method, record)
    except DetectorNotApplicable as exc:
        raise ValueError(str(exc)) from exc
    note = detector_note(args.method, record)
    table = ranked_table(scores, record)
    if args.top is not None:
        table = table.head(args.top)
    if args.out is None:
        table.to_csv(sys.stdout, index=False, float_format="%.6g")
        if note:
            print(f"{args.method}: note: {note}", file=sys.stderr)
        return 0
    with atomic_path(args.out) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    line = f"{args.method}: ranked {len(scores)} samples -> {args.out}"
    if record.has_usable_flips:
        m = detection_metrics(scores, record.label_flip)
        line += f"  (AUROC {m['auroc']:.3f}, AP {m['ap']:.3f} against label_flip)"
    if note:
        line += f"\n{args.method}: note: {note}"
    print(line)
    return 0
