"""``debiaskit audit``: a command group whose sub-commands come from several modules.

Each module named in ``_AUDIT_MODULES`` defines ``register(audit_subparsers)`` and adds its own
sub-command (``audit predictions``, ``audit labels``, ``audit model``, ...).
"""

from __future__ import annotations

import argparse
import importlib

_AUDIT_MODULES: list[str] = [
    "debiaskit.commands.audit_predictions",
    "debiaskit.commands.audit_leakage",
]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("audit", help="audit a model's predictions, labels or representations for bias")
    sub = p.add_subparsers(dest="audit_command", metavar="SUBCOMMAND")
    for mod in _AUDIT_MODULES:
        importlib.import_module(mod).register(sub)

    def _help(args: argparse.Namespace) -> int:
        p.print_help()
        return 2

    p.set_defaults(func=_help)
