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
        try:
            module = importlib.import_module(name)
        except ImportError as exc:  # e.g. no Paddle: the numpy commands (detect, compare) still work
            _add_unavailable(sub, name.rsplit(".", 1)[-1].replace("_", "-"), exc)
            continue
        module.add_parser(sub)
    return parser


def _add_unavailable(sub, command: str, error: ImportError) -> None:
    """A sub-command whose module cannot be imported: it parses anything and fails with the import's hint."""
    # prefix_chars="+": every word, "--quiet" too, is a positional the stub accepts and ignores
    parser = sub.add_parser(command, help=f"(unavailable: {str(error).splitlines()[0]})", add_help=False,
                            prefix_chars="+")
    parser.add_argument("ignored", nargs="*")

    def fail(args):
        print(f"interpretdl-noise {command}: error: {error}", file=sys.stderr)
        return 2

    parser.set_defaults(func=fail)


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as exc:
        print(f"interpretdl-noise {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
