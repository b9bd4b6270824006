"""α-balanced splits (Wang et al., ICCV 2019, §3; construction details in ``docs/leakage.md``).

Constraint: for every label y, ``1/α ≤ #(g=0, y) / #(g=1, y) ≤ α``.

* Single-label (imSitu): the exact per-label cap — keep ``min(m_y, α·w_y)`` samples of group 0 and
  ``min(w_y, α·m_y)`` of group 1 for label y. Which samples are kept inside a (label, group) cell is
  random (seeded) unless ``prefer`` lists indices to keep first. The authors' lists were drawn at random
  without a seed, so only the per-cell counts are reproducible; we match them for every verb of the
  imSitu train split, and ``prefer=shipped ids`` reproduces the shipped set exactly.
* Multi-label (COCO): a per-label cap is impossible because an image carries several labels. Greedy
  removal: start from everything; while some label violates the bound, take the most violating label
  (largest ratio, then largest excess), and remove one image of its over-represented group that carries
  it, preferring images whose removal creates no new violation on another label, then images that also
  carry other labels violated in the same direction, then images with fewer labels, then a random one
  (seeded). All labels are re-checked after each removal (consecutive removals for the same label are done
  in one vectorised step as long as the running counts keep every satisfied label within its bound; with
  balanced totals (α = 1) strictly one image per step, which keeps many more images). For α = 1 the total counts are equalised too (treated as one more
  "label" that every image carries). The authors' construction script is not published; ours gives the
  same guarantees (max ratio ≤ α) but not the same subsets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from debiaskit.errors import DebiaskitError
from debiaskit.leakage.balanced import as_binary_protected

__all__ = ["BalancedSplit", "balanced_split", "label_ratios"]


@dataclass
class BalancedSplit:
    """Kept indices (sorted) and a report of the achieved balance."""

    indices: np.ndarray
    alpha: float
    report: dict[str, Any] = field(default_factory=dict)


def label_ratios(labels: np.ndarray, protected: np.ndarray, *, multilabel: bool, num_labels: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-label counts of group 0 and group 1 and the ratio ``max(c0/c1, c1/c0)``.

    The ratio is ``inf`` when one count is 0 and the other is not, ``nan`` when both are 0.
    """
    g = np.asarray(protected)
    if multilabel:
        y = np.asarray(labels).astype(bool)
        c0, c1 = y[g == 0].sum(0), y[g == 1].sum(0)
    else:
        y = np.asarray(labels)
        k = num_labels or (int(y.max()) + 1 if y.size else 0)
        c0 = np.bincount(y[g == 0], minlength=k)
        c1 = np.bincount(y[g == 1], minlength=k)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.maximum(c0 / c1, c1 / c0)
    r = np.where((c0 == 0) & (c1 == 0), np.nan, r)
    return c0.astype(np.int64), c1.astype(np.int64), r


def _validate(labels: Any, protected: Any, alpha: float) -> tuple[np.ndarray, np.ndarray, bool]:
    if not np.isfinite(alpha) or alpha < 1:
        raise DebiaskitError(f"alpha must be >= 1 (the bound is 1/alpha <= ratio <= alpha), got {alpha}")
    try:
        y = np.asarray(labels)
    except ValueError:
        raise DebiaskitError("label vectors of inconsistent widths") from None
    if y.dtype == object:
        raise DebiaskitError("label vectors of inconsistent widths (ragged rows)")
    g = as_binary_protected(protected, what="balanced_split")
    if len(y) != len(g):
        raise DebiaskitError(f"{len(y)} label rows but {len(g)} protected values")
    if y.ndim == 1:
        if not np.issubdtype(y.dtype, np.integer) or (y.size and y.min() < 0):
            raise DebiaskitError("single-label targets must be non-negative integers")
        return y.astype(np.int64), g, False
    if y.ndim == 2:
        return y.astype(bool), g, True
    raise DebiaskitError(f"labels must be 1-D class ids or a 2-D multi-hot matrix, got shape {y.shape}")


