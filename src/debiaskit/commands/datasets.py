"""``debiaskit datasets list|info``."""

from __future__ import annotations

import argparse

from debiaskit.commands.argtypes import open_unit_float, positive_int
from debiaskit.commands.methods import summary_line
from debiaskit.data.bias_card import bias_card, format_bias_card
from debiaskit.data.registry import DATASETS, dataset_options, get_splits, list_datasets
from debiaskit.errors import DebiaskitError
from debiaskit.experiments.config import parse_value
from debiaskit.report.cards import format_split_card


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("datasets", help="list datasets and show their bias cards")
    dsub = p.add_subparsers(dest="datasets_command", metavar="SUBCOMMAND")
    lp = dsub.add_parser("list", help="list registered datasets")
    lp.set_defaults(func=run_list)
    ip = dsub.add_parser("info", help="bias card of a dataset build: sizes, per-group counts, conflict ratio")
    ip.add_argument("name")
    ip.add_argument("--ratio", type=open_unit_float, help="share of bias-conflicting training samples, in (0, 1)")
    ip.add_argument("--data-dir")
    ip.add_argument("--set", action="append", default=[], metavar="OPTION=VALUE", help="any builder option")
    ip.add_argument("--top-k", type=positive_int, default=3, help="labels listed per protected group in the skew summary")
    ip.set_defaults(func=run_info)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def run_list(args: argparse.Namespace) -> int:
    for name in list_datasets():
        src = DATASETS.source(name)
        origin = f" [{src.describe()}]" if src is not None and src.origin != "builtin" else ""
        opts = ", ".join(f"{k}={v}" for k, v in dataset_options(name).items()) or "(none)"
        print(f"{name:20s} {summary_line(DATASETS.get(name))}{origin}\n{'':20s} options: {opts}")
    print("\nBias card of one build: `debiaskit datasets info NAME [--ratio R] [--set OPTION=VALUE]`.")
    return 0


def run_info(args: argparse.Namespace) -> int:
    opts = {}
    for item in args.set:
        if "=" not in item:
            raise DebiaskitError(f"--set expects OPTION=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        opts[k.strip()] = parse_value(v)
    if args.ratio is not None:
        opts["ratio"] = args.ratio
    if args.data_dir:
        opts["data_dir"] = args.data_dir
    splits = get_splits(args.name, **opts)
    print(format_split_card(splits))
    train = splits["train"]
    if not train.multilabel:
        print()
        print(format_bias_card(bias_card(train, top_k=args.top_k)))
    return 0
