"""Model-selection rules. Test-set selection is never the default.

* ``last`` — the final step;
* ``best_val_accuracy`` — highest plain accuracy on the *biased* validation split carved from training
  data (what a user really has);
* ``best_val_unbiased`` — highest unbiased accuracy on ``val_unbiased`` (only when that split exists);
* ``best_val_map`` — highest macro AP on ``val`` (multi-label tasks);
* ``oracle_test`` — highest unbiased accuracy **on the test split**: what the DisEnt code reports
  (spec pitfall 14). Computed only when asked for explicitly and labelled "oracle (test-set selection)".

Ties keep the earliest step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from debiaskit.errors import DebiaskitError


@dataclass(frozen=True)
class Rule:
    name: str
    split: str | None  # None = last step
    metric: str | None
    label: str


SELECTION_RULES: dict[str, Rule] = {
    r.name: r
    for r in (
        Rule("last", None, None, "last checkpoint"),
        Rule("best_val_accuracy", "val", "accuracy", "best accuracy on the biased validation split"),
        Rule("best_val_unbiased", "val_unbiased", "unbiased_accuracy", "best unbiased accuracy on val_unbiased"),
        Rule("best_val_map", "val", "mAP", "best macro AP on the validation split"),
        Rule("oracle_test", "test", "unbiased_accuracy", "ORACLE: best unbiased accuracy on the TEST split (optimistic)"),
    )
}


def default_rules(splits: list[str], *, multilabel: bool = False) -> list[str]:
    rules = ["last"]
    if "val" in splits:
        rules.append("best_val_map" if multilabel else "best_val_accuracy")
    if "val_unbiased" in splits and not multilabel:
        rules.append("best_val_unbiased")
    return rules


def validate_rules(rules: list[str], splits: list[str]) -> list[str]:
    out = []
    for r in rules:
        if r not in SELECTION_RULES:
            raise DebiaskitError(f"unknown selection rule {r!r}; choose from {', '.join(SELECTION_RULES)}")
        split = SELECTION_RULES[r].split
        if split is not None and split not in splits:
            raise DebiaskitError(f"selection rule {r!r} needs a {split!r} split, which this dataset build lacks")
        out.append(r)
    if "last" not in out:
        out.insert(0, "last")
    return out


class SelectionTracker:
    """Tracks, for every rule, the evaluation step it selects and the metrics of all splits there."""

    def __init__(self, rules: list[str]) -> None:
        self.rules = list(rules)
        self.best: dict[str, dict[str, Any]] = {}

    def update(self, step: int, metrics: dict[str, dict[str, float]]) -> list[str]:
        """Record an evaluation (``metrics[split][name]``); return the rules whose selection changed."""
        changed = []
        for name in self.rules:
            rule = SELECTION_RULES[name]
            if rule.split is None:
                self.best[name] = {"step": step, "score": None, "metrics": metrics}
                changed.append(name)
                continue
            score = metrics.get(rule.split, {}).get(rule.metric, math.nan)
            if score is None or math.isnan(score):
                continue
            cur = self.best.get(name)
            if cur is None or score > cur["score"]:
                self.best[name] = {"step": step, "score": score, "metrics": metrics}
                changed.append(name)
        return changed

    def state_dict(self) -> dict:
        return {"rules": self.rules, "best": self.best}

    def load_state_dict(self, state: dict) -> None:
        self.rules = list(state["rules"])
        self.best = dict(state["best"])

    def summary(self) -> dict[str, Any]:
        return {
            name: {
                "label": SELECTION_RULES[name].label,
                "split": SELECTION_RULES[name].split,
                "metric": SELECTION_RULES[name].metric,
                **self.best[name],
            }
            for name in self.rules
            if name in self.best
        }
