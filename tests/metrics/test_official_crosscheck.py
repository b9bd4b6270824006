"""Our metrics against small re-implementations of the official gan-debiasing formulas (Ramaswamy et al.,
CVPR 2021; ``utils.py`` / ``main.py`` of princetonvisualai/gan-debiasing), written here from the published
description, on randomized cases with ties and degenerate groups. Every documented difference
(docs/metrics.md, "Differences from the official code") is asserted where it applies; everything else
must agree to rounding."""

import warnings

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from sklearn.metrics import average_precision_score, f1_score, recall_score

from debiaskit.metrics import (
    MetricWarning,
    average_precision,
    bias_amplification_cvpr21,
    bias_amplification_directional,
    bootstrap,
    calibrated_threshold,
    deo,
    f1_optimal_threshold,
    score_kl,
)
from debiaskit.metrics._batched import Resamples

# ---- the official formulas, re-implemented ----------------------------------------------------------


def off_calibrated(y, s):
    cp = int(y.sum())
    return np.sort(s)[-cp]  # cp == 0 -> index -0 -> the smallest score


def off_f1_threshold(y, s):
    best_t, best = -1.0, 0.0
    for t in range(1, 10):
        th = 0.1 * t
        f = f1_score(y, np.where(s > th, 1, 0), zero_division=0)
        if f > best:
            best, best_t = f, th
    one_dec = best_t
    for t in range(1, 20):
        th = (one_dec - 0.1) + 0.01 * t
        f = f1_score(y, np.where(s > th, 1, 0), zero_division=0)
        if f > best:
            best, best_t = f, th
    return best_t


def off_deo(y, p, g):
    r = [recall_score(y[g == k], p[g == k], zero_division=0) for k in (0, 1)]
    return abs((1 - r[0]) - (1 - r[1]))


def off_ba(y, p, g):
    """Attribute→task BA as coded: bog counts (t × g), indicator sign(P(t|g) − P(t)), nanmean over cells."""
    labels_t = np.array([[np.sum((y == t) & (g == a)) for a in (0, 1)] for t in (0, 1)], dtype=float)
    preds_t = np.array([[np.sum((p == t) & (g == a)) for a in (0, 1)] for t in (0, 1)], dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        n_a = labels_t.sum(0)
        data = labels_t / n_a
        pred = preds_t / n_a
        p_t = labels_t.sum(1) / labels_t.sum()
        diff = pred - data
        for t in range(2):
            for a in range(2):
                ind = np.sign(data[t, a] - p_t[t])
                if ind == 0:
                    diff[t, a] = 0
                elif ind == -1:
                    diff[t, a] = -diff[t, a]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmean(diff))


def off_kl(y, s, g):
    def dist(x):
        h = gaussian_filter(np.histogram(x, bins=50)[0], 1)
        return h / h.sum() + 1e-6

    def kl(a, b):
        return float(np.sum(np.where(a != 0, a * np.log(a / b), 0)))

    out = []
    with np.errstate(divide="ignore", invalid="ignore"):
        for cls in (1, 0):
            a, b = dist(s[(y == cls) & (g == 0)]), dist(s[(y == cls) & (g == 1)])
            out += [kl(a, b), kl(b, a)]
    return np.array(out)


# ---- random cases -------------------------------------------------------------------------------------


