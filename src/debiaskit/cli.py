"""The ``debiaskit`` command line.

Sub-commands live in their own modules (``debiaskit.commands.*``); each module defines
``register(subparsers)`` which adds its parsers and sets ``func`` on them. Errors the user can fix are
raised as :class:`~debiaskit.errors.DebiaskitError` and printed as one ``error:`` line with exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from debiaskit import __version__
from debiaskit.errors import DebiaskitError

# Modules that contribute sub-commands, in the order they appear in ``debiaskit --help``.
_COMMAND_MODULES: list[str] = [
    "debiaskit.commands.datasets",
    "debiaskit.commands.train",
    "debiaskit.commands.sweep",
    "debiaskit.commands.demo",
    "debiaskit.commands.generative",
    "debiaskit.commands.augment",
    "debiaskit.commands.audit",
    "debiaskit.commands.predict",
]


class _Parser(argparse.ArgumentParser):
    """argparse prints usage + error and exits 2; keep that, but on one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {self.prog}: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="debiaskit", description="Measure and mitigate bias in image classifiers.")
    parser.add_argument("--version", action="version", version=f"debiaskit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for mod in _COMMAND_MODULES:
        importlib.import_module(mod).register(sub)
    return parser


def _apply_thread_setting() -> None:
    """``DEBIASKIT_NUM_THREADS`` caps torch's intra-op threads (useful on busy or shared machines)."""
    n = os.environ.get("DEBIASKIT_NUM_THREADS")
    if n:
        import torch

        torch.set_num_threads(max(1, int(n)))


def main(argv: Sequence[str] | None = None) -> int:
    _apply_thread_setting()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        rc = args.func(args)
    except DebiaskitError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished work is saved; run the same command again to resume", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
