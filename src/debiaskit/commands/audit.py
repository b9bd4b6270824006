"""``debiaskit audit``: a command group whose sub-commands come from several modules.

Each module in ``_AUDIT_MODULES`` defines ``register(audit_subparsers)`` and adds its own sub-command
(``audit predictions``, ``audit labels``, ``audit model``, ...).
"""

from __future__ import annotations

import argparse

from debiaskit.commands import audit_leakage, audit_predictions

_AUDIT_MODULES = (audit_predictions, audit_leakage)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("audit", help="audit a model's predictions, labels or representations for bias")
    sub = p.add_subparsers(dest="audit_command", metavar="SUBCOMMAND")
    for mod in _AUDIT_MODULES:
        mod.register(sub)

    def _help(args: argparse.Namespace) -> int:
        p.print_help()
        return 2

    p.set_defaults(func=_help)
