import numpy as np
import pytest
import torch

from debiaskit.errors import DebiaskitError
from debiaskit.metrics import (
    bias_amplification_cvpr21,
    bias_amplification_directional,
    bias_amplification_zhao,
    bootstrap,
)


def _brute_directional(A, T, P, direction, Aref=None, Tref=None):
    """Wang & Russakovsky 2021 eq. (directional BA), written as loops over (a, t) and samples."""
    Aref = A if Aref is None else Aref
    Tref = T if Tref is None else Tref
    n, nA = A.shape
    nT = T.shape[1]
    total = 0.0
    for a in range(nA):
        for t in range(nT):
            n_r = len(Aref)
            p_at = sum(1 for i in range(n_r) if Aref[i, a] and Tref[i, t]) / n_r
            p_a = sum(Aref[:, a]) / n_r
            p_t = sum(Tref[:, t]) / n_r
            y_at = 1 if p_at > p_a * p_t else 0
            if direction == "a->t":
                den = sum(A[:, a])
                d = (sum(P[i, t] for i in range(n) if A[i, a]) - sum(T[i, t] for i in range(n) if A[i, a])) / den
            else:
                den = sum(T[:, t])
                d = (sum(P[i, a] for i in range(n) if T[i, t]) - sum(A[i, a] for i in range(n) if T[i, t])) / den
            total += y_at * d + (1 - y_at) * (-d)
    return total / (nA * nT)


def _no_ties(A, T):
    n = len(A)
    c = A.T.astype(int) @ T.astype(int)
    return not (n * c == np.outer(A.sum(0), T.sum(0))).any()


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("direction", ["a->t", "t->a"])
def test_directional_matches_brute_force_paper_formula(seed, direction):
    rng = np.random.default_rng(seed)
    n, nA, nT = 97, 3, 4
    A = (rng.random((n, nA)) < 0.4).astype(int)
    A[:3] = 1
    T = (rng.random((n, nT)) < 0.3 + 0.3 * A[:, :1]).astype(int)
    T[:3] = 1
    assert _no_ties(A, T)
    P = ((T if direction == "a->t" else A) ^ (rng.random((n, nT if direction == "a->t" else nA)) < 0.2)).astype(int)
    P[:3] = 1
    got = bias_amplification_directional(T, P, sensitive_features=A, direction=direction)
    assert got == pytest.approx(_brute_directional(A, T, P, direction), abs=1e-12)


def test_directional_reference_labels_used_for_indicator():
    rng = np.random.default_rng(7)
    A = (rng.random((60, 2)) < 0.5).astype(int)
    T = (rng.random((60, 3)) < 0.5).astype(int)
    P = (rng.random((60, 3)) < 0.5).astype(int)
    Ar = (rng.random((80, 2)) < 0.5).astype(int)
    Tr = (rng.random((80, 3)) < 0.3 + 0.4 * Ar[:, :1]).astype(int)
    assert _no_ties(Ar, Tr)
    got = bias_amplification_directional(T, P, sensitive_features=A, sensitive_features_ref=Ar, y_true_ref=Tr)
    assert got == pytest.approx(_brute_directional(A, T, P, "a->t", Ar, Tr), abs=1e-12)


def _cvpr_brute(y, p, g):
    """½ Σ_g s_1g (P(ŷ=1|g) − P(y=1|g)) (the 2-cell form of the CVPR 2021 BA)."""
    out = 0.0
    for k in (0, 1):
        s = np.sign(np.mean((y == 1) & (g == k)) - np.mean(y == 1) * np.mean(g == k))
        out += s * (p[g == k].mean() - y[g == k].mean())
    return out / 2


