"""Latent edits of Ramaswamy et al. (CVPR 2021): the paired z′, its ablations and extensions.

With unit normals w_t (target) and w_g (protected), intercepts b_t, b_g (so h(z) = wᵀz + b is the signed
distance to the hyperplane) and c = w_gᵀw_t, the paper's complementary latent is

    z′ = z − 2 (w_gᵀz + b_g) / (1 − c²) · (w_g − c·w_t)                                     (paper eq. for z′)

It keeps the target score, h_t(z′) = h_t(z), negates the protected score, h_g(z′) = −h_g(z), and is the
least-norm displacement doing so. Ablations (the paper's ablation of the edit; the official code's names
in brackets):

* ``z′_0``   [on_hyperplane]       z − h_g(z)/(1 − c²)·(w_g − c·w_t)   (onto the g-hyperplane, h_t kept)
* ``z′_g``   [perp]                z − 2 h_g(z)·w_g                    (reflect along w_g; h_t moves by −2c·h_g)
* ``z′_g,0`` [perp_on_hyperplane]  z − h_g(z)·w_g                      (project along w_g)

:func:`least_norm_edit` solves the general problem min ‖z′ − z‖ s.t. Wᵀz′ = r for K constraints
(z′ = z − W (WᵀW)⁻¹ (Wᵀz − r)); the paper's extensions (gender-dependent hyperplanes, two protected
attributes) and multi-valued protected attributes (one-vs-rest) are different (W, r). The official repo solves the
gender-dependent case iteratively in homogeneous coordinates, which is not exactly least-norm in z-space
(``docs/latent_aug.md`` detail 11); we use the closed form.

All functions accept NumPy arrays or torch tensors and return the same type (float64 for NumPy).
"""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np
import torch

from debiaskit.errors import DebiaskitError

__all__ = [
    "Hyperplane",
    "normalize_hyperplane",
    "least_norm_edit",
    "complementary_latent",
    "ablation_latents",
    "domain_dependent_latent",
    "two_protected_latents",
    "multivalued_protected_latent",
    "MIN_SIN2",
]

Array = TypeVar("Array", np.ndarray, torch.Tensor)
Hyperplane = tuple[Any, float]  # (w (d,), b)

#: refuse pairs with 1 − c² below this (|cos| > 0.99995, angle < ≈0.57°)
MIN_SIN2 = 1e-4


