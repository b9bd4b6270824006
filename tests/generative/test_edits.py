"""Latent edits of Ramaswamy et al. (CVPR 2021) and their extensions.

Invariants, ablation formulas, least-norm equivalence, refusals.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from debiaskit.errors import DebiaskitError
from debiaskit.generative.edits import (
    ablation_latents,
    complementary_latent,
    domain_dependent_latent,
    least_norm_edit,
    multivalued_protected_latent,
    normalize_hyperplane,
    two_protected_latents,
)


def _unit(rng, d):
    v = rng.normal(size=d)
    return v / np.linalg.norm(v)


@pytest.mark.parametrize("d", [2, 16, 512])
def test_zprime_keeps_target_negates_protected(d):
    rng = np.random.default_rng(d)
    for _ in range(5):
        wt, wg = _unit(rng, d), _unit(rng, d)
        bt, bg = rng.normal(), rng.normal()
        z = rng.normal(size=(200, d))
        zp = complementary_latent(z, wt, bt, wg, bg)
        np.testing.assert_allclose(zp @ wt + bt, z @ wt + bt, atol=1e-6)
        np.testing.assert_allclose(zp @ wg + bg, -(z @ wg + bg), atol=1e-6)
        # equals the general least-norm solver with W = [w_t, w_g]
        W = np.stack([wt, wg], 1)
        r = np.stack([z @ wt, -(z @ wg) - 2 * bg], 1)
        np.testing.assert_allclose(zp, least_norm_edit(z, W, r), atol=1e-9)
        # equals the official code's normalised-direction form (docs/latent_aug.md detail 1): u = (w_g − c w_t)/sinθ
        c = wg @ wt
        u = (wg - c * wt) / np.linalg.norm(wg - c * wt)
        zp2 = z - (2 * (z @ wg + bg) / np.sqrt(1 - c * c))[:, None] * u[None]
        np.testing.assert_allclose(zp, zp2, atol=1e-9)


def test_zprime_identity_on_protected_hyperplane_and_unnormalised_inputs():
    rng = np.random.default_rng(0)
    wt, wg = _unit(rng, 8), _unit(rng, 8)
    bg = 0.7
    z = rng.normal(size=(10, 8))
    z0 = z - (z @ wg + bg)[:, None] * wg[None]  # h_g(z0) = 0
    np.testing.assert_allclose(complementary_latent(z0, wt, 0.3, wg, bg), z0, atol=1e-12)
    # scaling (w, b) by a positive factor changes nothing (normalisation, docs/latent_aug.md detail 2)
    np.testing.assert_allclose(
        complementary_latent(z, 3 * wt, 0.9, 5 * wg, 5 * bg), complementary_latent(z, wt, 0.3, wg, bg), atol=1e-12
    )


def test_ablation_formulas():
    rng = np.random.default_rng(1)
    d = 12
    wt, wg = _unit(rng, d), _unit(rng, d)
    bt, bg = 0.2, -0.4
    z = rng.normal(size=(50, d))
    out = ablation_latents(z, wt, bt, wg, bg)
    ht, hg = z @ wt + bt, z @ wg + bg
    c = wg @ wt
    np.testing.assert_allclose(out["z_prime"], complementary_latent(z, wt, bt, wg, bg), atol=1e-12)
    # z'_0: onto the g-hyperplane, target kept
    np.testing.assert_allclose(out["z_prime_0"] @ wg + bg, 0, atol=1e-9)
    np.testing.assert_allclose(out["z_prime_0"] @ wt + bt, ht, atol=1e-9)
    # z'_g = z − 2 h_g w_g: h_g negated, h_t moves by exactly −2 h_g c (the z′_g ablation formula)
    np.testing.assert_allclose(out["z_prime_g"], z - 2 * hg[:, None] * wg, atol=1e-12)
    np.testing.assert_allclose(out["z_prime_g"] @ wg + bg, -hg, atol=1e-9)
    np.testing.assert_allclose(out["z_prime_g"] @ wt + bt - ht, -2 * hg * c, atol=1e-9)
    # z'_{g,0} = z − h_g w_g
    np.testing.assert_allclose(out["z_prime_g0"], z - hg[:, None] * wg, atol=1e-12)
    np.testing.assert_allclose(out["z_prime_g0"] @ wg + bg, 0, atol=1e-9)


def test_torch_inputs_round_trip():
    rng = np.random.default_rng(2)
    wt, wg = _unit(rng, 6), _unit(rng, 6)
    z = rng.normal(size=(7, 6))
    zt = torch.from_numpy(z).float()
    out = complementary_latent(zt, torch.from_numpy(wt), 0.1, torch.from_numpy(wg), -0.2)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), complementary_latent(z, wt, 0.1, wg, -0.2), atol=1e-5)
    W = torch.from_numpy(np.stack([wt, wg], 1))
    r = torch.zeros(7, 2, dtype=torch.float64)
    ln = least_norm_edit(zt.double(), W, r)
    assert isinstance(ln, torch.Tensor)
    np.testing.assert_allclose((ln @ W).numpy(), 0, atol=1e-10)


def test_least_norm_is_minimal_and_general():
    rng = np.random.default_rng(3)
    d, K, n = 10, 4, 30
    W = rng.normal(size=(d, K))
    z = rng.normal(size=(n, d))
    r = rng.normal(size=(n, K))
    zp = least_norm_edit(z, W, r)
    np.testing.assert_allclose(zp @ W, r, atol=1e-9)
    # the displacement lies in span(W) → minimal (any other solution adds a null-space component)
    delta = zp - z
    proj = delta @ W @ np.linalg.solve(W.T @ W, W.T)
    np.testing.assert_allclose(proj, delta, atol=1e-9)
    # compare with numpy lstsq per row (minimum-norm solution of Wᵀ δ = r − Wᵀz)
    for i in range(3):
        ref = np.linalg.lstsq(W.T, r[i] - W.T @ z[i], rcond=None)[0]
        np.testing.assert_allclose(delta[i], ref, atol=1e-9)


def test_refuses_parallel_and_degenerate():
    rng = np.random.default_rng(4)
    w = _unit(rng, 8)
    z = rng.normal(size=(3, 8))
    with pytest.raises(DebiaskitError, match="nearly parallel"):
        complementary_latent(z, w, 0.0, w + 1e-5 * _unit(rng, 8), 0.0)
    with pytest.raises(DebiaskitError, match="nearly parallel"):
        complementary_latent(z, w, 0.0, -w, 0.0)
    with pytest.raises(DebiaskitError, match="linearly dependent"):
        least_norm_edit(z, np.stack([w, 2 * w], 1), np.zeros((3, 2)))
    with pytest.raises(DebiaskitError, match="zero"):
        normalize_hyperplane(np.zeros(8), 1.0)


def test_domain_dependent_and_two_protected():
    rng = np.random.default_rng(5)
    d = 16
    wg, w0, w1, wt, wy = (_unit(rng, d) for _ in range(5))
    bg, b0, b1, bt, by = rng.normal(size=5)
    z = rng.normal(size=(40, d))
    g_hat = (z @ wg + bg > 0).astype(int)
    zp = domain_dependent_latent(z, g_hat, wg, bg, ((w0, b0), (w1, b1)))
    np.testing.assert_allclose(zp @ wg + bg, -(z @ wg + bg), atol=1e-9)
    src = np.where(g_hat[:, None] == 0, (z @ w0 + b0)[:, None], (z @ w1 + b1)[:, None])[:, 0]
    dst = np.where(g_hat == 0, zp @ w1 + b1, zp @ w0 + b0)
    np.testing.assert_allclose(dst, src, atol=1e-9)
    out = two_protected_latents(z, wt, bt, ((wg, bg), (wy, by)))
    ht, h1, h2 = z @ wt + bt, z @ wg + bg, z @ wy + by
    for name, s1, s2 in (("flip_1", -1, 1), ("flip_2", 1, -1), ("flip_both", -1, -1)):
        np.testing.assert_allclose(out[name] @ wt + bt, ht, atol=1e-9)
        np.testing.assert_allclose(out[name] @ wg + bg, s1 * h1, atol=1e-9)
        np.testing.assert_allclose(out[name] @ wy + by, s2 * h2, atol=1e-9)


def test_multivalued_protected_hits_targets():
    rng = np.random.default_rng(6)
    d, V, n = 20, 4, 60
    wt = _unit(rng, d)
    planes = [(_unit(rng, d), float(rng.normal())) for _ in range(V)]
    z = rng.normal(size=(n, d))
    H = np.stack([z @ w + b for w, b in planes], 1)
    src = H.argmax(1)  # hallucinated protected value = best one-vs-rest score
    dst = (src + 1 + rng.integers(0, V - 1, size=n)) % V
    zp = multivalued_protected_latent(z, wt, 0.5, planes, src, dst)
    Hp = np.stack([zp @ w + b for w, b in planes], 1)
    np.testing.assert_allclose(zp @ wt, z @ wt, atol=1e-9)  # target kept
    rows = np.arange(n)
    np.testing.assert_allclose(Hp[rows, dst], H[rows, src], atol=1e-9)
    np.testing.assert_allclose(Hp[rows, src], H[rows, dst], atol=1e-9)
    assert (Hp.argmax(1) == dst).all()  # the edited z is now classified as the destination value
    others = np.ones((n, V), bool)
    others[rows, src] = others[rows, dst] = False
    np.testing.assert_allclose(Hp[others], H[others], atol=1e-9)


def test_fit_hyperplane_recovers_direction_and_reports_accuracy():
    from debiaskit.generative.hyperplanes import fit_hyperplane

    rng = np.random.default_rng(7)
    w = _unit(rng, 5)
    z = rng.normal(size=(600, 5))
    y = (z @ w + 0.3 > 0).astype(int)
    hp = fit_hyperplane(z[:400], y[:400], z[400:], y[400:], attribute="A")
    assert abs(np.linalg.norm(hp.w) - 1) < 1e-12 and hp.w @ w > 0.98
    assert hp.heldout_accuracy > 0.95 and hp.heldout_balanced_accuracy > 0.95
    assert hp.n_fit == 400 and hp.positives_fit == int(y[:400].sum())
    with pytest.raises(DebiaskitError, match="constant"):
        fit_hyperplane(z, np.ones(600, int), z, y, attribute="A")
