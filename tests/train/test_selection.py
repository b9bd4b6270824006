"""Selection rules on hand-built evaluation rows: ``best_val_group_mean`` vs ``best_val_worst_group``.

The biased validation split below has the shape that made us add ``best_val_group_mean``: four (target, bias)
cells, two of them bias-conflicting with a single sample each. Whenever one of those two is misclassified the
worst cell is 0 %, so worst-group selection cannot tell the checkpoints apart and falls back to the earliest
step; the mean over the cells still ranks them.
"""

from __future__ import annotations

import numpy as np
import pytest

from debiaskit.errors import DebiaskitError
from debiaskit.metrics.groups import bias_metrics
from debiaskit.train.selection import get_selection_rule, list_selection_rules, select, validate_rules

# biased val split: target y, bias b; cells (0,0) x4, (1,1) x4 aligned, (0,1) x1, (1,0) x1 conflicting
Y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 0, 1])
B = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 0])

# predictions at steps 100..400
PRED = {
    100: np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 0]),  # pure colour: aligned 100 %, both conflicting wrong
    200: np.array([0, 0, 0, 1, 1, 1, 1, 1, 0, 0]),  # one conflicting right, one aligned error
    300: np.array([0, 0, 1, 1, 1, 1, 0, 1, 0, 0]),  # same conflicting right, more aligned errors
    400: np.array([0, 0, 0, 0, 1, 1, 1, 0, 1, 1]),  # the other conflicting right
}


def _group_mean(y: np.ndarray, b: np.ndarray, p: np.ndarray) -> float:
    """The paper definition written out: mean over non-empty (target, bias) cells of the cell accuracy."""
    accs = [float((p[(y == t) & (b == c)] == t).mean()) for t in (0, 1) for c in (0, 1) if ((y == t) & (b == c)).any()]
    return sum(accs) / len(accs)


def _rows() -> list[dict]:
    rows = []
    for step, p in PRED.items():
        m = bias_metrics(Y, p, sensitive_features=B, num_classes=2, num_bias=2)
        rows.append({"step": step, "split": "val", **m})
        rows.append({"step": step, "split": "test", "unbiased_accuracy": 0.5, "accuracy": 0.5})
    return rows


def test_group_mean_metric_matches_the_definition():
    for p in PRED.values():
        m = bias_metrics(Y, p, sensitive_features=B, num_classes=2, num_bias=2)
        assert m["unbiased_accuracy"] == pytest.approx(_group_mean(Y, B, p))


def test_group_mean_ranks_checkpoints_where_worst_group_cannot():
    rows = _rows()
    val = [r for r in rows if r["split"] == "val"]
    # every checkpoint misclassifies one single-sample conflicting cell: worst group is 0 everywhere
    assert all(r["worst_group_accuracy"] == 0.0 for r in val)
    assert select("best_val_worst_group", rows).step == 100  # ties keep the earliest step
    # hand-computed means: 100: (1+1+0+0)/4 = .5; 200: (.75+1+1+0)/4 = .6875; 300: (.5+.75+1+0)/4 = .5625;
    # 400: (1+.75+0+1)/4 = .6875 -> the earliest of the two best is 200
    means = {r["step"]: _group_mean(Y, B, PRED[r["step"]]) for r in val}
    assert means == pytest.approx({100: 0.5, 200: 0.6875, 300: 0.5625, 400: 0.6875})
    sel = select("best_val_group_mean", rows)
    assert sel.step == 200 and sel.score == pytest.approx(0.6875)
    # plain biased-val accuracy prefers the colour-only checkpoint (8/10 right), the failure mode on CMNIST
    assert select("best_val_accuracy", rows).step == 100


def test_group_mean_rule_declares_the_bias_labels_it_reads_and_needs_val():
    rule = get_selection_rule("best_val_group_mean")
    assert rule.labels_consumed == ("val:target", "val:bias") and not rule.oracle
    assert rule.split == "val" and rule.metric == "unbiased_accuracy" and rule.mode == "max"
    assert "best_val_group_mean" in list_selection_rules(include_oracle=False)
    assert validate_rules(["best_val_group_mean"], ["train", "val", "test"])[:2] == ["last", "best_val_group_mean"]
    with pytest.raises(DebiaskitError, match="needs a 'val' split"):
        validate_rules(["best_val_group_mean"], ["train", "test"])
    with pytest.raises(DebiaskitError, match="single-label"):
        validate_rules(["best_val_group_mean"], ["train", "val", "test"], multilabel=True)
