"""KL divergence between the score distributions of two protected groups, per true class.

Ramaswamy et al. (CVPR 2021, §5; following Chen et al. UAI 2020 "threshold-invariant fair
classification") compare, for each true class y ∈ {1, 0}, the scores of group 0 (A) and group 1 (B).

``mode="official"`` reproduces the gan-debiasing code exactly:
  histogram each array with 50 bins over **its own** min..max range (``np.histogram(x, bins=50)``, so
  the bins of A and B are not aligned), smooth each count vector with ``scipy.ndimage.gaussian_filter(
  counts, 1)`` (σ=1, radius 4, mode 'reflect') whose output keeps the **integer** dtype (values are
  truncated), normalise to sum 1, add 1e-6 without renormalising, and compute KL(A‖B) and KL(B‖A) with
  KL(p‖q) = Σ_{p≠0} p log(p/q). The paper reports the median over 500 bootstraps of the pooled four
  values (both directions × both classes): ``bootstrap(score_kl, ..., mode="official", reduction="none",
  pool=True)``.

``mode="aligned"`` (our default) fixes what makes the official number hard to interpret: both groups
use the **same** 50 bins on [0, 1] (scores must be probabilities), smoothing is done in floating point
(σ=1, reflect), each histogram gets +1e-6 and is renormalised, and the value is the symmetric KL
½[KL(A‖B) + KL(B‖A)], averaged over the two classes. With misaligned bins the official KL compares bin
*indices* of different score ranges (two groups with shifted score distributions of the same shape get
KL ≈ 0), and integer truncation discards most of the mass of small groups; the aligned KL is 0 exactly
when the smoothed histograms coincide and is comparable across models. Official numbers are therefore
not comparable with aligned ones (gan-debiasing issue #10: a re-run gave KL ≈ 0.02 against category means
≈ 1 in the paper). See docs/metrics.md.

``reduction="mean"`` returns the mean of the four directional values (for aligned mode that is the
class-averaged symmetric KL); ``"none"`` returns them as ``[KL_y1(A‖B), KL_y1(B‖A), KL_y0(A‖B), KL_y0(B‖A)]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from debiaskit.errors import DebiaskitError
from debiaskit.metrics._batched import CellIndex, _key, as_resamples, batched, cumsum_counts, ones_weights
from debiaskit.metrics._validation import ArrayLike, check_binary, check_groups, check_lengths, check_scores, group_name, warn

__all__ = ["score_kl", "gaussian_smooth_like_scipy", "histogram_like_numpy", "N_BINS", "EPS"]

N_BINS = 50
EPS = 1e-6
_CHUNK_ELEMENTS = 1 << 23  # count-matrix entries per chunk: few NumPy calls at small n, bounded memory at large n
_SIGMA = 1.0
_RADIUS = 4  # scipy: int(truncate * sigma + 0.5) with truncate = 4


def _kernel() -> np.ndarray:
    x = np.arange(-_RADIUS, _RADIUS + 1)
    phi = np.exp(-0.5 / (_SIGMA * _SIGMA) * x**2)
    return phi / phi.sum()


_KERNEL = _kernel()


def gaussian_smooth_like_scipy(counts: np.ndarray, *, integer: bool) -> np.ndarray:
    """σ=1 Gaussian smoothing along the last axis, bit-compatible with ``scipy.ndimage.gaussian_filter1d``.

    Same kernel, 'reflect' boundary (half-sample symmetric) and summation order as scipy's symmetric
    correlation loop; ``integer=True`` truncates towards zero as scipy does for integer input.
    """
    x = np.asarray(counts, dtype=np.float64)
    pad = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(_RADIUS, _RADIUS)], mode="symmetric")
    L = x.shape[-1]
    acc = x * _KERNEL[_RADIUS]
    for j in range(_RADIUS, 0, -1):
        left = pad[..., _RADIUS - j : _RADIUS - j + L]
        right = pad[..., _RADIUS + j : _RADIUS + j + L]
        acc = acc + (left + right) * _KERNEL[_RADIUS - j]
    return np.trunc(acc) if integer else acc


def _first_nonzero(Ws: np.ndarray, *, last: bool = False) -> np.ndarray:
    """Column of the first (or last) non-zero entry per row (0 for an all-zero row).

    Under resampling the first present sample is almost always among the first few columns, so a short
    window is checked first and only rows without a hit are scanned fully.
    """
    B, m = Ws.shape
    k = min(m, 64)
    win = Ws[:, m - k :][:, ::-1] if last else Ws[:, :k]
    nz = win != 0
    i = nz.argmax(1)
    if last:
        i = m - 1 - i
    for r in np.flatnonzero(~nz.any(1)):
        hit = np.flatnonzero(Ws[r])
        i[r] = (hit[-1] if last else hit[0]) if hit.size else 0
    return i


def _hist_from_cumsum(v: np.ndarray, Ws: np.ndarray, C: np.ndarray) -> np.ndarray:
    """50-bin histograms per row over that row's own min..max; ``v`` sorted, ``C`` = row cumsums of ``Ws``."""
    B, m = Ws.shape
    out = np.zeros((B, N_BINS))
    if m == 0:
        return out
    has = C[:, -1] > 0
    first = v[_first_nonzero(Ws)]
    last = v[_first_nonzero(Ws, last=True)]
    same = first == last
    first = np.where(same, first - 0.5, first)
    last = np.where(same, last + 0.5, last)
    step = (last - first) / N_BINS
    edges = np.arange(N_BINS + 1, dtype=np.float64)[None, :] * step[:, None] + first[:, None]
    edges[:, -1] = last
    pos = np.searchsorted(v, edges.ravel(), side="left").reshape(B, N_BINS + 1)
    pos[:, -1] = np.searchsorted(v, last, side="right")
    at = np.take_along_axis(C, np.maximum(pos - 1, 0), axis=1).astype(np.float64)  # weight before pos
    at[pos == 0] = 0.0
    out = np.diff(at, axis=1)
    out[~has] = 0.0
    return out


