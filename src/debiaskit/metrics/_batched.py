"""Machinery for evaluating a metric on many bootstrap resamples at once.

A resample of ``n`` samples drawn with replacement is represented by its **count vector** ``w`` (how
often each original sample was drawn; ``w.sum() == n``). Every built-in metric is written as a function
of the data and a count matrix ``W`` of shape ``(B, n)`` — one row per resample — so a whole block of
resamples is evaluated with array operations. The point estimate is the same function with ``W = 1``;
a jackknife replicate is ``W = 1`` with some samples set to 0.

A block is passed to metrics as a :class:`Resamples` object. It holds ``W`` as ``uint8`` (a count above
255 would need 256 draws of one sample; the constructor checks the row sums and widens the dtype if that
ever happens) and caches what several metrics of the same block need: the ``float32`` copy of ``W``
(integer counts below 2**24 are exact in float32), column subsets in a metric's sort order, row totals
and cell counts. Work per block is therefore a few streaming passes over ``W``:

* cell counts (group × label × prediction, histogram bins, attribute patterns) are ``W @ onehot`` for a
  few cells and cumulative sums over the columns sorted by cell otherwise (:class:`CellIndex`);
* AP and the official KL take ``W``'s columns in score order and use cumulative sums (``torch.cumsum``
  into int32, exact).

A built-in metric carries a :class:`BatchedSpec` in its ``batched`` attribute:

* ``prepare(*arrays, **options) -> state`` validates and pre-computes what does not depend on the
  resample (sort orders, cell codes, one-hot features), with the public function's signature;
* ``evaluate(state, R) -> ndarray`` returns ``(B,)`` or ``(B, k)`` values; ``R`` is a :class:`Resamples`
  or a plain ``(B, n)`` count matrix;
* optionally ``components(state, R) -> (B, m)`` and ``bounds(lo, hi) -> (lo, hi)``: the metric is a
  monotone function of ``m`` per-group rates (a gap or ratio between groups) and ``bounds`` maps a box of
  rate intervals to an interval of the metric (used by ``ci_method="simultaneous"``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch

__all__ = [
    "BatchedSpec",
    "batched",
    "CellIndex",
    "PatternSums",
    "Resamples",
    "as_resamples",
    "counts_from_indices",
    "cumsum_counts",
    "ones_weights",
    "safe_div",
]

F = TypeVar("F", bound=Callable[..., Any])

#: float32 holds every integer below 2**24 exactly; counts and their partial sums must stay below it
F32_EXACT = 1 << 24


@dataclass(frozen=True)
class BatchedSpec:
    prepare: Callable[..., Any]
    evaluate: Callable[[Any, Any], np.ndarray]
    n_arrays: int  # how many leading positional arguments are per-sample arrays (resampled jointly)
    components: Callable[[Any, Any], np.ndarray] | None = None
    bounds: Callable[[Any, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None


def batched(
    prepare: Callable[..., Any],
    evaluate: Callable[[Any, Any], np.ndarray],
    *,
    n_arrays: int,
    components: Callable[[Any, Any], np.ndarray] | None = None,
    bounds: Callable[[Any, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None,
) -> Callable[[F], F]:
    """Decorator attaching a :class:`BatchedSpec` to a public metric function."""

    def deco(fn: F) -> F:
        fn.batched = BatchedSpec(prepare, evaluate, n_arrays, components, bounds)  # type: ignore[attr-defined]
        return fn

    return deco


def counts_from_indices(idx: np.ndarray, n: int) -> np.ndarray:
    """Count matrix ``(b, n)`` of an index matrix ``(b, n)`` of draws: ``W[r, i] = #{j : idx[r, j] == i}``.

    Counted into ``uint8`` with ``torch.index_add_`` row by row (the row stays in cache); a row whose sum
    is not its number of draws overflowed and is recounted in int32.
    """
    b, m = idx.shape
    W = torch.zeros((b, n), dtype=torch.uint8)
    idx = np.ascontiguousarray(idx, dtype=np.int32 if idx.dtype != np.int64 else np.int64)
    ti = torch.from_numpy(idx if idx.flags.writeable else idx.copy())
    ones = torch.ones(m, dtype=torch.uint8)
    for r in range(b):
        W[r].index_add_(0, ti[r], ones)
    out = W.numpy()
    if m >= 256:
        bad = np.flatnonzero(out.sum(1, dtype=np.int64) != m)
        if bad.size:  # practically impossible (one sample drawn 256 times); stay exact anyway
            wide = out.astype(np.int32)
            for r in bad:
                wide[r] = np.bincount(idx[r], minlength=n)
            return wide
    return out


def cumsum_counts(A: np.ndarray) -> np.ndarray:
    """Row-wise cumulative sums of a non-negative integer count matrix, exact: int32 (int64 when a row sum
    could reach 2**31). ``torch.cumsum`` is used because it is several times faster than NumPy's here."""
    A = np.ascontiguousarray(A)
    t = torch.from_numpy(A if A.flags.writeable else A.copy())
    wide = A.dtype.itemsize * 8 > 8 and A.shape[1] and int(A.max(initial=0)) * A.shape[1] >= 2**31 - 1
    return torch.cumsum(t, dim=1, dtype=torch.int64 if wide else torch.int32).numpy()