@pytest.mark.parametrize("seed", range(6))
def test_cvpr21_binary_form_is_the_special_case(seed):
    rng = np.random.default_rng(seed)
    n = 300
    g = rng.integers(0, 2, n)
    y = (rng.random(n) < 0.3 + 0.3 * g).astype(int)
    p = (rng.random(n) < 0.25 + 0.45 * g).astype(int)
    a = bias_amplification_cvpr21(y, p, sensitive_features=g)
    assert a == pytest.approx(bias_amplification_directional(y, p, sensitive_features=g, direction="a->t"), abs=1e-12)
    assert a == pytest.approx(_cvpr_brute(y, p, g), abs=1e-12)
    # same numbers through torch
    assert bias_amplification_cvpr21(torch.as_tensor(y), torch.as_tensor(p),
                                     sensitive_features=torch.as_tensor(g)) == pytest.approx(a)


def test_ba_sanity_cases():
    rng = np.random.default_rng(0)
    g = rng.integers(0, 2, 200)
    y = (rng.random(200) < 0.3 + 0.4 * g).astype(int)
    assert bias_amplification_cvpr21(y, y, sensitive_features=g) == 0.0  # predictions == labels
    # independent target and protected in GT -> indicator 0 -> BA 0
    g2 = np.array([0, 0, 1, 1] * 25)
    y2 = np.array([0, 1, 0, 1] * 25)
    p2 = rng.integers(0, 2, 100)
    assert bias_amplification_cvpr21(y2, p2, sensitive_features=g2) == 0.0
    # predicting the majority class within each group amplifies
    p3 = g.copy()
    assert bias_amplification_cvpr21(y, p3, sensitive_features=g) > 0


def _zhao_brute(A, T, P):
    G, O = A.shape[1], T.shape[1]
    total = 0.0
    for o in range(O):
        c = [sum(1 for i in range(len(A)) if A[i, k] and T[i, o]) for k in range(G)]
        ct = [sum(1 for i in range(len(A)) if A[i, k] and P[i, o]) for k in range(G)]
        for k in range(G):
            b_star = c[k] / sum(c)
            if b_star > 1 / G:
                total += ct[k] / sum(ct) - b_star
    return total / O


def test_zhao_matches_brute_force_and_is_zero_for_perfect_predictions():
    rng = np.random.default_rng(11)
    n = 120
    gv = rng.integers(0, 3, n)
    A = np.eye(3, dtype=int)[gv]
    T = (rng.random((n, 4)) < 0.3 + 0.15 * gv[:, None]).astype(int)
    P = (T ^ (rng.random((n, 4)) < 0.25)).astype(int)
    assert bias_amplification_zhao(T, P, sensitive_features=gv) == pytest.approx(_zhao_brute(A, T, P), abs=1e-12)
    assert bias_amplification_zhao(T, T, sensitive_features=A) == 0.0


def test_ba_bootstrap_batched_equals_loop():
    rng = np.random.default_rng(3)
    g = rng.integers(0, 2, 80)
    y = (rng.random(80) < 0.3 + 0.3 * g).astype(int)
    p = (rng.random(80) < 0.3 + 0.3 * g).astype(int)
    fast = bootstrap(bias_amplification_cvpr21, y, p, sensitive_features=g, n_boot=30, seed=5).values

    def plain(y_, p_, *, sensitive_features):
        return bias_amplification_cvpr21(y_, p_, sensitive_features=sensitive_features)

    slow = bootstrap(plain, y, p, sensitive_features=g, n_boot=30, seed=5).values
    np.testing.assert_allclose(fast, slow, atol=1e-12)
    fast_d = bootstrap(bias_amplification_directional, y, p, sensitive_features=g, n_boot=30, seed=5).values
    np.testing.assert_allclose(fast_d, slow, atol=1e-12)


def test_ba_bad_inputs():
    with pytest.raises(DebiaskitError, match="direction"):
        bias_amplification_directional([0, 1], [0, 1], sensitive_features=[0, 1], direction="sideways")
    with pytest.raises(DebiaskitError, match="exactly 2"):
        bias_amplification_cvpr21([0, 1, 1], [0, 1, 1], sensitive_features=[0, 1, 2])
    with pytest.raises(DebiaskitError, match="length mismatch"):
        bias_amplification_directional([0, 1], [0, 1], sensitive_features=[0, 1, 1])
