import numpy as np
import pytest

from debiaskit.errors import DebiaskitError
from debiaskit.leakage.balanced import (
    PAPER_SIZES,
    as_binary_protected,
    as_group_codes,
    balanced_indices,
    folded_accuracy,
    resolve_sizes,
)


def test_folded_accuracy_scalar_and_array():
    assert folded_accuracy(0.3) == pytest.approx(0.7)
    assert folded_accuracy(0.5) == 0.5
    assert folded_accuracy(0.82) == pytest.approx(0.82)
    np.testing.assert_allclose(folded_accuracy(np.array([0.0, 0.25, 1.0])), [1.0, 0.75, 1.0])


def test_balanced_sampling_gives_exactly_equal_groups():
    rng = np.random.default_rng(0)
    g = (rng.random(1000) < 0.2).astype(int)  # 20 % group 1
    idx, k = balanced_indices(g, 150, rounds=5, rng=np.random.default_rng(1))
    assert idx.shape == (5, 300) and k == 150
    for row in idx:
        assert len(np.unique(row)) == 300  # without replacement
        assert (g[row] == 0).sum() == (g[row] == 1).sum() == 150
    assert not np.array_equal(idx[0], idx[1])  # re-drawn each round


def test_balanced_sampling_caps_to_what_balance_allows():
    g = np.array([0] * 50 + [1] * 7)
    idx, k = balanced_indices(g, None, rounds=2, rng=np.random.default_rng(0))
    assert k == 7 and idx.shape == (2, 14)
    idx, k = balanced_indices(g, 7300, rounds=1, rng=np.random.default_rng(0))
    assert k == 7
    assert sorted(idx[0][7:]) == list(range(50, 57))


def test_too_few_to_balance_message_has_counts():
    g = np.array([0] * 30 + [1])
    with pytest.raises(DebiaskitError, match="30 with value 0 and 1 with value 1|30 with value 0, 1 with value 1"):
        balanced_indices(g, None, rounds=1, rng=np.random.default_rng(0))


def test_protected_with_one_value_is_rejected():
    with pytest.raises(DebiaskitError, match="single value"):
        as_binary_protected(np.ones(10))
    with pytest.raises(DebiaskitError, match="single value"):
        as_group_codes(["m"] * 4)
    with pytest.raises(DebiaskitError, match="binary"):
        as_binary_protected([0, 1, 2])


def test_more_than_two_groups_are_balanced_too():
    g = np.repeat(np.arange(4), [10, 20, 30, 40])
    idx, k = balanced_indices(g, None, rounds=3, rng=np.random.default_rng(0))
    assert k == 10 and idx.shape == (3, 40)
    assert all((np.bincount(g[r]) == 10).all() for r in idx)


def test_size_presets():
    assert resolve_sizes("imsitu") == (7300, 3000, 3000) == PAPER_SIZES["imsitu"]
    assert resolve_sizes(None) == (None, None, None)
    with pytest.raises(DebiaskitError):
        resolve_sizes("nope")
    with pytest.raises(DebiaskitError):
        resolve_sizes((1, 0, 2))
