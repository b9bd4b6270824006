"""Deterministic bias assignment of the LfF protocol (Nam et al. 2020; official ``make_dataset.py``).

Why deterministic: ``docs/methods_lff_disent.md`` detail 14; the Colored MNIST build is in ``docs/datasets.md``.

Within each class ``c`` the samples are taken **in dataset order** and cut into consecutive blocks, one per
bias value ``k = 0 .. K-1`` in that order. The aligned value ``k = c`` receives a fraction ``rho`` of the
class and every other value ``(1 - rho) / (K - 1)``. Block boundaries are the cumulative fractions times the
class size, rounded half up (``floor(x + 0.5)``), so the counts are exact and reproducible.

Training sets use ``rho = 1 - conflict_ratio``; the LfF test sets use ``rho = 1 / K`` (uniform).
"""

from __future__ import annotations

import numpy as np

from debiaskit.errors import DebiaskitError


def block_counts(n: int, proportions: np.ndarray) -> np.ndarray:
    """Sizes of the consecutive blocks for ``n`` items split by ``proportions`` (sum 1), rounded half up."""
    cum = np.floor(np.cumsum(np.asarray(proportions, dtype=np.float64)) * n + 0.5).astype(np.int64)
    cum[-1] = n
    return np.diff(np.concatenate([[0], cum]))


def assign_bias_by_order(targets: np.ndarray, *, num_bias: int, aligned_fraction: float) -> np.ndarray:
    """Bias value per sample, assigned per class by sample order (LfF ``make_dataset``).

    Args:
        targets: ``(N,)`` class labels in ``[0, num_bias)`` (class ``c`` is aligned with bias ``c``).
        num_bias: number of bias values ``K``.
        aligned_fraction: ``rho``, the fraction of each class that gets its aligned bias value.
    """
    if not 0.0 < aligned_fraction <= 1.0:
        raise DebiaskitError(f"aligned fraction must be in (0, 1], got {aligned_fraction}")
    targets = np.asarray(targets, dtype=np.int64)
    bias = np.empty_like(targets)
    other = (1.0 - aligned_fraction) / (num_bias - 1)
    for c in np.unique(targets):
        pos = np.flatnonzero(targets == c)
        props = np.full(num_bias, other)
        props[c] = aligned_fraction
        counts = block_counts(len(pos), props)
        bias[pos] = np.repeat(np.arange(num_bias), counts)
    return bias


def _largest_remainder(counts: np.ndarray, total: int, rng: np.random.Generator) -> np.ndarray:
    """Integer quotas proportional to ``counts`` that sum to ``total`` (ties broken at random)."""
    ideal = counts * (total / counts.sum()) if counts.sum() else counts.astype(float)
    quota = np.floor(ideal).astype(np.int64)
    rest = total - int(quota.sum())
    if rest > 0:
        frac = ideal - quota + rng.random(len(counts)) * 1e-9
        quota[np.argsort(-frac, kind="stable")[:rest]] += 1
    return np.minimum(quota, counts)


def stratified_holdout(
    cells: np.ndarray, strata: np.ndarray, *, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (kept, held_out) preserving the ratio of every *stratum* exactly.

    For each stratum ``s`` (e.g. aligned vs conflicting) exactly ``round(fraction * n_s)`` samples are held
    out, spread over the finer ``cells`` (e.g. classes) of that stratum by largest-remainder quotas, and drawn
    at random within each cell. Used to carve a validation split with the same bias ratio as training.
    Both index arrays are returned sorted (dataset order is preserved).
    """
    cells, strata = np.asarray(cells), np.asarray(strata)
    held = []
    for s in np.unique(strata):
        in_s = strata == s
        total = int(np.floor(fraction * in_s.sum() + 0.5))
        cell_ids = np.unique(cells[in_s])
        counts = np.array([np.count_nonzero(in_s & (cells == c)) for c in cell_ids])
        for c, q in zip(cell_ids, _largest_remainder(counts, total, rng)):
            if q:
                held.append(rng.choice(np.flatnonzero(in_s & (cells == c)), size=int(q), replace=False))
    held_idx = np.sort(np.concatenate(held)) if held else np.zeros(0, np.int64)
    mask = np.ones(len(cells), bool)
    mask[held_idx] = False
    return np.flatnonzero(mask), held_idx
