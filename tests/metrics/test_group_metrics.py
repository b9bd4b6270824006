import math

import numpy as np
import pytest
import torch

from debiaskit.errors import DebiaskitError
from debiaskit.metrics.groups import bias_metrics, group_accuracy_matrix, group_table, unbiased_accuracy


def test_hand_computed_two_by_two():
    # cells (y,b): (0,0): 3 samples, 2 right; (0,1): 1 sample, 0 right; (1,0): 2 samples, 1 right; (1,1): 4, 4
    y = [0, 0, 0, 0, 1, 1, 1, 1, 1, 1]
    b = [0, 0, 0, 1, 0, 0, 1, 1, 1, 1]
    p = [0, 0, 1, 1, 1, 0, 1, 1, 1, 1]
    correct, count = group_accuracy_matrix(y, p, sensitive_features=b, num_classes=2, num_bias=2)
    assert count.tolist() == [[3, 1], [2, 4]]
    assert correct.tolist() == [[2, 0], [1, 4]]
    m = bias_metrics(y, p, sensitive_features=b, num_classes=2, num_bias=2)
    assert m["accuracy"] == pytest.approx(7 / 10)
    assert m["unbiased_accuracy"] == pytest.approx((2 / 3 + 0 + 1 / 2 + 1) / 4)
    assert m["aligned_accuracy"] == pytest.approx((2 / 3 + 1) / 2)
    assert m["conflicting_accuracy"] == pytest.approx((0 + 1 / 2) / 2)
    assert m["conflicting_sample_accuracy"] == pytest.approx(1 / 3)
    assert m["worst_group_accuracy"] == 0.0


def test_empty_cells_are_ignored_not_zero():
    y, b, p = [0, 0, 1], [0, 0, 1], [0, 1, 1]
    m = bias_metrics(y, p, sensitive_features=b, num_classes=2, num_bias=2)
    assert m["unbiased_accuracy"] == pytest.approx((0.5 + 1) / 2)
    assert math.isnan(m["conflicting_accuracy"])
    assert unbiased_accuracy(y, p, sensitive_features=b, num_classes=2, num_bias=2) == pytest.approx(0.75)


def test_custom_aligned_cells_and_torch_inputs():
    y = torch.tensor([0, 0, 1, 1])
    b = torch.tensor([1, 0, 0, 0])
    p = torch.tensor([0, 1, 1, 1])
    aligned = torch.tensor([[False, True], [True, False]])  # class 0 goes with bias 1
    m = bias_metrics(y, p, sensitive_features=b, num_classes=2, num_bias=3 - 1, aligned_cells=aligned)
    assert m["aligned_accuracy"] == pytest.approx((1 + 1) / 2)
    assert m["conflicting_accuracy"] == pytest.approx(0.0)


def test_matches_brute_force_on_random_data():
    rng = np.random.default_rng(0)
    y, b, p = rng.integers(0, 4, 500), rng.integers(0, 3, 500), rng.integers(0, 4, 500)
    aligned = rng.random((4, 3)) < 0.4
    m = bias_metrics(y, p, sensitive_features=b, num_classes=4, num_bias=3, aligned_cells=aligned)
    accs = {(c, d): (p[(y == c) & (b == d)] == c).mean() for c in range(4) for d in range(3) if ((y == c) & (b == d)).any()}
    assert m["unbiased_accuracy"] == pytest.approx(np.mean(list(accs.values())))
    assert m["aligned_accuracy"] == pytest.approx(np.mean([v for k, v in accs.items() if aligned[k]]))
    assert m["worst_group_accuracy"] == pytest.approx(min(accs.values()))
    rows = group_table(y, p, sensitive_features=b, num_classes=4, num_bias=3, aligned_cells=aligned)
    assert sum(r["count"] for r in rows) == 500


def test_length_mismatch():
    with pytest.raises(DebiaskitError, match="length mismatch"):
        group_accuracy_matrix([0], [0, 1], sensitive_features=[0, 1], num_classes=2, num_bias=2)
