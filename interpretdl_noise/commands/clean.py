"""``interpretdl-noise clean RECORDING.npz --method NAME --out DIR [--decisions decisions.csv]``.

Flags the likely mislabeled samples with one detector, suggests their labels, decides keep / drop /
relabel (a reviewer's decisions CSV overrides those), and writes ``DIR/issues.csv``, ``DIR/summary.json``
and ``DIR/keep_indices.csv``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..interpreter.registry import detector_names


def add_parser(sub) -> argparse.ArgumentParser:
    """Register the ``clean`` sub-command on ``sub`` (an argparse subparsers object)."""
    from ..decisions.noise import ESTIMATORS
    from ..decisions.suggest import DEFAULT_MIN_CONFIDENCE

    parser = sub.add_parser(
        "clean", help="estimate the noise, flag issues, suggest labels, write a cleaned index (CSV + JSON)",
        description=__doc__.replace("``", ""), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recording", help="training_dynamics.npz")
    parser.add_argument("--method", default="bhdf", choices=detector_names(), metavar="NAME",
                        help=f"detector that ranks the samples: {', '.join(detector_names())} (default bhdf)")
    parser.add_argument("--out", required=True, type=Path, help="output folder (created if missing)")
    parser.add_argument("--decisions", type=Path, default=None,
                        help="CSV with sample_id, action (keep/drop/relabel), new_label overriding the automatic "
                             "actions")
    parser.add_argument("--cutoff", default="auto",
                        help="'auto' (the estimated number of issues), a count (120), a score threshold (0.7) or a "
                             "fraction (5%%); default auto")
    parser.add_argument("--estimator", default="auto", choices=("auto",) + ESTIMATORS,
                        help="noise-rate estimator (default auto)")
    parser.add_argument("--min-confidence", type=float, default=DEFAULT_MIN_CONFIDENCE,
                        help=f"relabel a flagged sample only when its suggestion is at least this probable, drop "
                             f"it otherwise (default {DEFAULT_MIN_CONFIDENCE})")
    parser.add_argument("--no-relabel", action="store_true", help="drop every flagged sample")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Execute ``clean`` for parsed ``args``; returns the exit status."""
    from ..decisions.clean import OUTPUT_FILES, check_clean_outputs, clean, write_clean

    recording = Path(args.recording)
    out = Path(args.out)
    protect = (recording, args.decisions)
    check_clean_outputs(out, protect=protect)  # fail before the (slow) detector runs
    result = clean(recording, args.method, args.cutoff, args.decisions, estimator=args.estimator,
                   min_confidence=args.min_confidence, relabel=not args.no_relabel)
    write_clean(result, out, protect=protect)
    s = result.summary
    low, high = s["noise_rate_interval"]
    line = (f"{args.method}: estimated noise {100 * s['estimated_noise_rate']:.1f} % (95 % interval "
            f"{100 * low:.1f}-{100 * high:.1f} %, {s['estimator']}); flagged {s['n_flagged']} of {s['n_samples']}: "
            f"keep {s['counts']['keep']}, drop {s['counts']['drop']}, relabel {s['counts']['relabel']}")
    if "true_noise_rate" in s:
        line += f"  (true rate {100 * s['true_noise_rate']:.1f} %)"
    print(line)
    print(f"wrote {', '.join(str(out / n) for n in OUTPUT_FILES)}")
    return 0
