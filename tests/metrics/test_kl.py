import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from debiaskit.errors import DebiaskitError
from debiaskit.metrics import bootstrap, score_kl
from debiaskit.metrics.kl import gaussian_smooth_like_scipy, histogram_like_numpy


def _reference_official(y, s, g):
    """The CVPR 2021 recipe written with the library calls the official code uses (np.histogram, gaussian_filter)."""

    def dist(x):
        h, _ = np.histogram(x, bins=50)
        h = gaussian_filter(h, 1)  # int64 in -> int64 out (truncated)
        return h / h.sum() + 1e-6

    def kl(p, q):
        m = p != 0
        return float(np.sum(p[m] * np.log(p[m] / q[m])))

    out = []
    for cls in (1, 0):
        a, b = dist(s[(y == cls) & (g == 0)]), dist(s[(y == cls) & (g == 1)])
        out += [kl(a, b), kl(b, a)]
    return np.array(out)


def test_smoothing_truncates_like_scipy_hand_case():
    h = np.zeros(50, dtype=np.int64)
    h[25] = 10
    got = gaussian_smooth_like_scipy(h, integer=True)
    # 10 * N(0,1) kernel normalised over 9 taps = [..., 0.54, 2.42, 3.99, 2.42, 0.54, ...] -> 0, 2, 3, 2, 0
    expected = np.zeros(50)
    expected[24:27] = [2, 3, 2]
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(gaussian_filter(h, 1), expected)


def test_smoothing_bit_identical_to_scipy_on_random_counts():
    rng = np.random.default_rng(0)
    H = rng.integers(0, 40, (200, 50))
    ref = np.stack([gaussian_filter(h, 1) for h in H])
    np.testing.assert_array_equal(gaussian_smooth_like_scipy(H, integer=True), ref)
    Hf = H.astype(np.float64)
    reff = np.stack([gaussian_filter(h, 1.0) for h in Hf])
    np.testing.assert_allclose(gaussian_smooth_like_scipy(Hf, integer=False), reff, rtol=0, atol=1e-12)


def test_histogram_matches_numpy_per_row():
    rng = np.random.default_rng(1)
    v = np.round(rng.random(60), 3)
    W = rng.integers(0, 3, (20, 60))
    W[0] = 0
    W[1] = 0
    W[1, 5] = 4  # constant row -> range +-0.5
    got = histogram_like_numpy(v, W)
    for b in range(2, 20):
        ref, _ = np.histogram(np.repeat(v, W[b]), bins=50)
        np.testing.assert_array_equal(got[b], ref)
    np.testing.assert_array_equal(got[1], np.histogram(np.repeat(v, W[1]), bins=50)[0])
    assert got[0].sum() == 0


def test_official_hand_checked_case():
    # y = 1 only is not allowed (need both classes): use identical class-0 data in both groups
    sA1 = np.full(10, 0.3)  # own range -> all in the middle bin (25)
    sB1 = np.full(20, 0.7)
    s0 = np.repeat(np.linspace(0.1, 0.9, 30), 10)  # enough mass per bin to survive truncation
    s = np.concatenate([sA1, sB1, s0, s0])
    y = np.concatenate([np.ones(30), np.zeros(600)]).astype(int)
    g = np.concatenate([np.zeros(10), np.ones(20), np.zeros(300), np.ones(300)]).astype(int)
    vals = score_kl(y, s, sensitive_features=g, mode="official", reduction="none")
    # smoothed truncated histograms: A = [2, 3, 2] (sum 7), B = 20*kernel -> [1, 4, 7, 4, 1] (sum 17)
    pA = np.full(50, 1e-6)
    pA[24:27] += np.array([2, 3, 2]) / 7
    pB = np.full(50, 1e-6)
    pB[23:28] += np.array([1, 4, 7, 4, 1]) / 17
    kl_ab = np.sum(pA * np.log(pA / pB))
    kl_ba = np.sum(pB * np.log(pB / pA))
    np.testing.assert_allclose(vals, [kl_ab, kl_ba, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(vals, _reference_official(y, s, g), atol=1e-12)
    # the official bins are per-array: shifting B's scores does not change anything
    s_shift = s.copy()
    s_shift[10:30] = 0.1
    np.testing.assert_allclose(score_kl(y, s_shift, sensitive_features=g, mode="official", reduction="none"), vals, atol=1e-12)
    # the aligned KL sees the shift
    assert score_kl(y, s, sensitive_features=g) > 1.0


def test_official_truncation_can_erase_a_sparse_histogram():
    # 30 distinct scores over 50 bins: counts <= 1, smoothed 0.399 -> 0 everywhere -> undefined (NaN)
    s0 = np.linspace(0.1, 0.9, 30)
    s = np.concatenate([s0, s0, s0, s0])
    y = np.repeat([1, 1, 0, 0], 30)
    g = np.repeat([0, 1, 0, 1], 30)
    assert np.isnan(score_kl(y, s, sensitive_features=g, mode="official", reduction="none")).all()
    assert score_kl(y, s, sensitive_features=g) == pytest.approx(0.0, abs=1e-15)


@pytest.mark.parametrize("seed", range(3))
def test_official_matches_reference_and_bootstrap_is_batched(seed):
    rng = np.random.default_rng(seed)
    n = 400
    g = rng.integers(0, 2, n)
    y = rng.integers(0, 2, n)
    s = 1 / (1 + np.exp(-(rng.normal(size=n) + y + 0.5 * g)))
    np.testing.assert_allclose(score_kl(y, s, sensitive_features=g, mode="official", reduction="none"), _reference_official(y, s, g), atol=1e-12)
    res = bootstrap(score_kl, y, s, sensitive_features=g, n_boot=25, seed=seed, mode="official", reduction="none")
    loop = bootstrap(lambda a, b, *, sensitive_features: _reference_official(a, b, sensitive_features), y, s,
                     sensitive_features=g, n_boot=25, seed=seed)
    np.testing.assert_allclose(res.values, loop.values, atol=1e-12)


def test_aligned_zero_for_identical_distributions_and_symmetric():
    rng = np.random.default_rng(4)
    s = rng.random(100)
    y = rng.integers(0, 2, 100)
    s2 = np.concatenate([s, s])
    y2 = np.concatenate([y, y])
    g2 = np.repeat([0, 1], 100)
    assert score_kl(y2, s2, sensitive_features=g2) == pytest.approx(0.0, abs=1e-15)
    g = rng.integers(0, 2, 100)
    assert score_kl(y, s, sensitive_features=g) == pytest.approx(score_kl(y, s, sensitive_features=1 - g))
    assert score_kl(y, s, sensitive_features=g) > 0


def test_kl_bad_inputs():
    y = np.array([0, 1, 0, 1])
    g = np.array([0, 0, 1, 1])
    with pytest.raises(DebiaskitError, match=r"\[0, 1\]"):
        score_kl(y, np.array([0.1, 2.0, 0.3, 0.4]), sensitive_features=g)
    with pytest.raises(DebiaskitError, match="exactly 2"):
        score_kl(y, np.array([0.1, 0.2, 0.3, 0.4]), sensitive_features=np.array([0, 1, 2, 2]))
    with pytest.raises(DebiaskitError, match="mode"):
        score_kl(y, np.array([0.1, 0.2, 0.3, 0.4]), sensitive_features=g, mode="repo")
