"""Protected-balanced sampling and folded accuracy for the leakage protocol of Wang et al. (ICCV 2019).

Leakage is the accuracy of an attacker that predicts the (binary) protected attribute g from a label-space
vector, measured on a **g-balanced** held-out set so that chance is 50%. Every round re-draws balanced
subsets of train / val / test (Wang et al., ICCV 2019, §3; ``docs/leakage.md``): the paper's sizes are COCO
3,000+3,000 train and 1,500+1,500 val/test, imSitu 7,300+7,300 and 3,000+3,000. When a split holds fewer, all that balance allows are used
(``min(#g=0, #g=1)`` per group). Accuracy is *folded*: ``0.5 + |acc - 0.5|``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from debiaskit.errors import DebiaskitError

__all__ = ["PAPER_SIZES", "folded_accuracy", "as_binary_protected", "as_group_codes", "balanced_indices",
           "resolve_sizes"]

#: per-group sample sizes (train, val, test) of the paper's attacker subsets (Wang et al. 2019)
PAPER_SIZES: dict[str, tuple[int, int, int]] = {"coco": (3000, 1500, 1500), "imsitu": (7300, 3000, 3000)}


def folded_accuracy(acc: Any) -> Any:
    """Folded accuracy ``0.5 + |acc - 0.5|`` (Wang et al. 2019, §3); works on floats and arrays."""
    return 0.5 + np.abs(np.asarray(acc, dtype=np.float64) - 0.5) if np.ndim(acc) else 0.5 + abs(float(acc) - 0.5)


def as_binary_protected(protected: Any, *, what: str = "protected") -> np.ndarray:
    """Validate a protected attribute with exactly two values and code it as 0/1 (sorted values)."""
    g = np.asarray(protected).reshape(-1)
    if g.size == 0:
        raise DebiaskitError(f"{what}: no samples")
    vals, codes = np.unique(g, return_inverse=True)
    if len(vals) == 1:
        raise DebiaskitError(
            f"{what}: the protected attribute has a single value ({vals[0]!r} for all {g.size} samples); "
            "leakage needs both groups"
        )
    if len(vals) > 2:
        raise DebiaskitError(
            f"{what}: leakage needs a binary protected attribute, got {len(vals)} values "
            f"({', '.join(map(str, vals[:10]))}{', ...' if len(vals) > 10 else ''})"
        )
    return codes.astype(np.int64)


def as_group_codes(protected: Any, *, what: str = "protected") -> tuple[np.ndarray, int]:
    """Code a protected attribute with two or more values as ``0..G-1`` (sorted values); returns (codes, G).

    Extension beyond the paper (binary gender): with G > 2 groups (e.g. the 10 colours of Colored MNIST)
    the attacker is a G-way classifier on G-balanced subsets and leakage is its plain accuracy (chance 1/G).
    """
    g = np.asarray(protected).reshape(-1)
    if g.size == 0:
        raise DebiaskitError(f"{what}: no samples")
    vals, codes = np.unique(g, return_inverse=True)
    if len(vals) == 1:
        raise DebiaskitError(
            f"{what}: the protected attribute has a single value ({vals[0]!r} for all {g.size} samples); "
            "leakage needs at least two groups"
        )
    return codes.astype(np.int64), int(len(vals))


def resolve_sizes(sizes: str | tuple[int | None, int | None, int | None] | None) -> tuple[int | None, ...]:
    """``None`` (as many as balance allows), a preset name (``coco``/``imsitu``) or a (train, val, test) tuple."""
    if sizes is None:
        return (None, None, None)
    if isinstance(sizes, str):
        if sizes not in PAPER_SIZES:
            raise DebiaskitError(f"unknown size preset {sizes!r}; valid: {', '.join(PAPER_SIZES)} or 3 numbers")
        return PAPER_SIZES[sizes]
    t = tuple(sizes)
    if len(t) != 3 or any(v is not None and int(v) < 1 for v in t):
        raise DebiaskitError(f"sizes must be 3 positive per-group counts (train, val, test), got {sizes!r}")
    return tuple(None if v is None else int(v) for v in t)


def balanced_indices(
    protected: np.ndarray,
    n_per_group: int | None,
    *,
    rounds: int,
    rng: np.random.Generator,
    min_per_group: int = 2,
    what: str = "split",
) -> tuple[np.ndarray, int]:
    """Draw ``rounds`` independent protected-balanced subsets.

    Args:
        protected: 0/1 codes (from :func:`as_binary_protected`).
        n_per_group: samples per group; ``None`` or more than available → as many as balance allows.
        rounds: number of independent draws.
        rng: numpy generator (the only randomness).
        min_per_group: fewer than this in the smaller group is an error (message gives the counts).

    Returns:
        ``(indices (rounds, G·k) int64, k)``; row r holds k indices of group 0, then k of group 1, ...,
        each a uniform random subset without replacement (G = number of groups, 2 in the paper).
    """
    g = np.asarray(protected)
    n_groups = max(2, int(g.max()) + 1) if g.size else 2
    idx = [np.flatnonzero(g == v) for v in range(n_groups)]
    counts = [len(i) for i in idx]
    avail = min(counts)
    if avail < min_per_group:
        raise DebiaskitError(
            f"{what}: too few samples to balance the protected groups: "
            + ", ".join(f"{c} with value {v}" for v, c in enumerate(counts))
            + f" (need at least {min_per_group} per group)"
        )
    k = avail if n_per_group is None else min(int(n_per_group), avail)
    parts = []
    for ii in idx:
        order = np.argsort(rng.random((rounds, len(ii))), axis=1)[:, :k]
        parts.append(ii[order])
    return np.concatenate(parts, axis=1), k