class Resamples:
    """A block of count vectors ``W`` (b, n) with per-block caches shared by all metrics evaluated on it."""

    def __init__(self, W: np.ndarray) -> None:
        W = np.asarray(W)
        if W.ndim != 2:
            raise ValueError(f"count matrix must be 2-D, got shape {W.shape}")
        if W.dtype.kind == "f":
            if not np.array_equal(W, np.round(W)):
                raise ValueError("count matrices hold integer counts")
            W = W.astype(np.int64)
        self.W = W
        self.b, self.n = W.shape
        self._cache: dict[Any, Any] = {}

    @property
    def shape(self) -> tuple[int, int]:
        return (self.b, self.n)

    def cached(self, key: Any, make: Callable[[], Any]) -> Any:
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache[key] = make()
        return hit

    @property
    def totals(self) -> np.ndarray:
        """Row sums (resample sizes) as float64."""
        return self.cached("totals", lambda: self.W.sum(1, dtype=np.int64).astype(np.float64))

    @property
    def exact_f32(self) -> bool:
        return bool(self.totals.max(initial=0) < F32_EXACT)

    @property
    def Wf(self) -> np.ndarray:
        """``W`` as float32 (float64 when a row total reaches 2**24)."""
        return self.cached("Wf", lambda: self.W.astype(np.float32 if self.exact_f32 else np.float64))

    def take(self, cols: np.ndarray, key: Any) -> np.ndarray:
        """``W[:, cols]`` (cached under ``key``)."""
        return self.cached(("take", key), lambda: np.take(self.W, cols, axis=1))

    def cumsum(self, cols: np.ndarray, key: Any) -> np.ndarray:
        """Cumulative sums of ``W[:, cols]`` along the row (exact integers)."""
        return self.cached(("cumsum", key), lambda: cumsum_counts(self.take(cols, key)))

    def subset(self, cols: np.ndarray) -> "Resamples":
        """The resamples restricted to the samples ``cols`` (for per-group evaluation)."""
        return Resamples(np.take(self.W, cols, axis=1))


def as_resamples(R: Any) -> Resamples:
    """A :class:`Resamples` for a Resamples object or a plain ``(B, n)`` count matrix."""
    return R if isinstance(R, Resamples) else Resamples(np.asarray(R))


def ones_weights(n: int) -> Resamples:
    """The count matrix of the original sample (one row of ones)."""
    return Resamples(np.ones((1, n), dtype=np.uint8))


def safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` with NaN where ``den == 0`` (an undefined rate), without warnings."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast_shapes(num.shape, den.shape), np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _key(*parts: Any) -> str:
    h = hashlib.sha1()
    for p in parts:
        h.update(np.ascontiguousarray(p).tobytes() if isinstance(p, np.ndarray) else repr(p).encode())
    return h.hexdigest()


class CellIndex:
    """Weighted counts of samples per cell (disjoint categories), for a block of count vectors.

    ``CellIndex(codes, n_cells)(R)`` equals ``[np.bincount(codes, weights=w, minlength=n_cells) for w in W]``
    (float64). With at most :attr:`MATMUL_CELLS` cells it is ``W @ onehot(codes)``; otherwise the columns
    are taken in cell order once and the counts are differences of cumulative sums at the cell ends.
    Metrics with equal codes share the result within a block.
    """

    MATMUL_CELLS = 32

    def __init__(self, codes: np.ndarray, n_cells: int) -> None:
        codes = np.asarray(codes, dtype=np.int64).reshape(-1)
        self.n = codes.shape[0]
        self.n_cells = int(n_cells)
        self.codes = codes
        self._counts = np.bincount(codes, minlength=self.n_cells)
        self.key = _key(codes, self.n_cells)
        self._onehot: dict[Any, np.ndarray] = {}
        self._order: np.ndarray | None = None
        self._ends: np.ndarray | None = None

    def _matmul(self, R: Resamples) -> np.ndarray:
        Wf = R.Wf
        M = self._onehot.get(Wf.dtype)
        if M is None:
            M = self._onehot[Wf.dtype] = np.zeros((self.n, self.n_cells), dtype=Wf.dtype)
            M[np.arange(self.n), self.codes] = 1
        return (Wf @ M).astype(np.float64)

    def _sorted(self, R: Resamples) -> np.ndarray:
        if self._order is None:
            self._order = np.argsort(self.codes, kind="stable")
            self._ends = np.cumsum(self._counts) - 1  # last position of each cell in sorted order
        C = R.cumsum(self._order, ("cells", self.key))
        out = np.zeros((R.b, self.n_cells))
        nonempty = self._counts > 0
        at = np.take(C, self._ends[nonempty], axis=1).astype(np.float64)
        out[:, nonempty] = np.diff(at, axis=1, prepend=0.0)
        return out

    def __call__(self, R: Any) -> np.ndarray:
        R = as_resamples(R)
        if R.n != self.n:
            raise ValueError(f"count matrix has {R.n} columns, the metric has {self.n} samples")
        if self.n_cells <= self.MATMUL_CELLS:
            return R.cached(("cellcount", self.key), lambda: self._matmul(R))
        return R.cached(("cellcount", self.key), lambda: self._sorted(R))


class PatternSums:
    """Column sums ``W @ F`` of a binary feature matrix F, for a block of count vectors.

    Samples are grouped by their row pattern of F and counted with :class:`CellIndex`, then
    ``counts @ patterns``; with more than :attr:`MAX_PATTERNS` distinct rows, a float matmul.
    """

    MAX_PATTERNS = 4096

    def __init__(self, F: np.ndarray) -> None:
        F = np.asarray(F)
        self.F = F
        patterns, inv = np.unique(F, axis=0, return_inverse=True)
        if len(patterns) <= self.MAX_PATTERNS:
            self.patterns = patterns.astype(np.float64)
            self.cells: CellIndex | None = CellIndex(inv.reshape(-1), len(patterns))
        else:
            self.cells = None

    def __call__(self, R: Any) -> np.ndarray:
        R = as_resamples(R)
        if self.cells is not None:
            return self.cells(R) @ self.patterns
        return R.Wf.astype(np.float64) @ self.F.astype(np.float64)
