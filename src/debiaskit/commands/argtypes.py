"""Range-checked ``argparse`` types for numeric command-line options.

``p.add_argument("--lr", type=positive_float)`` rejects ``nan``, ``inf``, ``-1`` and ``abc`` while the
command line is parsed, before any file is written, with one line such as
``error: debiaskit generative train-gan: argument --lr: must be a positive number, got 'nan'``.
The ranges are the :class:`~debiaskit.experiments.validation.Rule` objects the config checks use.

Besides the single numbers: :func:`threads_arg` (a positive integer or ``auto``), :func:`seconds_arg` (a
positive number of seconds, for ``--wait-lock``) and :func:`comma_list` (``0,1,2`` checked element-wise, for
``sweep --seeds`` / ``--ratios``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from debiaskit.errors import DebiaskitError
from debiaskit.experiments import validation as v

__all__ = [
    "arg_type",
    "comma_list",
    "finite_float",
    "non_negative_float",
    "non_negative_int",
    "open_unit_float",
    "positive_float",
    "positive_int",
    "probability",
    "seconds_arg",
    "threads_arg",
    "unit_right_open_float",
]


def arg_type(rule: v.Rule, *, integer: bool | None = None) -> Callable[[str], float | int]:
    """An ``argparse`` ``type=`` callable that parses a number and checks it against ``rule``."""
    as_int = rule.integer if integer is None else integer

    def parse(text: str) -> float | int:
        if as_int:
            try:
                value: float | int = int(text.strip())
            except ValueError:
                raise argparse.ArgumentTypeError(f"must be {rule.describe()}, got {text!r}") from None
        else:
            value = v.looks_like_number(text)  # type: ignore[assignment]
            if value is None:
                raise argparse.ArgumentTypeError(f"must be {rule.describe()}, got {text!r}")
            value = float(value)
        try:
            return v.check_number("value", value, rule)
        except DebiaskitError:
            raise argparse.ArgumentTypeError(f"must be {rule.describe()}, got {text!r}") from None

    parse.__name__ = "integer" if as_int else "number"  # argparse names the type in some messages
    return parse


positive_int = arg_type(v.POSITIVE_INT)
non_negative_int = arg_type(v.NON_NEGATIVE_INT)
positive_float = arg_type(v.POSITIVE)
non_negative_float = arg_type(v.NON_NEGATIVE)
finite_float = arg_type(v.FINITE)
probability = arg_type(v.PROBABILITY)
open_unit_float = arg_type(v.FRACTION_OPEN)
unit_right_open_float = arg_type(v.UNIT_RIGHT_OPEN)


def threads_arg(text: str) -> int | str:
    """``--threads``: a positive integer, or ``auto`` (the thread policy of :mod:`debiaskit.threads`)."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return int(positive_int(text))
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"must be a positive integer or auto, got {text!r}") from None


threads_arg.__name__ = "threads"


def seconds_arg(text: str) -> float:
    """A positive, finite number of seconds (``--wait-lock=600``)."""
    try:
        return float(positive_float(text))
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}") from None


seconds_arg.__name__ = "seconds"


def comma_list(item: Callable[[str], float | int], what: str) -> Callable[[str], list]:
    """An ``argparse`` type for ``a,b,c``: each element parsed and range-checked by ``item``; empty is an error.

    ``what`` names the elements in the message (``must be comma-separated non-negative integers, got '0,x'``).
    """

    def parse(text: str) -> list:
        parts = [t.strip() for t in text.split(",") if t.strip()]
        if not parts:
            raise argparse.ArgumentTypeError(f"must be comma-separated {what}, got {text!r}")
        out = []
        for t in parts:
            try:
                out.append(item(t))
            except argparse.ArgumentTypeError:
                raise argparse.ArgumentTypeError(f"must be comma-separated {what}, got {text!r}") from None
        return out

    parse.__name__ = "list"
    return parse
