"""The ``interpretdl-noise`` command line.

Each sub-command lives in its own module under :mod:`interpretdl_noise.commands`, which provides
``add_parser(subparsers)`` (registering itself and setting ``func``) and keeps its work importable
as a Python function too.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

# sub-command modules, in the order ``--help`` lists them
COMMANDS = [
    "interpretdl_noise.commands.demo",
    "interpretdl_noise.commands.train_detector",
    "interpretdl_noise.commands.detect",
    "interpretdl_noise.commands.compare",
    "interpretdl_noise.commands.clean",
    "interpretdl_noise.commands.report",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="interpretdl-noise",
                                     description="Find mislabeled training samples from training dynamics.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as exc:
        print(f"interpretdl-noise {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
