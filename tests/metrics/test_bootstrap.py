import json

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from debiaskit.errors import DebiaskitError
from debiaskit.metrics import average_precision, bootstrap, deo, resample_weights, selection_rate


def test_resample_weights_are_bootstrap_counts():
    Ws = list(resample_weights(1000, 10_000, seed=0))
    W = np.concatenate(Ws)
    assert W.shape == (10_000, 1000)
    assert (W.sum(1) == 1000).all()
    assert len(Ws) > 1  # drawn in blocks
    # each count is Binomial(n, 1/n): mean 1, var ~ 1 - 1/n
    assert W.mean() == pytest.approx(1.0, abs=1e-12)
    assert W.var() == pytest.approx(0.999, abs=0.02)


def test_batched_values_equal_per_resample_loop():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 120)
    s = np.round(rng.random(120), 2)
    g = rng.integers(0, 2, 120)
    p = (s > 0.5).astype(int)
    fast = bootstrap(average_precision, y, s, n_boot=40, seed=3)
    slow = bootstrap(lambda a, b: average_precision_score(a, b), y, s, n_boot=40, seed=3)
    np.testing.assert_allclose(fast.values, slow.values, atol=1e-12)
    fast = bootstrap(deo, y, p, sensitive_features=g, n_boot=40, seed=3)
    slow = bootstrap(lambda a, b, *, sensitive_features: deo(a, b, sensitive_features=sensitive_features), y, p,
                     sensitive_features=g, n_boot=40, seed=3)
    np.testing.assert_allclose(fast.values, slow.values, equal_nan=True, atol=1e-12)


def test_same_seed_same_resamples_across_metrics_and_torch_input():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 50)
    p = rng.integers(0, 2, 50)
    a = bootstrap(selection_rate, y, p, n_boot=20, seed=9)
    b = bootstrap(selection_rate, torch.as_tensor(y), torch.as_tensor(p), n_boot=20, seed=9)
    np.testing.assert_array_equal(a.values, b.values)
    c = bootstrap(selection_rate, y, p, n_boot=20, seed=10)
    assert not np.array_equal(a.values, c.values)


def test_ci_coverage_on_a_known_distribution():
    # selection rate of Bernoulli(0.3) predictions: the 95% percentile interval should cover 0.3 ~95% of the time
    rng = np.random.default_rng(123)
    hits = 0
    reps = 200
    for r in range(reps):
        p = (rng.random(400) < 0.3).astype(int)
        res = bootstrap(selection_rate, np.zeros(400, int), p, n_boot=300, seed=r)
        hits += res.ci_low <= 0.3 <= res.ci_high
        assert res.std == pytest.approx(np.sqrt(0.21 / 400), rel=0.35)
    assert 0.89 <= hits / reps <= 0.99


def test_cvpr21_convention_and_summary():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 300)
    s = rng.random(300)
    r = bootstrap(average_precision, y, s, n_boot=100, convention="cvpr21", seed=0)
    assert r.stat == "median" and r.ci_method == "2sigma" and r.n_boot == 100 and r.ddof == 0
    assert r.estimate == pytest.approx(np.median(r.values))
    assert r.ci_high - r.estimate == pytest.approx(2 * np.std(r.values))  # np.std, ddof 0, as the official code
    assert r.point == pytest.approx(average_precision_score(y, s))
    json.dumps(r.to_dict())


def test_undefined_resamples_are_counted_not_hidden():
    y = np.array([1, 0, 0, 0, 0, 0, 0, 0, 1, 0])
    p = np.array([1, 0, 1, 0, 0, 0, 0, 0, 1, 1])
    g = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
    r = bootstrap(deo, y, p, sensitive_features=g, n_boot=200, seed=0)
    assert 0 < r.n_nan < 200
    assert np.isfinite(r.median)


def test_bootstrap_bad_inputs():
    with pytest.raises(DebiaskitError, match="n_boot"):
        bootstrap(selection_rate, [0, 1], [0, 1], n_boot=1)
    with pytest.raises(DebiaskitError, match="length mismatch"):
        bootstrap(selection_rate, [0, 1, 1], [0, 1], n_boot=10)
    with pytest.raises(DebiaskitError, match="convention"):
        bootstrap(selection_rate, [0, 1], [0, 1], convention="iccv19")


def test_index_and_count_paths_agree_and_bootstrap_many_shares_resamples(monkeypatch):
    from debiaskit.metrics import bias_amplification_directional, bootstrap_many, score_kl
    from debiaskit.metrics._batched import CellIndex, PatternSums, Resamples
    from debiaskit.metrics.bootstrap import resample_blocks

    rng = np.random.default_rng(4)
    n = 300
    y = rng.integers(0, 2, n)
    s = rng.random(n)
    g = rng.integers(0, 3, n)
    p = (s > 0.5).astype(int)
    R = next(resample_blocks(n, 7, seed=1))
    wide = Resamples(R.W.astype(np.int64))  # the uint8 block and a plain int64 count matrix agree
    for fn, arrays, kw in [(deo, (y, p), {"sensitive_features": g}), (score_kl, (y, s), {"sensitive_features": g % 2}),
                           (score_kl, (y, s), {"sensitive_features": g % 2, "mode": "official"}),
                           (average_precision, (y, s), {}),
                           (bias_amplification_directional, (y, p), {"sensitive_features": g})]:
        st = fn.batched.prepare(*arrays, **kw)
        np.testing.assert_allclose(fn.batched.evaluate(st, R), fn.batched.evaluate(st, wide), equal_nan=True)
    # pattern counting equals the plain matmul fallback; the two cell-count paths agree
    st = bias_amplification_directional.batched.prepare(y, p, sensitive_features=g)
    a = bias_amplification_directional.batched.evaluate(st, R)
    monkeypatch.setattr(PatternSums, "MAX_PATTERNS", 0)
    st2 = bias_amplification_directional.batched.prepare(y, p, sensitive_features=g)
    assert st2.F.cells is None
    np.testing.assert_allclose(bias_amplification_directional.batched.evaluate(st2, R), a, atol=1e-12)
    codes = rng.integers(0, 40, n)
    ref = np.stack([np.bincount(codes, weights=w, minlength=40) for w in R.W.astype(np.float64)])
    np.testing.assert_array_equal(CellIndex(codes, 40)(Resamples(R.W)), ref)  # sorted-cumsum path (40 cells)
    monkeypatch.setattr(CellIndex, "MATMUL_CELLS", 64)
    np.testing.assert_array_equal(CellIndex(codes, 40)(Resamples(R.W)), ref)  # matmul path
    many = bootstrap_many({"ap": (average_precision, (y, s), {}), "deo": (deo, (y, p), {"sensitive_features": g})},
                          n_boot=20, seed=2)
    np.testing.assert_array_equal(many["ap"].values, bootstrap(average_precision, y, s, n_boot=20, seed=2).values)
    np.testing.assert_array_equal(many["deo"].values, bootstrap(deo, y, p, sensitive_features=g, n_boot=20, seed=2).values)
