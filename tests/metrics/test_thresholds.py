import numpy as np
import pytest
from sklearn.metrics import f1_score

from debiaskit.metrics import apply_threshold, calibrated_threshold, f1_optimal_threshold


@pytest.mark.parametrize("seed", range(5))
def test_calibrated_threshold_gives_p_minus_1_positives_on_distinct_scores(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 200)
    s = rng.random(200)  # distinct almost surely
    assert len(np.unique(s)) == 200
    tau = calibrated_threshold(y, s)
    assert int((s > tau).sum()) == int(y.sum()) - 1
    assert int(apply_threshold(s, threshold=tau).sum()) == int(y.sum()) - 1


def test_calibrated_threshold_hand_case_and_multilabel():
    y = np.array([1, 0, 1, 0, 0])
    s = np.array([0.9, 0.8, 0.3, 0.2, 0.1])
    assert calibrated_threshold(y, s) == 0.8  # 2nd largest
    taus = calibrated_threshold(np.stack([y, 1 - y], 1), np.stack([s, s], 1))
    np.testing.assert_allclose(taus, [0.8, 0.3])


def test_f1_exact_is_optimal_over_all_cuts():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 150)
    s = np.round(rng.random(150) * 0.5 + 0.4 * y, 2)
    tau = f1_optimal_threshold(y, s)
    best = f1_score(y, s > tau)
    for t in np.unique(s):
        assert f1_score(y, s > t) <= best + 1e-12


def test_f1_official_stays_on_grid():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 300)
    s = np.clip(rng.random(300) * 0.6 + 0.3 * y, 0, 1)
    tau = f1_optimal_threshold(y, s, method="official")
    assert abs(tau * 100 - round(tau * 100)) < 1e-6
    assert f1_score(y, s > tau) >= f1_score(y, s > 0.5) - 1e-12
