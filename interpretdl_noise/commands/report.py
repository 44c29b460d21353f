"""``interpretdl-noise report RECORDING.npz --out report.html``: the suspects, reviewable in a browser."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..interpreter.registry import detector_names


def _top(text: str) -> int:
    try:
        k = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--top must be an integer >= 1, got {text!r}") from None
    if k < 1:
        raise argparse.ArgumentTypeError(f"--top must be >= 1, got {k}")
    return k


def read_class_names(path) -> list:
    """One class name per line (blank lines at the end are ignored, others kept as they are)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    return [line.strip() for line in lines]


def read_images(path) -> np.ndarray:
    """An ``.npy`` array (never unpickled), or the single array of an ``.npz``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"images file not found: {path}")
    try:
        data = np.load(path, allow_pickle=False, mmap_mode="r" if path.suffix == ".npy" else None)
    except ValueError as exc:
        raise ValueError(f"{path}: cannot read images without unpickling ({exc}); save a numeric array with "
                         "numpy.save") from exc
    if isinstance(data, np.lib.npyio.NpzFile):
        with data:
            if len(data.files) != 1:
                raise ValueError(f"{path} holds {len(data.files)} arrays {data.files}; save the images alone "
                                 "(numpy.save to a .npy file)")
            return data[data.files[0]]
    return data


def add_parser(sub) -> argparse.ArgumentParser:
    """Register the ``report`` sub-command on ``sub`` (an argparse subparsers object)."""
    parser = sub.add_parser(
        "report", help="write a self-contained HTML report to review the suspects in a browser",
        description="Write one self-contained HTML file (no network access needed to view it): a summary "
                    "(estimated noise rate, per-class noise, given-vs-suggested labels; with label_flip every "
                    "detector's AUROC/AP and ROC/PR curves) and the top-K suspects as cards you can sort, "
                    "filter, search and review (keep / drop / relabel). The review exports decisions.csv for "
                    "`interpretdl-noise clean --decisions`.")
    parser.add_argument("recording", help="training_dynamics.npz")
    parser.add_argument("--out", required=True, type=Path, help="output .html file")
    parser.add_argument("--images", type=Path, default=None,
                        help="the training samples in dataset order as .npy: (N,H,W), (N,H,W,1|3) or (N,1|3,H,W), "
                             "uint8 or float in [0,1]; or (N,D) feature vectors")
    parser.add_argument("--class-names", type=Path, default=None, help="text file, one class name per line (C lines)")
    parser.add_argument("--top", type=_top, default=100, help="number of suspects shown (default 100)")
    parser.add_argument("--method", choices=detector_names(), default="bhdf",
                        help="detector that ranks the suspects (default bhdf)")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Execute ``report`` for parsed ``args``; returns the exit status."""
    from ..recording.recording import as_path_or_none
    from ..reporting import report

    if as_path_or_none(args.recording) is not None and Path(args.recording).resolve() == args.out.resolve():
        raise ValueError("--out must not be the recording itself")
    images = read_images(args.images) if args.images is not None else None
    names = read_class_names(args.class_names) if args.class_names is not None else None
    page = report(args.recording, images=images, class_names=names, top=args.top, method=args.method)
    path = page.save(args.out)
    print(f"report of {page.n_cards} suspects (by {args.method}) written to {path} "
          f"({path.stat().st_size / 1e6:.2f} MB); open it in a browser")
    return 0
