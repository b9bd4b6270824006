"""``debiaskit methods list|info NAME|rules`` and ``debiaskit models list``: what the installed debiaskit can do.

Everything is plain text (no reStructuredText markup), built from the registries, so plugins show up with the
distribution that provides them. :func:`plain_text` is also used by ``debiaskit datasets list``;
:func:`method_choices_help` / :func:`dataset_choices_help` give ``train --help`` its lists without importing
the registries until the help is actually printed.
"""

from __future__ import annotations

import argparse
import re
import textwrap
from typing import Any

from debiaskit.commands.argtypes import open_unit_float
from debiaskit.data.registry import list_datasets
from debiaskit.experiments.hparams import COMMON_HPARAMS, _mro_merge, explain_hparams
from debiaskit.methods.registry import METHODS, list_methods
from debiaskit.models.registry import MODELS
from debiaskit.train.selection import get_selection_rule, list_selection_rules

__all__ = ["dataset_choices_help", "method_choices_help", "plain_text", "register", "summary_line"]

_ROLE = re.compile(r":[a-z]+(?::[a-z]+)?:`~?([^`]+)`")
_LITERAL = re.compile(r"``([^`]+)``")
_REF = re.compile(r"`([^`<]+?)(?:\s*<[^>]+>)?`_*")


def plain_text(text: str | None) -> str:
    """Docstring text without reStructuredText markup, whitespace collapsed to single spaces.

    ``:func:`~a.b.c``` → ``c``, ````x```` → ``x``, ```name <url>`_`` → ``name``; parenthesised pointers to
    "the module docstring" are dropped.
    """
    if not text:
        return ""
    s = _ROLE.sub(lambda m: m.group(1).rsplit(".", 1)[-1] if m.group(0).split("`")[1].startswith("~") else m.group(1), text)
    s = _LITERAL.sub(r"\1", s)
    s = _REF.sub(r"\1", s)
    s = re.sub(r"\s*\((?:see )?(?:the )?module docstring\)", "", s, flags=re.IGNORECASE)
    s = re.sub(r";?\s*see the module docstring\.?", ".", s, flags=re.IGNORECASE)
    return " ".join(s.split())


def summary_line(obj: Any) -> str:
    """The first sentence / line of ``obj``'s docstring, as plain text."""
    doc = (getattr(obj, "__doc__", None) or "").strip()
    first = doc.split("\n\n", 1)[0]
    return plain_text(first)


class _LazyHelp(str):
    """A help string computed only when argparse formats it (keeps start-up free of registry imports)."""

    def __new__(cls, fn: Any) -> "_LazyHelp":
        obj = super().__new__(cls, "(choices listed by --help)")
        obj._fn = fn  # type: ignore[attr-defined]
        return obj

    def __mod__(self, params: Any) -> str:
        return str(self._fn()) % params  # type: ignore[attr-defined]


def method_choices_help() -> str:
    """``--method`` help for ``train``: every registered method (plugins included)."""

    def build() -> str:
        return ("method name (default vanilla): " + ", ".join(list_methods())
                + "; details: `debiaskit methods list`").replace("%", "%%")

    return _LazyHelp(build)


def dataset_choices_help() -> str:
    """``--dataset`` help for ``train``: every registered dataset (plugins included)."""

    def build() -> str:
        return ("dataset name: " + ", ".join(n for n in list_datasets() if n != "user")
                + "; details: `debiaskit datasets list`").replace("%", "%%")

    return _LazyHelp(build)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("methods", help="list the training methods, their hyper-parameters and the selection rules",
                       description="List the training methods (built-in and plugins), their hyper-parameters and the "
                                   "model-selection rules.")
    msub = p.add_subparsers(dest="methods_command", metavar="SUBCOMMAND")
    lp = msub.add_parser("list", help="name, one-line summary, labels consumed and paper of every method")
    lp.set_defaults(func=run_list)
    ip = msub.add_parser("info", help="hyper-parameters of a method with their defaults and the paper's values")
    ip.add_argument("name", help="method name (see `debiaskit methods list`)")
    ip.add_argument("--dataset", help="also show the values resolved for this dataset (and --ratio)")
    ip.add_argument("--ratio", type=open_unit_float, help="bias-conflicting ratio for --dataset")
    ip.set_defaults(func=run_info)
    rp = msub.add_parser("rules", help="the model-selection rules and the labels each one reads")
    rp.set_defaults(func=run_rules)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])

    mp = sub.add_parser("models", help="list the models (built-in, backbones by prefix, plugins)",
                        description="List the registered models and the name prefixes resolved on demand.")
    osub = mp.add_subparsers(dest="models_command", metavar="SUBCOMMAND")
    olp = osub.add_parser("list", help="name, one-line summary and origin of every model")
    olp.set_defaults(func=run_models_list)
    mp.set_defaults(func=lambda a: (mp.print_help(), 2)[1])


def _origin(reg: Any, name: str) -> str:
    src = reg.source(name)
    if src is None or src.origin == "builtin":
        return ""
    return src.describe()


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    last = len(header) - 1
    lines = ["  ".join(h.ljust(w) if i < last else h for i, (h, w) in enumerate(zip(header, widths))).rstrip()]
    for r in rows:
        lines.append("  ".join(c.ljust(w) if i < last else c for i, (c, w) in enumerate(zip(r, widths))).rstrip())
    return "\n".join(lines)


