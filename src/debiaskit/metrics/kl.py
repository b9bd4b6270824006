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
from debiaskit.metrics._batched import (
    CellIndex,
    OrderedCounts,
    SampleOrder,
    as_resamples,
    batched,
    mask_key,
    ones_weights,
)
from debiaskit.metrics._validation import ArrayLike, check_binary, check_groups, check_lengths, check_scores, group_name, warn

__all__ = ["score_kl", "gaussian_smooth_like_scipy", "histogram_like_numpy", "N_BINS", "EPS"]

N_BINS = 50
EPS = 1e-6
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


_WINDOW = 64  # members checked first when looking for a resample's largest / smallest present score


@dataclass
class _Layout:
    """Where the four (class, group) subsets of the official KL lie in a :class:`SampleOrder` (scores
    decreasing within each major code); subsets ordered (y1, g0), (y1, g1), (y0, g0), (y0, g1).

    ``shared`` is the order of :func:`~debiaskit.metrics.average_precision` on the same labels and scores
    (major = class): a class's two groups interleave, and a group's weight is read off a masked cumulative
    sum. Otherwise (major = class, group) every subset is a contiguous run and one cumulative sum serves all.
    """

    order: SampleOrder
    shared: bool
    start: np.ndarray  # (4,) position where each subset's search range starts (its class / its own run)
    end: np.ndarray  # (4,) and ends
    search: list[np.ndarray]  # per subset: −score over its search range (increasing), for searchsorted
    members: list[np.ndarray]  # positions of each subset's samples (increasing = decreasing score)
    win_first: np.ndarray  # (4, _WINDOW) first members (padded), and which entries are real
    ok_first: np.ndarray
    win_last: np.ndarray  # (4, _WINDOW) last members, last first (padded)
    ok_last: np.ndarray
    masks: tuple[tuple[np.ndarray, str], tuple[np.ndarray, str]] | None  # shared: (group 0, group 1) masks, keys


class _Official:
    """The official KL's two layouts, each built on first use: ``shared`` (AP's order, used when AP has built
    that order's cumulative sums in the block) and ``own`` (contiguous subsets: one cumulative sum instead
    of two masked ones when the KL is on its own)."""

    def __init__(self, y: np.ndarray, s: np.ndarray, g: np.ndarray) -> None:
        self._y, self._s, self._g = y, s, g
        self._shared: _Layout | None = None
        self._own: _Layout | None = None
        c = 1 - y.astype(np.int64)
        self.shared_key = SampleOrder.key_of(c, s)

    @property
    def shared(self) -> _Layout:
        if self._shared is None:
            order = SampleOrder.get(1 - self._y.astype(np.int64), self._s)  # the order of AP on (y, s)
            self._shared = _layout(order, self._g[order.perm], shared=True)
        return self._shared

    @property
    def prefer_shared(self) -> bool:
        """Use AP's order without AP's cumulative sums: when the own order is not built yet but AP's is alive
        (then two masked cumulative sums cost less than sorting the samples a second time)."""
        return self._own is None and (self._shared is not None or SampleOrder.alive(self.shared_key))

    @property
    def own(self) -> _Layout:
        if self._own is None:
            order = SampleOrder.get((1 - self._y.astype(np.int64)) * 2 + self._g, self._s)
            self._own = _layout(order, self._g[order.perm], shared=False)
        return self._own


def _windows(members: list[np.ndarray], *, last: bool) -> tuple[np.ndarray, np.ndarray]:
    win = np.zeros((len(members), _WINDOW), dtype=np.intp)
    ok = np.zeros((len(members), _WINDOW), dtype=bool)
    for k, m in enumerate(members):
        w = m[::-1][:_WINDOW] if last else m[:_WINDOW]
        win[k, : w.size], ok[k, : w.size] = w, True
    return win, ok


def _layout(order: SampleOrder, g_sorted: np.ndarray, *, shared: bool) -> _Layout:
    start, end, search, members = [], [], [], []
    for cls in (0, 1):  # class 1, then class 0 (major 1 − y, or (1 − y) * 2 + g)
        for k in (0, 1):
            a, e = order.segment(cls) if shared else order.segment(2 * cls + k)
            if shared and k == 0:
                neg = -order.score_sorted[a:e]
            start.append(a)
            end.append(e)
            search.append(neg if shared else -order.score_sorted[a:e])
            members.append((a + np.flatnonzero(g_sorted[a:e] == k)).astype(np.intp))
    wf, of = _windows(members, last=False)
    wl, ol = _windows(members, last=True)
    masks = None
    if shared:
        m1 = (g_sorted == 1).astype(np.uint8)
        m0 = (1 - m1).astype(np.uint8)
        masks = ((m0, mask_key(m0)), (m1, mask_key(m1)))
    return _Layout(order, shared, np.array(start), np.array(end), search, members, wf, of, wl, ol, masks)