def balanced_split(
    labels: Any, protected: Any, alpha: float, *, seed: int = 0, prefer: Any = None,
    balance_totals: bool | None = None,
) -> BalancedSplit:
    """Indices of an α-balanced subset (Wang et al. 2019: ``1/α ≤ #(g=0, y) / #(g=1, y) ≤ α`` for every label y).

    Args:
        labels: ``(N,)`` class ids (single-label: exact per-label cap) or ``(N, K)`` multi-hot (greedy).
        protected: binary protected attribute.
        alpha: bound ≥ 1 on every label's group ratio.
        seed: randomness for which samples are dropped.
        prefer: indices to keep in preference to others (e.g. a published split).
        balance_totals: multi-label only; also bound the total group ratio by α (default: only for α = 1,
            where it means equal totals, as in the published COCO α=1 splits).

    Returns:
        :class:`BalancedSplit` with sorted ``indices`` and ``report`` = group sizes before / after,
        per-label counts and achieved ratios, the achieved max ratio, removals, and the method.
    """
    y, g, multilabel = _validate(labels, protected, float(alpha))
    n = len(g)
    rng = np.random.default_rng(seed)
    keys = rng.random(n)
    if prefer is not None:
        pi = np.asarray(list(prefer) if isinstance(prefer, (set, frozenset)) else prefer, dtype=np.int64)
        if pi.size and (pi.min() < 0 or pi.max() >= n):
            raise DebiaskitError(f"prefer indices must be in [0, {n})")
        keys[pi] -= 1.0  # preferred samples sort first inside their cell / are removed last
    if multilabel:
        bt = (float(alpha) == 1.0) if balance_totals is None else bool(balance_totals)
        keep, removed_steps = _greedy(y, g, float(alpha), keys, bt)
        method = "greedy removal, all labels re-checked after each removal" + (", totals balanced" if bt else "")
    else:
        keep = _cap(y, g, float(alpha), keys)
        removed_steps = int(n - keep.sum())
        method = "exact per-label cap min(m, a*w) / min(w, a*m)"
    idx = np.flatnonzero(keep)
    k = y.shape[1] if multilabel else int(y.max()) + 1
    c0, c1, r = label_ratios(y[idx], g[idx], multilabel=multilabel, num_labels=k)
    b0, b1, rb = label_ratios(y, g, multilabel=multilabel, num_labels=k)
    finite = r[np.isfinite(r)]
    report = {
        "alpha": float(alpha),
        "method": method,
        "seed": seed,
        "size_before": int(n),
        "size": int(len(idx)),
        "group_sizes_before": [int((g == 0).sum()), int((g == 1).sum())],
        "group_sizes": [int((g[idx] == 0).sum()), int((g[idx] == 1).sum())],
        "removed": removed_steps,
        "max_ratio": float(finite.max()) if finite.size else float("nan"),
        "max_ratio_before": float(rb[np.isfinite(rb)].max()) if np.isfinite(rb).any() else float("nan"),
        "labels_dropped": int(((c0 + c1) == 0).sum() - ((b0 + b1) == 0).sum()),
        "per_label": {"count_0": c0.tolist(), "count_1": c1.tolist(),
                      "ratio": [None if not np.isfinite(v) else float(v) for v in r]},
    }
    return BalancedSplit(indices=idx, alpha=float(alpha), report=report)


def _cap(y: np.ndarray, g: np.ndarray, alpha: float, keys: np.ndarray) -> np.ndarray:
    k = int(y.max()) + 1 if y.size else 0
    c0 = np.bincount(y[g == 0], minlength=k)
    c1 = np.bincount(y[g == 1], minlength=k)
    cap = np.stack([np.minimum(c0, np.floor(alpha * c1)), np.minimum(c1, np.floor(alpha * c0))], 1)  # (k, 2)
    cell = y * 2 + g
    order = np.lexsort((keys, cell))
    sorted_cell = cell[order]
    start = np.searchsorted(sorted_cell, sorted_cell, side="left")
    rank = np.arange(len(order)) - start
    keep = np.zeros(len(y), bool)
    keep[order] = rank < cap.reshape(-1)[sorted_cell]
    return keep


def _greedy(y: np.ndarray, g: np.ndarray, alpha: float, keys: np.ndarray, balance_totals: bool
            ) -> tuple[np.ndarray, int]:
    yc = np.concatenate([y, np.ones((len(y), 1), bool)], 1) if balance_totals else y
    yi = yc.astype(np.int64)
    keep = np.ones(len(g), bool)
    # one-at-a-time removal when totals are balanced too (α = 1): batching there removes far more images
    batch = not balance_totals
    cnt = np.stack([yi[g == 0].sum(0), yi[g == 1].sum(0)]).astype(np.float64)  # (2, K)
    removed = 0
    rows = [np.flatnonzero(g == v) for v in (0, 1)]
    while True:
        over0 = cnt[0] > alpha * cnt[1]
        over1 = cnt[1] > alpha * cnt[0]
        viol = over0 | over1
        if not viol.any():
            break
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(over0, cnt[0] / cnt[1], cnt[1] / cnt[0])
        excess = np.where(over0, cnt[0] - alpha * cnt[1], cnt[1] - alpha * cnt[0])
        score = np.where(viol, ratio, -1.0)
        top = np.flatnonzero(score == score.max())
        lab = top[np.argmax(excess[top])]
        o = 0 if over0[lab] else 1
        u = 1 - o
        cand = rows[o][keep[rows[o]] & yc[rows[o], lab]]
        # removing one group-o image of label j breaks j if cnt[u, j] > alpha * (cnt[o, j] - 1) and j holds now
        fragile = (cnt[u] > alpha * (cnt[o] - 1)) & ~viol
        helps = cnt[o] > alpha * cnt[u]
        yc_c = yi[cand]
        breaks = yc_c @ fragile.astype(np.int64)
        helpful = yc_c @ helps.astype(np.int64)
        nlab = yc_c.sum(1)
        order = np.lexsort((keys[cand], nlab, -helpful, breaks))
        # Remove the best candidate; then, in preference order, as many further ones as the label still needs
        # while no currently satisfied label would be pushed past its bound (the running per-label removal
        # counts are checked against each label's slack, i.e. every label is re-checked after each removal).
        need = int(np.ceil(cnt[o, lab] - alpha * cnt[u, lab] - 1e-9))
        take = 1
        if batch and need > 1 and breaks[order[0]] == 0:
            holds = ~viol
            slack = np.floor(cnt[o] - cnt[u] / alpha + 1e-9)  # removals of group o that label j can absorb
            used = np.cumsum(yc_c[order[:need]][:, holds], axis=0)
            ok = (used <= slack[holds]).all(1)
            take = int(np.argmin(ok)) if not ok.all() else len(ok)
            take = max(1, take)
        chosen = cand[order[:take]]
        keep[chosen] = False
        cnt[o] -= yi[chosen].sum(0)
        removed += take
    return keep, removed