def histogram_like_numpy(values: np.ndarray, weights: np.ndarray, *, presorted: bool = False) -> np.ndarray:
    """``np.histogram(x_b, bins=50)`` for many weighted samples at once.

    ``weights`` is ``(B, m)`` counts; row b is the histogram of ``values`` repeated ``weights[b]`` times, with
    50 equal bins over that row's own min..max (±0.5 if constant). The bin edges are computed as
    ``np.linspace`` does and a value v falls in bin k iff ``edge_k <= v < edge_{k+1}`` (last bin closed),
    which is what ``np.histogram``'s corrected fast path yields. Implementation: sort once, cumulative
    weights, ``searchsorted`` of the 51 edges per row. Rows with no samples give all-zero counts.
    """
    v = np.asarray(values, dtype=np.float64)
    W = np.asarray(weights)
    if not presorted:
        order = np.argsort(v, kind="stable")
        v, W = v[order], W[:, order]
    C = np.cumsum(W, axis=1, dtype=np.float64 if W.dtype.kind == "f" else np.int64)
    return _hist_from_cumsum(v, W, C)


def _kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Σ_{p≠0} p log(p/q) along the last axis."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(p != 0, p * np.log(p / q), 0.0)
    return t.sum(-1)


def _normalise(h: np.ndarray, *, renormalise: bool) -> np.ndarray:
    tot = h.sum(-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = h / tot + EPS
    if renormalise:
        p = p / p.sum(-1, keepdims=True)
    return np.where(tot > 0, p, np.nan)


@dataclass
class _KLState:
    mode: str
    reduction: str
    n: int
    # official: per (class, group) sample indices sorted by score, their scores and a cache key;
    # aligned: one CellIndex over (class, group, bin)
    subsets: list[tuple[np.ndarray, np.ndarray, str]] | None
    cells: CellIndex | None


def _prep_kl(
    y_true: ArrayLike,
    y_score: ArrayLike,
    *,
    sensitive_features: ArrayLike,
    mode: str = "aligned",
    reduction: str = "mean",
    _warn: bool = False,
) -> _KLState:
    if mode not in ("official", "aligned"):
        raise DebiaskitError(f"mode must be 'official' or 'aligned', got {mode!r}")
    if reduction not in ("mean", "none"):
        raise DebiaskitError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    y = check_binary(y_true, name="y_true")
    s = check_scores(y_score, name="y_score", unit=(mode == "aligned"))
    g, labels = check_groups(sensitive_features, name="sensitive_features")
    if len(labels) != 2:
        raise DebiaskitError(f"score KL compares exactly 2 protected groups, got {len(labels)} ({labels.tolist()})")
    check_lengths(y_true=y, y_score=s, sensitive_features=g)
    if _warn:
        for cls in (1, 0):
            for k in (0, 1):
                if not ((y == cls) & (g == k)).any():
                    warn(f"group {group_name(labels, k)!r} has no samples with y_true == {cls}: KL reported as NaN")
    if mode == "official":
        subsets = []
        for cls in (1, 0):
            for k in (0, 1):
                idx = np.flatnonzero((y == cls) & (g == k))
                idx = idx[np.argsort(s[idx], kind="stable")]
                subsets.append((idx, s[idx], _key(idx)))
        return _KLState(mode, reduction, len(y), subsets, None)
    b = np.minimum((s * N_BINS).astype(np.int64), N_BINS - 1)  # equal bins on [0, 1], last bin closed
    codes = ((1 - y.astype(np.int64)) * 2 + g) * N_BINS + b  # class order (1, 0), group order (0, 1)
    return _KLState(mode, reduction, len(y), None, CellIndex(codes, 4 * N_BINS))


def _ev_kl(st: _KLState, R: Any) -> np.ndarray:
    R = as_resamples(R)
    B = R.b
    if st.mode == "official":
        hs = np.empty((B, 4, N_BINS))
        rows = max(1, _CHUNK_ELEMENTS // max(st.n, 1))
        for r0 in range(0, B, rows):
            Wc = R.W[r0 : r0 + rows]
            for k, (idx, vals, _) in enumerate(st.subsets):
                Ws = np.take(Wc, idx, axis=1)
                C = cumsum_counts(Ws)
                hs[r0 : r0 + rows, k] = _hist_from_cumsum(vals, Ws, C)
        hs = gaussian_smooth_like_scipy(hs, integer=True)
        p = _normalise(hs, renormalise=False)
    else:
        hs = st.cells(R).reshape(B, 4, N_BINS)
        hs = gaussian_smooth_like_scipy(hs, integer=False)
        p = _normalise(hs, renormalise=True)
    pA1, pB1, pA0, pB0 = p[:, 0], p[:, 1], p[:, 2], p[:, 3]
    vals = np.stack([_kl(pA1, pB1), _kl(pB1, pA1), _kl(pA0, pB0), _kl(pB0, pA0)], axis=1)
    if st.reduction == "none":
        return vals
    return vals.mean(1)


@batched(_prep_kl, _ev_kl, n_arrays=2)
def score_kl(
    y_true: ArrayLike,
    y_score: ArrayLike,
    *,
    sensitive_features: ArrayLike,
    mode: Literal["official", "aligned"] = "aligned",
    reduction: Literal["mean", "none"] = "mean",
) -> float | np.ndarray:
    """KL divergence between the two groups' score histograms, per true class (Ramaswamy et al. CVPR 2021).

    Args:
        y_true: binary labels.
        y_score: scores (probabilities in [0, 1] for ``mode="aligned"``).
        sensitive_features: exactly two protected groups; A = the first (sorted) label, B = the second.
        mode: ``"aligned"`` (default; common bins, float smoothing, symmetric) or ``"official"``
            (bit-compatible with the gan-debiasing code). See the module docstring for why.
        reduction: ``"mean"`` of the four directional values, or ``"none"`` for all four
            ``[KL_y1(A‖B), KL_y1(B‖A), KL_y0(A‖B), KL_y0(B‖A)]``.
    """
    st = _prep_kl(y_true, y_score, sensitive_features=sensitive_features, mode=mode, reduction=reduction, _warn=True)
    out = _ev_kl(st, ones_weights(st.n))[0]
    return float(out) if np.ndim(out) == 0 else out
