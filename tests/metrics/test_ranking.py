import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from debiaskit.errors import DebiaskitError
from debiaskit.metrics import MetricWarning, average_precision, average_precision_batched, mean_average_precision


@pytest.mark.parametrize("seed", range(5))
def test_ap_matches_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = 300
    y = rng.integers(0, 2, n)
    s = np.round(rng.random(n), 1 + seed % 3)  # many ties
    assert average_precision(y, s) == pytest.approx(average_precision_score(y, s), abs=1e-12)


def test_ap_torch_input_and_multilabel():
    rng = np.random.default_rng(1)
    Y = rng.integers(0, 2, (200, 4))
    S = rng.random((200, 4))
    per = average_precision(torch.as_tensor(Y), torch.as_tensor(S), average=None)
    ref = [average_precision_score(Y[:, j], S[:, j]) for j in range(4)]
    np.testing.assert_allclose(per, ref, atol=1e-12)
    assert mean_average_precision(Y, S) == pytest.approx(np.mean(ref))


def test_ap_batched_equals_repeated_samples():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 50)
    s = np.round(rng.random(50), 1)
    W = rng.integers(0, 3, (5, 50))
    got = average_precision_batched(y, s, counts=W)
    for b in range(5):
        idx = np.repeat(np.arange(50), W[b])
        assert got[b] == pytest.approx(average_precision_score(y[idx], s[idx]), abs=1e-12)


def test_ap_no_positives_is_nan_with_warning():
    with pytest.warns(MetricWarning, match="no positive"):
        assert np.isnan(average_precision(np.zeros(5), np.arange(5.0)))


def test_ap_bad_inputs():
    with pytest.raises(DebiaskitError, match="length mismatch"):
        average_precision([0, 1, 1], [0.1, 0.2])
    with pytest.raises(DebiaskitError, match="NaN"):
        average_precision([0, 1], [0.1, np.nan])
    with pytest.raises(DebiaskitError, match="binary"):
        average_precision([0, 2], [0.1, 0.3])