def _present(W: np.ndarray, lay: _Layout, *, last: bool) -> np.ndarray:
    """(B, 4) position in the order of each subset's first (largest score) or last (smallest) member with a
    non-zero count; the window of the first/last members is checked first, rows without a hit there are
    scanned fully (a subset absent from a row gives its first member; its histogram is zero anyway)."""
    win, ok = (lay.win_last, lay.ok_last) if last else (lay.win_first, lay.ok_first)
    B = W.shape[0]
    nz = (np.take(W, win.ravel(), axis=1).reshape(B, 4, _WINDOW) != 0) & ok
    i = nz.argmax(-1)
    pos = np.take_along_axis(np.broadcast_to(win, (B, 4, _WINDOW)), i[..., None], axis=-1)[..., 0]
    for r, k in zip(*np.nonzero(~nz.any(-1))):
        m = lay.members[k]
        if m.size:
            hit = np.flatnonzero(np.take(W[r], m))
            pos[r, k] = m[(hit[-1] if last else hit[0]) if hit.size else 0]
    return pos


def _hists_in_order(lay: _Layout, oc: OrderedCounts) -> np.ndarray:
    """``np.histogram(x_b, bins=50)`` of the four subsets for every row ``(B, 4, 50)``, from the counts of
    a (sub-)block in the layout's order.

    Same bins as :func:`histogram_like_numpy` (50 equal bins over the row's own min..max, ±0.5 if
    constant, last bin closed): a bin holds the subset's weight at scores ≥ its lower edge minus the weight
    at scores ≥ its upper edge (nothing lies above the last edge, the largest present score), and the
    weight at scores ≥ e is the subset's count over the prefix of its (decreasing) search range with
    score ≥ e: a ``searchsorted`` and a gather from the cumulative counts — of the subset's run, or, in
    the order shared with AP, of its group (group 1 by a masked cumulative sum, group 0 as all − group 1
    when AP has built the cumulative sums of all samples, else by its own masked sum).
    """
    W = oc.W
    B = W.shape[0]
    if not lay.shared:
        cums = [(oc.C, None)] * 4
    else:
        assert lay.masks is not None
        C1 = oc.masked(*lay.masks[1])[1]
        C0 = (oc.C, C1) if oc.has_C else (oc.masked(*lay.masks[0])[1], None)
        cums = [C0, (C1, None), C0, (C1, None)]
    n1 = W.shape[1] + 1
    rows = (np.arange(B, dtype=np.intp) * n1)[:, None]

    def weight(k: int, pos: np.ndarray) -> np.ndarray:  # (B, j) subset k's weight over positions [start, pos)
        A, S = cums[k]
        at, base = rows + pos, rows + lay.start[k]
        w = A.reshape(-1)[at] - A.reshape(-1)[base]
        if S is not None:
            w = w - (S.reshape(-1)[at] - S.reshape(-1)[base])
        return w

    total = np.stack([weight(k, np.full((B, 1), lay.end[k]))[:, 0] for k in range(4)], axis=1)
    scores = lay.order.score_sorted
    hi = scores[_present(W, lay, last=False)]  # largest present score per (row, subset)
    lo = scores[_present(W, lay, last=True)]  # smallest present score
    same = lo == hi
    first = np.where(same, lo - 0.5, lo)
    last = np.where(same, hi + 0.5, hi)
    step = (last - first) / N_BINS
    edges = np.arange(N_BINS, dtype=np.float64) * step[..., None] + first[..., None]  # (B, 4, 50) lower edges
    out = np.empty((B, 4, N_BINS))
    for k in range(4):
        prefix = np.searchsorted(lay.search[k], -edges[:, k].ravel(), side="right").reshape(B, N_BINS)
        ge = weight(k, lay.start[k] + prefix)  # weight at scores ≥ each lower edge
        out[:, k, :-1] = ge[:, :-1] - ge[:, 1:]
        out[:, k, -1] = ge[:, -1]
    out[total <= 0] = 0.0
    return out


@dataclass
class _KLState:
    mode: str
    reduction: str
    n: int
    official: _Official | None  # where the subsets lie in the sample orders (mode="official")
    cells: CellIndex | None  # one CellIndex over (class, group, bin) (mode="aligned")

    #: evaluated early in each sub-block of the bootstrap (see ``bootstrap_many``): after AP, whose cumulative
    #: sums it reuses, and before the cell counts, which reuse its group's masked cumulative sums
    eval_priority = 1


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
        return _KLState(mode, reduction, len(y), _Official(y, s, g), None)
    b = np.minimum((s * N_BINS).astype(np.int64), N_BINS - 1)  # equal bins on [0, 1], last bin closed
    codes = ((1 - y.astype(np.int64)) * 2 + g) * N_BINS + b  # class order (1, 0), group order (0, 1)
    return _KLState(mode, reduction, len(y), None, CellIndex(codes, 4 * N_BINS))


def _ev_kl(st: _KLState, R: Any) -> np.ndarray:
    R = as_resamples(R)
    B = R.b
    if st.mode == "official":
        hs = np.empty((B, 4, N_BINS))
        r0 = 0
        off = st.official
        for S in R.chunks():
            shared = S.cached_ordered(off.shared_key)
            if shared is not None and shared.has_C:  # AP on the same labels and scores ran first
                hs[r0 : r0 + S.b] = _hists_in_order(off.shared, shared)
            elif off.prefer_shared:  # e.g. the point estimate while AP's order is alive: no second sort
                hs[r0 : r0 + S.b] = _hists_in_order(off.shared, S.ordered(off.shared.order))
            else:
                hs[r0 : r0 + S.b] = _hists_in_order(off.own, S.ordered(off.own.order))
            r0 += S.b
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
