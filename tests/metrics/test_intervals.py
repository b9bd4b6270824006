"""Interval methods: percentile, basic, BCa (hand re-implementation of Efron 1987), simultaneous, and the
10-group case where the percentile interval of a gap excludes its own estimate."""

import inspect
import warnings
from statistics import NormalDist

import numpy as np
import pytest

import debiaskit.metrics as M
from debiaskit.errors import DebiaskitError
from debiaskit.metrics import GroupReport, bootstrap, demographic_parity_difference, deo, selection_rate


def _ten_equal_groups(n_per=200, rate=0.3):
    """10 groups with exactly the same selection rate: the true and the observed gap are 0."""
    g = np.repeat(np.arange(10), n_per)
    p = np.tile((np.arange(n_per) < rate * n_per).astype(int), 10)
    y = np.tile(np.arange(n_per) % 2, 10)
    return y, p, g


def test_percentile_interval_of_a_gap_can_exclude_its_estimate_simultaneous_does_not():
    y, p, g = _ten_equal_groups()
    rep_pct = GroupReport(metrics=["selection_rate"], y_true=y, y_pred=p, sensitive_features=g, n_boot=200,
                          ci_method="percentile")
    assert rep_pct.difference()["selection_rate"] == 0.0 and rep_pct.ratio()["selection_rate"] == 1.0
    lo, hi = rep_pct.difference_ci().loc["selection_rate"]
    assert lo > 0.0  # the whole bootstrap distribution of max − min lies above the estimate
    rlo, rhi = rep_pct.ratio_ci().loc["selection_rate"]
    assert rhi < 1.0
    rep = GroupReport(metrics=["selection_rate"], y_true=y, y_pred=p, sensitive_features=g, n_boot=200)
    assert rep.ci_method_values == "percentile" and rep.ci_method_gaps == "simultaneous"
    lo, hi = rep.difference_ci().loc["selection_rate"]
    assert lo == 0.0 <= hi and hi < 0.3
    rlo, rhi = rep.ratio_ci().loc["selection_rate"]
    assert rlo < 1.0 == rhi
    for method in ("to_overall",):
        dlo, dhi = rep.difference_ci(method=method).loc["selection_rate"]
        assert dlo <= rep.difference(method=method)["selection_rate"] <= dhi
    assert "simultaneous" in rep.to_markdown() and rep.to_dict()["bootstrap"]["ci_method"]["gaps"] == "simultaneous"
    # the same through bootstrap() of a gap metric ("auto" = simultaneous for gaps)
    r = bootstrap(demographic_parity_difference, y, p, sensitive_features=g, n_boot=200)
    assert r.ci_method == "simultaneous" and r.ci_low == 0.0 <= r.point <= r.ci_high
    r = bootstrap(demographic_parity_difference, y, p, sensitive_features=g, n_boot=200, ci_method="percentile")
    assert r.ci_low > r.point


def test_simultaneous_interval_covers_a_real_gap():
    # 4 groups with rates 0.2, 0.3, 0.3, 0.4: true difference 0.2
    rates = np.array([0.2, 0.3, 0.3, 0.4])
    rng = np.random.default_rng(7)
    hits, reps = 0, 60
    for r in range(reps):
        g = np.repeat(np.arange(4), 100)
        p = (rng.random(400) < rates[g]).astype(int)
        res = bootstrap(demographic_parity_difference, np.zeros(400, int), p, sensitive_features=g, n_boot=150, seed=r)
        hits += res.ci_low <= 0.2 <= res.ci_high
        assert res.ci_low <= res.point <= res.ci_high
    assert hits / reps >= 0.9


def test_simultaneous_bounds_by_hand():
    from debiaskit.metrics.bootstrap import extremum_bounds

    lo = np.array([0.1, 0.3, 0.5])
    hi = np.array([0.2, 0.6, 0.7])
    assert extremum_bounds(lo, hi, "difference") == (pytest.approx(0.3), pytest.approx(0.6))  # 0.5−0.2, 0.7−0.1
    a, b = extremum_bounds(lo, hi, "ratio")
    assert a == pytest.approx(0.1 / 0.7) and b == pytest.approx(0.2 / 0.5)
    a, b = extremum_bounds(np.array([0.2, 0.25]), np.array([0.3, 0.35]), "difference")
    assert a == 0.0 and b == pytest.approx(0.15)  # overlapping intervals: the gap may be 0


