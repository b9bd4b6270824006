"""Model selection as registered rules over evaluation records (DomainBed / SubpopBench style).

A rule names a split, a metric and a direction; applied to the evaluation records of a run (the rows of
``metrics.jsonl``: one per evaluation step and split) it picks a step. Because every evaluation of every split
is recorded, **any** registered rule can be applied after training (``debiaskit collect --selection RULE``),
without retraining; the trainer additionally keeps the *weights* of the rules asked for at train time.

Built-in rules (ties keep the earliest step):

==========================  ===============  ==========================  ====  ==========================
rule                        split            metric                      dir   labels it consumes
==========================  ===============  ==========================  ====  ==========================
``last``                    —                (the final step)            —     none
``best_val_accuracy``       ``val``          accuracy                    max   val targets
``min_val_loss``            ``val``          loss (cross-entropy / BCE)  min   val targets
``best_val_map``            ``val``          mAP (multi-label tasks)     max   val targets
``best_val_worst_group``    ``val``          worst-group accuracy        max   val targets + val bias labels
``best_val_group_mean``     ``val``          mean (target, bias)-cell    max   val targets + val bias labels
                                             accuracy ("unbiased")
``best_val_unbiased``       ``val_unbiased`` unbiased accuracy           max   val_unbiased targets + bias
``oracle_test``             ``test``         unbiased accuracy           max   TEST targets + bias labels
==========================  ===============  ==========================  ====  ==========================

``val`` is carved from the (biased) training distribution, so it is what a user really has;
``best_val_worst_group``, ``best_val_group_mean`` and ``best_val_unbiased`` read bias labels of a validation split,
and the record says so. ``best_val_group_mean`` is worst-group selection's smoothed companion: on a biased
validation split a bias-conflicting cell may hold only one to three samples, so the worst cell is 0 % at
almost every step and worst-group selection degenerates to the first step; the mean over the non-empty cells still
ranks checkpoints (it is the metric the test set is scored with, computed on the biased split).
``oracle_test`` selects on the test set — what the DisEnt code reports — and is computed only when asked for
explicitly; it is labelled :data:`ORACLE_LABEL` wherever it appears. See docs/concepts.md.

Add a rule with :func:`register_selection_rule` (one call, in any module).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from debiaskit.errors import DebiaskitError

__all__ = [
    "ORACLE_LABEL",
    "SelectionRule",
    "SelectionTracker",
    "default_rules",
    "get_selection_rule",
    "list_selection_rules",
    "register_selection_rule",
    "rule_label",
    "select",
    "validate_rules",
]

#: how test-set selection is labelled in every table, record and report
ORACLE_LABEL = "oracle (test-set selection)"


@dataclass(frozen=True)
class SelectionRule:
    """Pick the evaluation step whose ``split``/``metric`` is best (``mode`` max or min); ``split=None`` = last."""

    name: str
    split: str | None
    metric: str | None
    mode: str = "max"
    description: str = ""
    #: the labels the rule reads, e.g. ("val:target", "val:bias")
    labels_consumed: tuple[str, ...] = ()
    #: test-set selection: never a default, always labelled
    oracle: bool = False
    #: only for multi-label (True) / single-label (False) tasks; None = both
    multilabel: bool | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("max", "min"):
            raise ValueError(f"selection rule mode must be max or min, got {self.mode!r}")

    @property
    def label(self) -> str:
        return ORACLE_LABEL if self.oracle else self.name

    def score(self, row: dict[str, Any]) -> float:
        """The rule's score of one evaluation row (NaN when the row lacks the metric)."""
        v = row.get(self.metric) if self.metric else None
        try:
            v = float(v)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return math.nan
        return v

    def better(self, new: float, cur: float | None) -> bool:
        """Strictly better (ties keep the earlier step)."""
        if math.isnan(new):
            return False
        if cur is None or math.isnan(cur):
            return True
        return new > cur if self.mode == "max" else new < cur


_RULES: dict[str, SelectionRule] = {}


def register_selection_rule(rule: SelectionRule) -> SelectionRule:
    """Register a rule under ``rule.name`` (usable by the trainer, ``collect`` and sweep-level selection)."""
    if rule.name in _RULES and _RULES[rule.name] != rule:
        raise ValueError(f"selection rule {rule.name!r} is registered twice")
    _RULES[rule.name] = rule
    return rule