def _case(seed):
    rng = np.random.default_rng(seed)
    n = int(np.exp(rng.uniform(np.log(4), np.log(3000))))
    kind = seed % 6
    if kind == 4:  # an exactly balanced evaluation set: target independent of the group
        m = max(1, n // 4)
        n = 4 * m
        g, y = np.tile([0, 1, 0, 1], m), np.tile([0, 0, 1, 1], m)
    else:
        g = (rng.random(n) < rng.uniform(0.05, 0.95)).astype(int)
        y = (rng.random(n) < rng.uniform(0.05, 0.95)).astype(int)
    if kind == 1:
        g[:] = 0
        g[0] = 1  # a group of one sample
    if kind == 2:
        y[g == 1] = 0  # a group without positives
    if kind == 3:
        y[:] = 1  # no negatives at all
    if g.min() == g.max():
        g[0] = 1 - g[0]
    s = np.clip(0.35 * y + 0.15 * g + 0.5 * rng.random(n), 0, 1)
    s = np.round(s, int(rng.integers(1, 4)))  # ties
    p = (s > rng.uniform(0.2, 0.8)).astype(int)
    if kind == 5:
        p[g == 1] = 1  # the pattern: everyone in one group predicted positive
    return y, s, g, p


CASES = range(120)


@pytest.mark.parametrize("seed", CASES)
def test_randomized_against_official(seed):
    y, s, g, p = _case(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # AP: identical where defined; no positives -> NaN (official/sklearn: 0 with a warning)
        if y.any():
            assert average_precision(y, s) == pytest.approx(average_precision_score(y, s), abs=1e-12)
        else:
            assert np.isnan(average_precision(y, s))
        # calibrated threshold: identical with positives; none -> max score (official: min score)
        assert calibrated_threshold(y, s) == (off_calibrated(y, s) if y.any() else s.max())
        # F1 threshold, official grid: bit-identical threshold
        assert f1_optimal_threshold(y, s, method="official") == off_f1_threshold(y, s)
        # DEO: identical where both groups have positives; else NaN (official: recall 0)
        has_pos = all((y[g == k] == 1).any() for k in (0, 1))
        d = deo(y, p, sensitive_features=g)
        assert (d == pytest.approx(off_deo(y, p, g), abs=1e-12)) if has_pos else np.isnan(d)
        # BA: identical on every input (integer indicator, undefined cells skipped like nanmean)
        ba = bias_amplification_cvpr21(y, p, sensitive_features=g)
        assert ba == pytest.approx(off_ba(y, p, g), abs=1e-12)
        assert bias_amplification_directional(y, p, sensitive_features=g) == pytest.approx(ba, abs=1e-12)
        # KL (official mode): identical, NaN where the official value is NaN
        np.testing.assert_allclose(score_kl(y, s, sensitive_features=g, mode="official", reduction="none"),
                                   off_kl(y, s, g), atol=1e-12, equal_nan=True)


def test_bootstrap_resamples_with_degenerate_groups_match_the_official_loop():
    # 12 samples, a group of 2: many resamples lose the group (BA: 0 as nanmean) or its positives (DEO: NaN)
    y = np.array([1, 0, 1, 1, 0, 0, 1, 0, 1, 1, 0, 1])
    p = np.array([1, 0, 0, 1, 1, 0, 1, 0, 1, 0, 0, 1])
    g = np.array([0] * 10 + [1] * 2)
    s = np.round(np.linspace(0.05, 0.95, 12), 2)
    r_ba = bootstrap(bias_amplification_cvpr21, y, p, sensitive_features=g, n_boot=300, seed=3)
    r_ap = bootstrap(average_precision, y, s, n_boot=300, seed=3)
    r_deo = bootstrap(deo, y, p, sensitive_features=g, n_boot=300, seed=3)
    from debiaskit.metrics.bootstrap import resample_weights

    W = np.concatenate(list(resample_weights(12, 300, seed=3)))
    lost_group = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for b, w in enumerate(W):
            idx = np.repeat(np.arange(12), w)
            yy, pp, gg, ss = y[idx], p[idx], g[idx], s[idx]
            lost_group += not (gg == 1).any()
            assert r_ba.values[b] == pytest.approx(off_ba(yy, pp, gg), abs=1e-12)
            if yy.any():
                assert r_ap.values[b] == pytest.approx(average_precision_score(yy, ss), abs=1e-12)
            if all((yy[gg == k] == 1).any() for k in (0, 1)):
                assert r_deo.values[b] == pytest.approx(off_deo(yy, pp, gg), abs=1e-12)
            else:
                assert np.isnan(r_deo.values[b])
    assert lost_group > 10 and r_ba.n_nan == 0  # resamples without the group count as BA 0, not dropped


# ---- the reproducers of the differences -----------------------------------------------------------------


def test_ba_exactly_balanced_pair_counts_zero():
    y = np.array([0] * 1 + [0] * 4 + [1] * 3 + [1] * 12)
    g = np.array([0] * 1 + [1] * 4 + [0] * 3 + [1] * 12)
    pred = y.copy()
    pred[g == 1] = 1
    # the product form in floats is not 0 for this exactly independent pair ...
    assert np.mean((y == 1) & (g == 0)) - np.mean(y == 1) * np.mean(g == 0) != 0
    # ... the integer form is, so the pair contributes 0 as in the official code
    assert off_ba(y, pred, g) == 0.0
    assert bias_amplification_cvpr21(y, pred, sensitive_features=g) == 0.0
    assert bias_amplification_directional(y, pred, sensitive_features=g) == 0.0
    # Zhao: b*(o, g) = 1/|G| exactly is not selected either
    from debiaskit.metrics import bias_amplification_zhao

    y2 = np.array([0, 0, 1, 1, 1, 1])
    g2 = np.array([0, 1, 0, 0, 1, 1])  # task 0: one per group (b* = 1/2 exactly); task 1: 2 and 2
    assert bias_amplification_zhao(y2, 1 - y2, sensitive_features=g2) == 0.0


def test_ba_resample_missing_a_group_is_zero_for_the_whole_family():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 40)
    p = rng.integers(0, 2, 40)
    g = np.repeat([0, 1], 20)
    W = np.ones((1, 40), dtype=np.uint8)
    W[0, g == 1] = 0  # a resample that drew no sample of group 1
    R = Resamples(W)
    for fn in (bias_amplification_cvpr21, bias_amplification_directional):
        st = fn.batched.prepare(y, p, sensitive_features=g)
        assert fn.batched.evaluate(st, R)[0] == 0.0
    assert off_ba(y[g == 0], p[g == 0], g[g == 0]) == 0.0


@pytest.mark.parametrize(
    "y,s,official,exact",
    [([0, 0, 1, 1, 1], [0.05, 0.12, 0.55, 0.61, 0.93], 0.2, 0.12),
     ([1, 1, 1, 1], [0.005, 0.5, 0.6, 0.7], 0.1, np.nextafter(0.005, -np.inf))],
)
def test_f1_threshold_reproducers(y, s, official, exact):
    y, s = np.array(y), np.array(s)
    got = f1_optimal_threshold(y, s, method="official")
    assert got == off_f1_threshold(y, s) and got == pytest.approx(official, abs=1e-12)
    assert f1_optimal_threshold(y, s) == exact
    assert f1_score(y, s > f1_optimal_threshold(y, s)) >= f1_score(y, s > got)


def test_f1_official_grid_when_every_coarse_f1_is_zero():
    y = np.array([1, 0, 0, 1])
    s = np.array([0.01, 0.02, 0.03, 0.05])  # no positive above 0.1
    with pytest.warns(MetricWarning, match="coarse"):
        got = f1_optimal_threshold(y, s, method="official")
    assert got == off_f1_threshold(y, s) and got < -0.9


def test_calibrated_threshold_without_positives():
    y = np.zeros(5, dtype=int)
    s = np.array([0.3, 0.1, 0.9, 0.5, 0.2])
    with pytest.warns(MetricWarning, match="no positives"):
        assert calibrated_threshold(y, s) == 0.9  # nothing predicted positive
    assert off_calibrated(y, s) == 0.1  # official: everything but the minimum predicted positive


def test_bootstrap_std_ddof():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    s = rng.random(200)
    r1 = bootstrap(average_precision, y, s, n_boot=50, seed=0)
    r0 = bootstrap(average_precision, y, s, n_boot=50, seed=0, convention="cvpr21")
    assert r1.ddof == 1 and r1.std == pytest.approx(np.std(r1.values, ddof=1))
    assert r0.ddof == 0 and r0.std == pytest.approx(np.std(r0.values))  # what the official np.std gives
    assert r1.std / r0.std == pytest.approx(np.sqrt(50 / 49))


def test_gce_weight_precision_documented_difference():
    """LfF/DisEnt GCE weight q·p_y^q: the official code takes the softmax in the logits' dtype, ours in
    float32 (docs/metrics.md, differences table): identical for float32 logits, different only where p_y
    leaves the float32 range for float64 logits."""
    import torch
    import torch.nn.functional as F

    from debiaskit.losses import generalized_ce

    def official(logits, y, q=0.7):
        p_y = torch.softmax(logits, 1).gather(1, y[:, None])[:, 0]  # in the logits' dtype
        return F.cross_entropy(logits, y, reduction="none") * q * p_y**q

    y = torch.tensor([0, 1, 0])
    z32 = torch.tensor([[0.5, 2.0], [3.0, -1.0], [0.0, 30.0]])
    torch.testing.assert_close(generalized_ce(z32, y), official(z32, y), rtol=0, atol=0)
    z64 = torch.tensor([[0.0, 20.0], [0.0, 103.0]], dtype=torch.float64)
    a, b = generalized_ce(z64, torch.tensor([0, 0])), official(z64, torch.tensor([0, 0]))
    assert abs(a[0] / b[0] - 1) < 1e-6  # ordinary logits: same to float32 precision
    assert abs(a[1] / b[1] - 1) > 0.01 and b[1] < 1e-29  # extreme: p_y below the float32 range, weight < 1e-29