def test_bca_matches_a_hand_computation():
    rng = np.random.default_rng(3)
    p = (rng.random(60) < 0.3).astype(int)
    y = np.zeros(60, int)
    r = bootstrap(selection_rate, y, p, n_boot=400, seed=2, ci_method="bca")
    theta = p.mean()
    v = r.values
    z0 = NormalDist().inv_cdf((np.sum(v < theta) + 0.5 * np.sum(v == theta)) / len(v))
    jack = np.array([np.delete(p, i).mean() for i in range(60)])  # n <= 1000: leave-one-out
    d = jack.mean() - jack
    a = (d**3).sum() / (6 * (d**2).sum() ** 1.5)
    q = []
    for alpha in (0.025, 0.975):
        z = NormalDist().inv_cdf(alpha)
        q.append(NormalDist().cdf(z0 + (z0 + z) / (1 - a * (z0 + z))))
    lo, hi = np.quantile(v, q)
    assert r.ci_method == "bca"
    assert r.details["z0"] == pytest.approx(z0) and r.details["acceleration"] == pytest.approx(a)
    assert (r.ci_low, r.ci_high) == (pytest.approx(lo), pytest.approx(hi))


def test_basic_is_the_reflected_percentile_and_bca_in_group_report():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 300)
    s = rng.random(300)
    pct = bootstrap(M.average_precision, y, s, n_boot=100, seed=1, ci_method="percentile")
    basic = bootstrap(M.average_precision, y, s, n_boot=100, seed=1, ci_method="basic")
    assert basic.ci_low == pytest.approx(2 * pct.point - pct.ci_high)
    assert basic.ci_high == pytest.approx(2 * pct.point - pct.ci_low)
    g = rng.integers(0, 3, 300)
    rep = GroupReport(metrics=["tpr", "ap"], y_true=y, y_pred=(s > 0.5).astype(int), y_score=s, sensitive_features=g,
                      n_boot=60, ci_method="bca")
    oc = rep.overall_ci()
    assert (oc["ci_low"] <= oc["ci_high"]).all()
    assert "BCa" in rep.interval_note()


def test_interval_option_errors():
    y, p, g = _ten_equal_groups(20)
    with pytest.raises(DebiaskitError, match="ci_method"):
        bootstrap(deo, y, p, sensitive_features=g, ci_method="student")
    with pytest.raises(DebiaskitError, match="simultaneous"):
        bootstrap(selection_rate, y, p, ci_method="simultaneous")
    with pytest.raises(DebiaskitError, match="pooled"):
        bootstrap(M.score_kl, y, np.linspace(0, 1, len(y)), sensitive_features=g % 2, mode="official",
                  reduction="none", pool=True, ci_method="bca")
    with pytest.raises(DebiaskitError, match="ddof"):
        bootstrap(selection_rate, y, p, ddof=2)


# ---- one calling convention --------------------------------------------------------------------------

_NOT_METRICS = {"ArrayLike", "MetricWarning", "GROUP_METRICS", "BootstrapResult", "GroupReport", "on_scores",
                "bootstrap", "bootstrap_many", "resample_weights"}


@pytest.mark.parametrize("name", sorted(set(M.__all__) - _NOT_METRICS))
def test_every_public_metric_follows_the_convention(name):
    fn = getattr(M, name)
    params = list(inspect.signature(fn).parameters.values())
    positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if name == "apply_threshold":
        assert positional == ["y_score"]
    else:
        assert positional[0] == "y_true" and positional[1] in ("y_pred", "y_score") and len(positional) == 2, positional
    for p in params:
        if p.name not in positional:
            assert p.kind == p.KEYWORD_ONLY, p.name
        assert p.annotation is not inspect.Parameter.empty, p.name
        assert "Any" not in str(p.annotation), (p.name, p.annotation)
    assert "sensitive_features" in [p.name for p in params] or not any(
        w in name for w in ("group", "deo", "odds", "parity", "amplification", "kl", "bias_metrics", "opportunity"))
    assert fn.__doc__


def test_all_is_curated_and_importable():
    assert len(M.__all__) == len(set(M.__all__))
    for name in M.__all__:
        assert hasattr(M, name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert not any(n.startswith("_") for n in M.__all__)