def run_list(args: argparse.Namespace) -> int:
    rows = []
    for name in METHODS.list():
        cls = METHODS.get(name)
        origin = _origin(METHODS, name)
        summary = summary_line(cls) + (f" [{origin}]" if origin else "")
        paper = cls.__dict__.get("paper") or ""  # a subclass without its own paper does not inherit one
        rows.append([name, ", ".join(cls.labels_consumed), summary, plain_text(paper) or "-"])
    print(_table([[r[0], r[1], r[2]] for r in rows], ["METHOD", "LABELS", "SUMMARY"]))
    print()
    print("Papers:")
    for r in rows:
        print(f"  {r[0]}: {r[3]}")
    print()
    print("labels: the training labels a method reads (target = class labels; bias = bias / protected labels).")
    print("Hyper-parameters: `debiaskit methods info NAME`; selection rules: `debiaskit methods rules`.")
    failed = METHODS.failed_plugins()
    for n, why in sorted(failed.items()):
        print(f"warning: plugin method {n!r}: {why}")
    return 0


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, dict) and not v:
        return "{}"
    return str(v)


def run_info(args: argparse.Namespace) -> int:
    cls = METHODS.get(args.name)
    print(f"{args.name}: {summary_line(cls)}")
    if cls.paper:
        print(f"paper: {plain_text(cls.paper)}")
    print(f"labels consumed: {', '.join(cls.labels_consumed)}")
    print(f"evaluated model: {cls.evaluated_model}")
    origin = _origin(METHODS, args.name)
    if origin:
        print(f"provided by: {origin}")
    own = _mro_merge(cls, "default_hparams")
    per_ds = _mro_merge(cls, "dataset_hparams")
    per_ratio = _mro_merge(cls, "ratio_hparams")
    space = _mro_merge(cls, "search_space")
    print()
    print("Hyper-parameters (default; `--set hparams.KEY=VALUE` or debiaskit.fit(hparams={...})):")
    rows = []
    for k in list(own) + [k for k in COMMON_HPARAMS if k not in own]:
        v = own.get(k, COMMON_HPARAMS.get(k))
        kind = "method" if k in own else "common"
        search = repr(space[k]) if k in space else ""
        rows.append([k, _fmt(v), kind, search])
    print(textwrap.indent(_table(rows, ["KEY", "DEFAULT", "FROM", "SEARCH SPACE"]), "  "))
    if per_ds or per_ratio:
        print()
        print("The paper's / official scripts' values:")
        for ds, hp in per_ds.items():
            print(f"  {ds}: " + ", ".join(f"{k}={_fmt(v)}" for k, v in hp.items()))
        for (ds, r), hp in per_ratio.items():
            print(f"  {ds} at ratio {r:g}: " + ", ".join(f"{k}={_fmt(v)}" for k, v in hp.items()))
    if args.dataset:
        resolved = explain_hparams(args.name, args.dataset, ratio=args.ratio)
        print()
        print(f"Resolved for {args.dataset}" + (f" at ratio {args.ratio:g}" if args.ratio is not None else "") + ":")
        rows = [[k, _fmt(s.value), s.source] for k, s in resolved.items()]
        print(textwrap.indent(_table(rows, ["KEY", "VALUE", "SOURCE"]), "  "))
    return 0


def run_rules(args: argparse.Namespace) -> int:
    rows = []
    for name in list_selection_rules(include_oracle=True):
        r = get_selection_rule(name)
        what = "last step" if r.split is None else f"{r.mode} {r.split}/{r.metric}"
        task = "" if r.multilabel is None else (" (multi-label)" if r.multilabel else " (single-label)")
        rows.append([name, what + task, ", ".join(r.labels_consumed) or "-",
                     ("[oracle: test labels] " if r.oracle else "") + plain_text(r.description)])
    print(_table(rows, ["RULE", "PICKS", "LABELS READ", "DESCRIPTION"]))
    print()
    print("Rules are applied to metrics.jsonl after training (`debiaskit collect --selection RULE`); "
          "`train --select` chooses whose weights are kept.")
    return 0


def run_models_list(args: argparse.Namespace) -> int:
    rows = []
    for name in MODELS.list():
        origin = _origin(MODELS, name)
        rows.append([name, summary_line(MODELS.get(name)) + (f" [{origin}]" if origin else "")])
    print(_table(rows, ["MODEL", "SUMMARY"]))
    print()
    print("auto: chosen from the image shape (mlp up to 28 px, resnet20 up to 32 px, cnn64 up to 64 px, else resnet18).")
    prefixes = {
        "torchvision": "torchvision:ARCH - any torchvision classification model (pretrained=PATH, feature_layer, normalize)",
        "timm": "timm:ARCH - any timm model (optional extra: pip install 'debiaskit[timm]')",
        "python": "python:MODULE:CLASS - your own nn.Module class (what debiaskit.fit records)",
    }
    print("Prefixes:")
    for p in MODELS.prefixes():
        print(f"  {prefixes.get(p, p + ':NAME')}")
    for n, why in sorted(MODELS.failed_plugins().items()):
        print(f"warning: plugin model {n!r}: {why}")
    return 0