def _np(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def _like(x: np.ndarray, ref: Any) -> Any:
    if isinstance(ref, torch.Tensor):
        dtype = ref.dtype if ref.is_floating_point() else torch.float64
        return torch.from_numpy(np.ascontiguousarray(x)).to(device=ref.device, dtype=dtype)
    return x


def normalize_hyperplane(w: Any, b: float) -> tuple[np.ndarray, float]:
    """(w/‖w‖, b/‖w‖): h(z) = wᵀz + b becomes the signed Euclidean distance (docs/latent_aug.md detail 2)."""
    w = _np(w).reshape(-1)
    n = float(np.linalg.norm(w))
    if not np.isfinite(n) or n == 0.0:
        raise DebiaskitError("hyperplane normal has zero (or non-finite) norm; the SVM found no direction")
    return w / n, float(b) / n


def least_norm_edit(z: Array, W: Any, targets: Any) -> Array:
    """Least-norm edit: for each row z_i return argmin ‖z′ − z_i‖ subject to Wᵀz′ = targets_i.

    Args:
        z: (n, d) latents (NumPy or torch).
        W: (d, K) constraint normals (columns need not be unit or orthogonal, must be independent).
        targets: (n, K) (or (K,), broadcast) right-hand sides.

    Returns z′ = z − W (WᵀW)⁻¹ (Wᵀz − r) (the Moore–Penrose solution), same type as ``z``.
    """
    zz = _np(z)
    if zz.ndim != 2:
        raise DebiaskitError(f"least_norm_edit: z must be (n, d), got shape {zz.shape}")
    Wn = _np(W)
    if Wn.ndim == 1:
        Wn = Wn[:, None]
    if Wn.shape[0] != zz.shape[1]:
        raise DebiaskitError(f"least_norm_edit: W has {Wn.shape[0]} rows but z has dimension {zz.shape[1]}")
    r = _np(targets)
    if r.ndim == 1:
        r = np.broadcast_to(r[None, :] if r.shape[0] == Wn.shape[1] else r[:, None], (zz.shape[0], Wn.shape[1]))
    if r.shape != (zz.shape[0], Wn.shape[1]):
        raise DebiaskitError(f"least_norm_edit: targets must be (n, K) = {(zz.shape[0], Wn.shape[1])}, got {r.shape}")
    gram = Wn.T @ Wn
    sv = np.linalg.svd(Wn, compute_uv=False)
    if sv[-1] < 1e-8 * max(sv[0], 1e-300):
        raise DebiaskitError(
            f"least_norm_edit: the {Wn.shape[1]} constraint normals are linearly dependent (rank-deficient W); "
            "two hyperplanes are (nearly) parallel"
        )
    resid = zz @ Wn - r  # (n, K)
    coef = np.linalg.solve(gram, resid.T).T  # (n, K)
    return _like(zz - coef @ Wn.T, z)


def _check_pair(w_t: np.ndarray, w_g: np.ndarray, min_sin2: float) -> float:
    c = float(w_g @ w_t)
    if 1.0 - c * c < min_sin2:
        ang = float(np.degrees(np.arccos(min(1.0, abs(c)))))
        raise DebiaskitError(
            f"target and protected hyperplanes are nearly parallel (cos = {c:+.6f}, angle {ang:.3f}°, "
            f"1 − c² = {1 - c * c:.2e} < {min_sin2:g}): the protected score cannot be flipped while the target "
            "score is kept; the classifiers likely predict the same thing in generated images"
        )
    return c


def complementary_latent(
    z: Array, w_t: Any, b_t: float, w_g: Any, b_g: float, *, min_sin2: float = MIN_SIN2
) -> Array:
    """The paper's z′: keeps h_t, negates h_g. (w, b) pairs are unit-normalised first."""
    wt, _ = normalize_hyperplane(w_t, b_t)
    wg, bg = normalize_hyperplane(w_g, b_g)
    c = _check_pair(wt, wg, min_sin2)
    zz = _np(z)
    hg = zz @ wg + bg
    out = zz - (2.0 * hg / (1.0 - c * c))[:, None] * (wg - c * wt)[None, :]
    return _like(out, z)


def ablation_latents(
    z: Array, w_t: Any, b_t: float, w_g: Any, b_g: float, *, min_sin2: float = MIN_SIN2
) -> dict[str, Array]:
    """All four edits of the paper's ablation: ``z_prime``, ``z_prime_0``, ``z_prime_g``, ``z_prime_g0``."""
    wt, _ = normalize_hyperplane(w_t, b_t)
    wg, bg = normalize_hyperplane(w_g, b_g)
    c = _check_pair(wt, wg, min_sin2)
    zz = _np(z)
    hg = (zz @ wg + bg)[:, None]
    u = (wg - c * wt)[None, :] / (1.0 - c * c)
    out = {
        "z_prime": zz - 2.0 * hg * u,
        "z_prime_0": zz - hg * u,
        "z_prime_g": zz - 2.0 * hg * wg[None, :],
        "z_prime_g0": zz - hg * wg[None, :],
    }
    return {k: _like(v, z) for k, v in out.items()}


def domain_dependent_latent(
    z: Array,
    g_hat: Any,
    w_g: Any,
    b_g: float,
    w_t_by_g: tuple[tuple[Any, float], tuple[Any, float]],
) -> Array:
    """Gender-dependent target hyperplanes (the paper's domain-dependent extension).

    For z with hallucinated protected value k, require h_g(z′) = −h_g(z) and h_{t|1−k}(z′) = h_{t|k}(z);
    closed-form least-norm solution."""
    wg, bg = normalize_hyperplane(w_g, b_g)
    planes = [normalize_hyperplane(w, b) for (w, b) in w_t_by_g]
    zz = _np(z)
    k = _np(g_hat).astype(int).reshape(-1)
    if k.shape[0] != zz.shape[0] or not np.isin(k, (0, 1)).all():
        raise DebiaskitError("domain_dependent_latent: g_hat must be 0/1 with one entry per z")
    out = np.empty_like(zz)
    for kk in (0, 1):
        m = k == kk
        if not m.any():
            continue
        w_src, b_src = planes[kk]
        w_dst, b_dst = planes[1 - kk]
        _check_pair(w_dst, wg, MIN_SIN2)
        W = np.stack([wg, w_dst], axis=1)
        r = np.stack([-(zz[m] @ wg) - 2.0 * bg, zz[m] @ w_src + b_src - b_dst], axis=1)
        out[m] = least_norm_edit(zz[m], W, r)
    return _like(out, z)


def two_protected_latents(
    z: Array, w_t: Any, b_t: float, protected: tuple[tuple[Any, float], tuple[Any, float]]
) -> dict[str, Array]:
    """Two protected attributes (the paper's extension, e.g. Male and Young): three edits per z, target score kept.

    Returns ``flip_1`` (flip the first, keep the second), ``flip_2`` (flip the second, keep the first),
    ``flip_both``.
    """
    wt, bt = normalize_hyperplane(w_t, b_t)
    (w1, b1), (w2, b2) = (normalize_hyperplane(w, b) for (w, b) in protected)
    zz = _np(z)
    W = np.stack([wt, w1, w2], axis=1)
    h = zz @ W + np.array([bt, b1, b2])[None, :]
    b = np.array([bt, b1, b2])[None, :]
    out = {}
    for name, sign in (("flip_1", (1, -1, 1)), ("flip_2", (1, 1, -1)), ("flip_both", (1, -1, -1))):
        out[name] = _like(least_norm_edit(zz, W, h * np.array(sign)[None, :] - b), z)
    return out


def multivalued_protected_latent(
    z: Array,
    w_t: Any,
    b_t: float,
    protected_planes: list[tuple[Any, float]],
    source: Any,
    dest: Any,
) -> Array:
    """Multi-valued protected attribute with one-vs-rest hyperplanes h_1..h_V: move each z from value
    ``source`` to value ``dest`` while keeping the target score.

    Constraints (least-norm, K = V + 1): h_t(z′) = h_t(z); h_dest(z′) = h_src(z) and h_src(z′) = h_dest(z)
    (the two one-vs-rest scores are swapped, so z′ scores on ``dest`` as z did on ``source``); every other
    h_v(z′) = h_v(z). For V = 2 with h_2 = −h_1 this reduces to the binary flip (use
    :func:`complementary_latent` there: the two normals are then parallel).
    """
    wt, bt = normalize_hyperplane(w_t, b_t)
    planes = [normalize_hyperplane(w, b) for (w, b) in protected_planes]
    V = len(planes)
    if V < 2:
        raise DebiaskitError("multivalued_protected_latent needs at least two protected values")
    zz = _np(z)
    src = _np(source).astype(int).reshape(-1)
    dst = _np(dest).astype(int).reshape(-1)
    if src.shape[0] == 1:
        src = np.full(zz.shape[0], src[0])
    if dst.shape[0] == 1:
        dst = np.full(zz.shape[0], dst[0])
    if src.shape[0] != zz.shape[0] or dst.shape[0] != zz.shape[0]:
        raise DebiaskitError("multivalued_protected_latent: source/dest must be scalars or one per z")
    if ((src < 0) | (src >= V) | (dst < 0) | (dst >= V)).any():
        raise DebiaskitError(f"multivalued_protected_latent: protected values must be in [0, {V})")
    W = np.stack([wt] + [w for w, _ in planes], axis=1)  # (d, V+1)
    b = np.array([bt] + [bb for _, bb in planes])
    h = zz @ W + b[None, :]  # current scores
    r = h.copy()
    rows = np.arange(zz.shape[0])
    r[rows, 1 + dst] = h[rows, 1 + src]
    r[rows, 1 + src] = h[rows, 1 + dst]
    return _like(least_norm_edit(zz, W, r - b[None, :]), z)