for _r in (
    SelectionRule("last", None, None, description="the final step"),
    SelectionRule("best_val_accuracy", "val", "accuracy", "max", "best accuracy on the biased validation split",
                  ("val:target",), multilabel=False),
    SelectionRule("min_val_loss", "val", "loss", "min", "lowest loss on the biased validation split", ("val:target",)),
    SelectionRule("best_val_map", "val", "mAP", "max", "best macro AP on the validation split", ("val:target",),
                  multilabel=True),
    SelectionRule("best_val_worst_group", "val", "worst_group_accuracy", "max",
                  "best worst-group accuracy on the biased validation split", ("val:target", "val:bias"),
                  multilabel=False),
    SelectionRule("best_val_group_mean", "val", "unbiased_accuracy", "max",
                  "best mean (target, bias)-cell accuracy on the biased validation split", ("val:target", "val:bias"),
                  multilabel=False),
    SelectionRule("best_val_unbiased", "val_unbiased", "unbiased_accuracy", "max",
                  "best unbiased accuracy on a uniformly biased validation split", ("val_unbiased:target",
                                                                                   "val_unbiased:bias"),
                  multilabel=False),
    SelectionRule("oracle_test", "test", "unbiased_accuracy", "max",
                  "ORACLE: best unbiased accuracy on the TEST split (optimistic)", ("test:target", "test:bias"),
                  oracle=True, multilabel=False),
):
    register_selection_rule(_r)


def get_selection_rule(name: str) -> SelectionRule:
    try:
        return _RULES[name]
    except KeyError:
        raise DebiaskitError(f"unknown selection rule {name!r}; choose from {', '.join(_RULES)}") from None


def list_selection_rules(*, include_oracle: bool = True) -> list[str]:
    return [n for n, r in _RULES.items() if include_oracle or not r.oracle]


def rule_label(name: str) -> str:
    """The display label of a rule ("oracle (test-set selection)" for oracle rules)."""
    return _RULES[name].label if name in _RULES else name


def default_rules(splits: Iterable[str], *, multilabel: bool = False) -> list[str]:
    """Rules whose weights the trainer keeps unless told otherwise (never an oracle)."""
    splits = list(splits)
    rules = ["last"]
    if "val" in splits:
        rules.append("best_val_map" if multilabel else "best_val_accuracy")
    if "val_unbiased" in splits and not multilabel:
        rules.append("best_val_unbiased")
    return rules


def validate_rules(rules: Iterable[str], splits: Iterable[str], *, multilabel: bool | None = None) -> list[str]:
    """Check rule names against the splits of a dataset build; ``last`` is always included first."""
    splits = list(splits)
    out: list[str] = []
    for name in rules:
        rule = get_selection_rule(name)
        if rule.split is not None and rule.split not in splits:
            raise DebiaskitError(f"selection rule {name!r} needs a {rule.split!r} split, which this dataset build lacks")
        if multilabel is not None and rule.multilabel is not None and rule.multilabel != multilabel:
            kind = "multi-label" if rule.multilabel else "single-label"
            raise DebiaskitError(f"selection rule {name!r} applies to {kind} tasks only")
        if name not in out:
            out.append(name)
    if "last" not in out:
        out.insert(0, "last")
    return out


@dataclass
class Selection:
    """What a rule picked: the step, its score, and the metrics of every split at that step."""

    rule: str
    step: int | None
    score: float | None
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)


def _by_step(rows: Iterable[dict[str, Any]], weights: str) -> dict[int, dict[str, dict[str, Any]]]:
    steps: dict[int, dict[str, dict[str, Any]]] = {}
    for r in rows:
        if r.get("weights", "raw") != weights:
            continue
        steps.setdefault(int(r["step"]), {})[str(r["split"])] = r
    return steps


def select(rule: str | SelectionRule, rows: Iterable[dict[str, Any]], *, weights: str = "raw") -> Selection:
    """Apply ``rule`` to evaluation rows (``metrics.jsonl``); ``weights`` picks raw or averaged weights."""
    rule = get_selection_rule(rule) if isinstance(rule, str) else rule
    steps = _by_step(rows, weights)
    if not steps:
        return Selection(rule.name, None, None, {})
    if rule.split is None:
        last = max(steps)
        return Selection(rule.name, last, None, steps[last])
    best_step, best = None, None
    for step in sorted(steps):
        row = steps[step].get(rule.split)
        if row is None:
            continue
        s = rule.score(row)
        if rule.better(s, best):
            best_step, best = step, s
    if best_step is None:
        return Selection(rule.name, None, None, {})
    return Selection(rule.name, best_step, best, steps[best_step])


class SelectionTracker:
    """Online version of :func:`select` for the trainer: which rules' selected step changed at an evaluation."""

    def __init__(self, rules: list[str]) -> None:
        self.rules = list(rules)
        self.best: dict[str, dict[str, Any]] = {}

    def update(self, step: int, metrics: dict[str, dict[str, Any]]) -> list[str]:
        """Record an evaluation (``metrics[split][name]``); return the rules whose selection changed."""
        changed = []
        for name in self.rules:
            rule = get_selection_rule(name)
            if rule.split is None:
                self.best[name] = {"step": step, "score": None}
                changed.append(name)
                continue
            row = metrics.get(rule.split)
            if row is None:
                continue
            s = rule.score(row)
            cur = self.best.get(name)
            if rule.better(s, None if cur is None else cur["score"]):
                self.best[name] = {"step": step, "score": s}
                changed.append(name)
        return changed

    def state_dict(self) -> dict[str, Any]:
        return {"rules": list(self.rules), "best": {k: dict(v) for k, v in self.best.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rules = list(state["rules"])
        self.best = {k: dict(v) for k, v in state["best"].items()}
