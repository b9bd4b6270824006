import numpy as np
import pytest
import torch
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference as fl_dpd,
    demographic_parity_ratio as fl_dpr,
    equal_opportunity_difference as fl_eod,
    equalized_odds_difference as fl_eodd,
    equalized_odds_ratio as fl_eodr,
    true_positive_rate as fl_tpr,
)
from hypothesis import given, settings, strategies as st

from debiaskit.errors import DebiaskitError
from debiaskit.metrics import (
    MetricWarning,
    demographic_parity_difference,
    demographic_parity_ratio,
    deo,
    equalized_odds_difference,
    equalized_odds_ratio,
    fpr_by_group,
    rates_by_group,
    tpr_by_group,
)


def _data(seed, n=400, G=3):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, G, n)
    y = rng.integers(0, 2, n)
    p = (rng.random(n) < 0.3 + 0.15 * g + 0.2 * y).astype(int)
    return y, p, g


@pytest.mark.parametrize("seed,G", [(0, 2), (1, 3), (2, 4)])
def test_gaps_match_fairlearn(seed, G):
    y, p, g = _data(seed, G=G)
    sf = {"sensitive_features": g}
    assert deo(y, p, sensitive_features=g) == pytest.approx(fl_eod(y, p, **sf))
    assert equalized_odds_difference(y, p, sensitive_features=g) == pytest.approx(fl_eodd(y, p, **sf))
    assert equalized_odds_difference(y, p, sensitive_features=g, agg="mean") == pytest.approx(fl_eodd(y, p, agg="mean", **sf))
    assert equalized_odds_ratio(y, p, sensitive_features=g) == pytest.approx(fl_eodr(y, p, **sf))
    assert demographic_parity_difference(y, p, sensitive_features=g) == pytest.approx(fl_dpd(y, p, **sf))
    assert demographic_parity_ratio(y, p, sensitive_features=g) == pytest.approx(fl_dpr(y, p, **sf))
    mf = MetricFrame(metrics=fl_tpr, y_true=y, y_pred=p, sensitive_features=g)
    np.testing.assert_allclose(tpr_by_group(y, p, sensitive_features=g).to_numpy(), mf.by_group.to_numpy())


def test_deo_two_groups_hand_case_and_torch():
    y = torch.tensor([1, 1, 1, 1, 0, 1, 1, 0])
    p = torch.tensor([1, 1, 0, 0, 1, 1, 0, 0])
    g = torch.tensor([0, 0, 0, 0, 0, 1, 1, 1])
    # TPR g0 = 2/4, g1 = 1/2 -> 0
    assert deo(y, p, sensitive_features=g) == 0.0
    p2 = torch.tensor([1, 1, 1, 0, 0, 1, 0, 0])  # g0 3/4, g1 1/2
    assert deo(y, p2, sensitive_features=g) == pytest.approx(0.25)
    assert deo(y, p2, sensitive_features=1 - g) == pytest.approx(0.25)


def test_deo_mean_reduction():
    y, p, g = _data(5, G=3)
    t = tpr_by_group(y, p, sensitive_features=g).to_numpy()
    gaps = [abs(t[i] - t[j]) for i in range(3) for j in range(i + 1, 3)]
    assert deo(y, p, sensitive_features=g, reduction="mean") == pytest.approx(np.mean(gaps))


def test_group_without_positives_is_nan_with_named_warning():
    y = np.array([1, 0, 1, 0, 0, 0])
    p = np.array([1, 0, 0, 1, 0, 1])
    g = np.array(["a", "a", "a", "b", "b", "b"])
    with pytest.warns(MetricWarning, match="'b'.*no positive"):
        assert np.isnan(deo(y, p, sensitive_features=g))
    with pytest.warns(MetricWarning, match="'b'"):
        assert np.isnan(equalized_odds_difference(y, p, sensitive_features=g))
    assert np.isnan(rates_by_group(y, p, sensitive_features=g).loc["b", "tpr"])


def test_bad_inputs():
    with pytest.raises(DebiaskitError, match="length mismatch"):
        deo([1, 0, 1], [1, 0], sensitive_features=[0, 1, 1])
    with pytest.raises(DebiaskitError, match="at least 2"):
        deo([1, 0, 1], [1, 0, 1], sensitive_features=[0, 0, 0])
    with pytest.raises(DebiaskitError, match="binary"):
        deo([1, 2, 1], [1, 0, 1], sensitive_features=[0, 1, 1])
    with pytest.raises(DebiaskitError, match="NaN"):
        deo([1, 0, 1], [1.0, np.nan, 1.0], sensitive_features=[0, 1, 1])
    with pytest.raises(DebiaskitError, match="reduction"):
        deo([1, 0, 1], [1, 0, 1], sensitive_features=[0, 1, 1], reduction="sum")


_gap_fns = [deo, equalized_odds_difference, demographic_parity_difference, demographic_parity_ratio, equalized_odds_ratio]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(20, 80), G=st.integers(2, 4))
def test_gaps_invariant_to_permutation_and_group_relabelling(seed, n, G):
    rng = np.random.default_rng(seed)
    g = np.arange(n) % G  # every group present
    y = rng.integers(0, 2, n)
    y[:G] = 1
    y[G : 2 * G] = 0  # every group has positives and negatives
    p = rng.integers(0, 2, n)
    perm = rng.permutation(n)
    relabel = rng.permutation(G)
    names = np.array([f"grp{k}" for k in relabel])
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricWarning)
        for fn in _gap_fns:
            a = fn(y, p, sensitive_features=g)
            assert fn(y[perm], p[perm], sensitive_features=g[perm]) == pytest.approx(a, nan_ok=True)
            assert fn(y, p, sensitive_features=names[g]) == pytest.approx(a, nan_ok=True)
        np.testing.assert_allclose(sorted(fpr_by_group(y, p, sensitive_features=g)), sorted(fpr_by_group(y[perm], p[perm], sensitive_features=names[g[perm]])))


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(20, 80))
def test_ba_and_kl_invariant_to_permutation_and_swapping_two_groups(seed, n):
    from debiaskit.metrics import bias_amplification_cvpr21, bias_amplification_directional, score_kl

    rng = np.random.default_rng(seed)
    g = np.arange(n) % 2
    y = rng.integers(0, 2, n)
    y[:2], y[2:4] = 1, 0
    s = rng.random(n)
    p = (s > 0.5).astype(int)
    perm = rng.permutation(n)
    ba = bias_amplification_cvpr21(y, p, sensitive_features=g)
    assert bias_amplification_cvpr21(y[perm], p[perm], sensitive_features=g[perm]) == pytest.approx(ba, abs=1e-12)
    assert bias_amplification_cvpr21(y, p, sensitive_features=1 - g) == pytest.approx(ba, abs=1e-12)
    assert bias_amplification_directional(y, p, sensitive_features=np.where(g == 1, "m", "f")) == pytest.approx(ba, abs=1e-12)
    kl = score_kl(y, s, sensitive_features=g)
    assert score_kl(y[perm], s[perm], sensitive_features=g[perm]) == pytest.approx(kl, abs=1e-12)
    assert score_kl(y, s, sensitive_features=1 - g) == pytest.approx(kl, abs=1e-12)
