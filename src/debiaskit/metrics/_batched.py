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
* AP and the official KL take ``W``'s columns in a :class:`SampleOrder` (class, then decreasing score)
  and use exact integer cumulative sums (``torch.cumsum``). On the same labels and scores both use the
  same order, so the permuted block and its cumulative sums (:class:`OrderedCounts`) are built once and
  shared; the KL adds one masked cumulative sum for a protected group;
* cell counts whose codes are piecewise constant along such an order (DEO, BA and the rates when the
  predictions are thresholded scores: within a class and a group, the predicted positives are the
  top-scored samples) are read off those cumulative sums at a few run ends instead (:class:`_PiecePlan`).

The bootstrap engine (``bootstrap_many``) evaluates each block in **sub-blocks** of about
:data:`SUB_ELEMENTS` entries (:meth:`Resamples.split`), metrics that build ordered counts first (their
state's ``eval_priority``): the per-entry passes then run on arrays that stay in cache, and the big
temporaries come from a :class:`Workspace` reused from sub-block to sub-block instead of fresh arrays.
Cell counts by ``W @ onehot`` need many rows per call to be efficient, so a sub-block without an order to
read them from takes them from its parent block (computed once per block, sliced).

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
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch

__all__ = [
    "BatchedSpec",
    "batched",
    "CellIndex",
    "OrderedCounts",
    "PatternSums",
    "Resamples",
    "SampleOrder",
    "SUB_ELEMENTS",
    "Workspace",
    "sub_rows",
    "as_resamples",
    "counts_from_indices",
    "cumsum_counts",
    "gather_cols",
    "mask_key",
    "ones_weights",
    "safe_div",
]

F = TypeVar("F", bound=Callable[..., Any])

#: float32 holds every integer below 2**24 exactly; counts and their partial sums must stay below it
F32_EXACT = 1 << 24

#: count-matrix entries per sub-block (see :meth:`Resamples.chunks`): a sub-block's counts in score order
#: (uint8) and the cumulative sums (int16 / int32) take a few bytes per entry and stay in the L2/L3 cache,
#: while the per-call cost of NumPy is shared by enough entries (104 rows at 20,000 samples)
SUB_ELEMENTS = 1 << 21


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


def sub_rows(n: int, max_entries: int | None = None) -> int:
    """Rows of a sub-block of ``n`` samples: about ``max_entries`` (default :data:`SUB_ELEMENTS`) entries,
    at least 2 (row-wise reductions of a multi-row array are what AP uses; see ``ranking._rowdot``)."""
    return max(2, (SUB_ELEMENTS if max_entries is None else int(max_entries)) // max(int(n), 1))


class Workspace:
    """Scratch arrays reused across the blocks and sub-blocks of one bootstrap run.

    ``get(name, shape, dtype)`` returns an uninitialised array backed by the buffer ``name`` (grown when too
    small); the array previously handed out under the same name and dtype is overwritten by the next user.
    The bootstrap engine evaluates blocks and sub-blocks one at a time, so a name is only ever in use by
    one block or sub-block at a time (names carry the level: ``"blk"`` or ``"sub"``).
    """

    def __init__(self) -> None:
        self._bufs: dict[tuple[Any, str], np.ndarray] = {}

    def get(self, name: Any, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        dt = np.dtype(dtype)
        size = int(np.prod(shape, dtype=np.int64))
        buf = self._bufs.get((name, dt.str))
        if buf is None or buf.size < size:
            buf = self._bufs[(name, dt.str)] = np.empty(max(size, 1), dtype=dt)
        return buf[:size].reshape(shape)


class _FreshArrays:
    """Workspace stand-in that allocates a new array per request (blocks handed to callers)."""

    def get(self, name: Any, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        return np.empty(shape, dtype=dtype)


_FRESH = _FreshArrays()


_COUNT_DTYPES = {np.dtype(t) for t in (np.uint8, np.int16, np.int32, np.int64)}


class Resamples:
    """A block of count vectors ``W`` (b, n) with per-block caches shared by all metrics evaluated on it.

    ``ws`` (a :class:`Workspace`) provides reusable scratch memory for the block's big temporaries; without
    it every temporary is a fresh array. A sub-block made by :meth:`split` keeps a link to its parent, so
    quantities that are cheaper per block than per sub-block (cell counts by matmul) are computed once on
    the parent and sliced.
    """

    def __init__(self, W: np.ndarray, *, ws: Workspace | None = None, parent: "Resamples | None" = None,
                 rows: tuple[int, int] | None = None, level: str = "blk") -> None:
        W = np.asarray(W)
        if W.ndim != 2:
            raise ValueError(f"count matrix must be 2-D, got shape {W.shape}")
        if W.dtype.kind == "f":
            if not np.array_equal(W, np.round(W)):
                raise ValueError("count matrices hold integer counts")
            W = W.astype(np.int64)
        elif W.dtype.kind == "b":
            W = W.astype(np.uint8)
        elif W.dtype not in _COUNT_DTYPES:  # other integer types: what torch's gather and cumsum take
            W = W.astype(np.int64)
        self.W = W
        self.b, self.n = W.shape
        self.ws: Workspace | _FreshArrays = ws if ws is not None else _FRESH
        self.parent = parent
        self.rows = rows if rows is not None else (0, self.b)
        self.level = level
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

    def _make_wf(self) -> np.ndarray:
        dt = np.float32 if self.exact_f32 else np.float64
        out = self.ws.get((self.level, "Wf"), self.W.shape, dt)
        np.copyto(out, self.W, casting="unsafe")
        return out

    @property
    def Wf(self) -> np.ndarray:
        """``W`` as float32 (float64 when a row total reaches 2**24)."""
        return self.cached("Wf", self._make_wf)

    def take(self, cols: np.ndarray, key: Any) -> np.ndarray:
        """``W[:, cols]`` (cached under ``key``)."""
        return self.cached(("take", key), lambda: np.take(self.W, cols, axis=1))

    def cumsum(self, cols: np.ndarray, key: Any) -> np.ndarray:
        """Cumulative sums of ``W[:, cols]`` along the row (exact integers)."""
        return self.cached(("cumsum", key), lambda: cumsum_counts(self.take(cols, key)))

    def subset(self, cols: np.ndarray) -> "Resamples":
        """The resamples restricted to the samples ``cols`` (for per-group evaluation)."""
        return Resamples(np.take(self.W, cols, axis=1))

    def split(self, rows: int) -> Iterator["Resamples"]:
        """Sub-blocks of at most ``rows`` rows (the block itself if it is small enough)."""
        rows = max(1, int(rows))
        if self.b <= rows:
            yield self
            return
        totals = self._cache.get("totals")
        for r0 in range(0, self.b, rows):
            r1 = min(self.b, r0 + rows)
            S = Resamples(self.W[r0:r1], ws=self.ws if isinstance(self.ws, Workspace) else None,
                          parent=self, rows=(r0, r1), level=self.level + ".sub")
            if totals is not None:
                S._cache["totals"] = totals[r0:r1]
            yield S

    def chunks(self, max_entries: int | None = None) -> Iterator["Resamples"]:
        """Sub-blocks of about ``max_entries`` (default :data:`SUB_ELEMENTS`) count-matrix entries, for metrics
        called on a large block; a block of that size or less is returned as is."""
        return self.split(sub_rows(self.n, max_entries))

    def cached_ordered(self, key: str) -> "OrderedCounts | None":
        """The :class:`OrderedCounts` of the order with key ``key`` if a metric already built it here."""
        return self._cache.get(("ordered", key))

    def ordered_counts(self) -> list["OrderedCounts"]:
        """The :class:`OrderedCounts` already built (and cached) for this block."""
        return [v for k, v in self._cache.items() if isinstance(k, tuple) and k[0] == "ordered"]

    def ordered(self, order: "SampleOrder", *, cache: bool = True) -> "OrderedCounts":
        """The block's counts in ``order`` with their cumulative sums; cached per order unless ``cache=False``
        (then built in a scratch slot shared by all uncached orders, e.g. the labels of a multi-label AP)."""
        if order.n != self.n:
            raise ValueError(f"count matrix has {self.n} columns, the order has {order.n} samples")
        if not cache:
            return OrderedCounts(self, order, slot="tmp")
        return self.cached(("ordered", order.key), lambda: OrderedCounts(self, order, slot=order.key))


def mask_key(mask: np.ndarray) -> str:
    """Cache key of a 0/1 mask over the positions of an order (by content, so equal masks share)."""
    return _key("mask", np.ascontiguousarray(mask, dtype=np.uint8))


class SampleOrder:
    """The samples sorted by an integer ``major`` code (ascending), then by ``score`` **descending**; ties keep
    index order (a stable sort). Metrics that sort by the same (major, score) — AP with ``major = 1 − y`` and
    the official KL — get the same :attr:`key`, so :meth:`Resamples.ordered` builds their counts once; use
    :meth:`get` to share the instance (and its sort) as well.

    ``desc`` is the stable order by decreasing score alone; ``perm`` stably partitions it by ``major``.
    """

    _instances: "weakref.WeakValueDictionary[str, SampleOrder]" = weakref.WeakValueDictionary()

    def __init__(self, major: np.ndarray, score: np.ndarray, *, key: str | None = None) -> None:
        major = np.asarray(major).astype(np.int64).reshape(-1)
        score = np.asarray(score, dtype=np.float64).reshape(-1)
        if major.shape != score.shape:
            raise ValueError("major codes and scores must have the same length")
        self.n = int(major.shape[0])
        self.desc = np.argsort(-score, kind="stable").astype(np.intp)
        md = major[self.desc]
        if self.n and 0 <= md.min() and md.max() < 128:  # a stable radix sort of small codes
            self.perm = self.desc[np.argsort(md.astype(np.int8), kind="stable")]
        else:
            self.perm = np.lexsort((-score, major)).astype(np.intp)
        self.major_sorted = major[self.perm]
        self.score_sorted = score[self.perm]
        self.key = key if key is not None else SampleOrder.key_of(major, score)

    @staticmethod
    def key_of(major: np.ndarray, score: np.ndarray) -> str:
        """The :attr:`key` of the order of ``(major, score)`` (without sorting)."""
        major = _compact(np.asarray(major).reshape(-1))
        return _key("SampleOrder", major, np.asarray(score, dtype=np.float64).reshape(-1))

    @property
    def perm_t(self) -> torch.Tensor:
        """``perm`` as an int64 tensor (the index of :func:`gather_cols`)."""
        t = self.__dict__.get("_perm_t")
        if t is None:
            t = self.__dict__["_perm_t"] = torch.from_numpy(self.perm.astype(np.int64))
        return t

    @classmethod
    def get(cls, major: np.ndarray, score: np.ndarray) -> "SampleOrder":
        """The order of ``(major, score)``, reusing a live instance built for equal arrays."""
        key = cls.key_of(major, score)
        hit = cls._instances.get(key)
        if hit is None:
            hit = cls(major, score, key=key)
            cls._instances[key] = hit
        return hit

    @classmethod
    def alive(cls, key: str) -> bool:
        """Whether an order with this key is built and still referenced (so :meth:`get` would reuse it)."""
        return cls._instances.get(key) is not None

    def segment(self, code: int) -> tuple[int, int]:
        """``[start, end)`` of the samples with major code ``code`` in the order."""
        a = int(np.searchsorted(self.major_sorted, code, side="left"))
        return a, int(np.searchsorted(self.major_sorted, code, side="right"))


_TORCH_INT = {np.dtype(np.int16): torch.int16, np.dtype(np.int32): torch.int32, np.dtype(np.int64): torch.int64}


class OrderedCounts:
    """A block's counts in a :class:`SampleOrder`: ``W`` ``(b, n)`` = ``R.W[:, order.perm]`` and ``C``
    ``(b, n + 1)`` with ``C[:, j]`` = total count of the first ``j`` samples of the order (``C[:, 0] = 0``).
    The weight of positions ``[a, b)`` is ``C[:, b] − C[:, a]``. ``C`` is exact: int16 when every row total
    is below 2**15 (half the memory traffic of int32 at small n), else int32, int64 from 2**31."""

    def __init__(self, R: Resamples, order: SampleOrder, *, slot: str) -> None:
        b, n = R.W.shape
        self._R, self._slot, self.order = R, slot, order
        W = R.ws.get((R.level, "ord.W", slot), (b, n), R.W.dtype)
        gather_cols(R.W, order.perm, out=W, index=order.perm_t)
        self.W = W
        top = float(R.totals.max(initial=0))
        self.dtype = np.dtype(np.int16 if top < 2**15 else np.int32 if top < 2**31 else np.int64)
        self._C: np.ndarray | None = None
        self._masked: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    @property
    def C(self) -> np.ndarray:
        """Cumulative counts of all samples (built on first use)."""
        if self._C is None:
            self._C = self._cumsum(self.W, "ord.C")
        return self._C

    @property
    def has_C(self) -> bool:
        """Whether :attr:`C` is already built (a metric may then prefer it to a masked cumulative sum)."""
        return self._C is not None

    def _cumsum(self, W: np.ndarray, name: str) -> np.ndarray:
        b, n = W.shape
        C = self._R.ws.get((self._R.level, name, self._slot), (b, n + 1), self.dtype)
        C[:, 0] = 0
        src = W if W.flags.writeable else W.copy()
        torch.cumsum(torch.from_numpy(src), dim=1, dtype=_TORCH_INT[self.dtype], out=torch.from_numpy(C)[:, 1:])
        return C

    def masked(self, mask: np.ndarray, key: str) -> tuple[np.ndarray, np.ndarray]:
        """``(W * mask, cumulative sums)`` for a 0/1 ``uint8`` mask over the positions of the order (cached
        under ``key``): the counts of one subset of the samples, e.g. one protected group."""
        hit = self._masked.get(key)
        if hit is None:
            Wm = self._R.ws.get((self._R.level, "ord.Wm", self._slot, key), self.W.shape, self.W.dtype)
            np.multiply(self.W, mask, out=Wm)
            hit = self._masked[key] = (Wm, self._cumsum(Wm, f"ord.Cm.{key}"))
        return hit


_TORCH_GATHER = {np.dtype(t) for t in (np.uint8, np.int16, np.int32, np.int64, np.float32, np.float64)}


def gather_cols(A: np.ndarray, cols: np.ndarray, *, out: np.ndarray, index: torch.Tensor | None = None) -> np.ndarray:
    """``out[:] = A[:, cols]`` (``np.take(A, cols, axis=1, out=out)``) with ``torch.gather``, which is
    faster than NumPy's take for the large column gathers of the bootstrap (a permutation of the count
    matrix, AP's false-positive counts). ``index`` may pass ``cols`` as a cached int64 tensor."""
    if A.dtype not in _TORCH_GATHER or not A.flags.c_contiguous or not out.flags.c_contiguous or A.shape[0] == 0:
        return np.take(A, cols, axis=1, out=out)
    t = index if index is not None else torch.from_numpy(np.asarray(cols, dtype=np.int64))
    src = A if A.flags.writeable else A.copy()
    torch.gather(torch.from_numpy(src), 1, t.expand(A.shape[0], t.shape[0]), out=torch.from_numpy(out))
    return out


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


def _compact(a: np.ndarray) -> np.ndarray:
    """Integer codes in the smallest of int8 / int16 / int64 that holds them (fewer bytes to hash)."""
    if a.dtype.kind in "iub" and a.size:
        lo, hi = int(a.min()), int(a.max())
        for t in (np.int8, np.int16):
            if np.iinfo(t).min <= lo and hi <= np.iinfo(t).max:
                return a.astype(t)
    return a.astype(np.int64) if a.dtype.kind in "iub" else a


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
    Metrics with equal codes share the result within a block; a sub-block slices its parent's counts.
    """

    MATMUL_CELLS = 32
    #: most runs of equal codes for which counts are read off an order's cumulative sums
    MAX_PIECES = 256

    def __init__(self, codes: np.ndarray, n_cells: int) -> None:
        codes = np.asarray(codes, dtype=np.int64).reshape(-1)
        self.n = codes.shape[0]
        self.n_cells = int(n_cells)
        self.codes = codes
        self._counts = np.bincount(codes, minlength=self.n_cells)
        self.key = _key(_compact(codes), self.n_cells)
        self._onehot: dict[Any, np.ndarray] = {}
        self._order: np.ndarray | None = None
        self._ends: np.ndarray | None = None
        self._plans: dict[str, _PiecePlan | None] = {}

    def _plan(self, order: "SampleOrder") -> "_PiecePlan | None":
        """Runs of equal codes along ``order`` (all samples, or the samples of either value of one bit of
        the code, e.g. the group): counts are then differences of the order's cumulative sums at the run
        ends. ``None`` if every choice has more than :attr:`MAX_PIECES` runs."""
        if order.key in self._plans:
            return self._plans[order.key]
        c = self.codes[order.perm]
        plan = None
        whole = _runs(c, np.arange(self.n))
        if len(whole[0]) <= self.MAX_PIECES:
            plan = _PiecePlan(None, "", [(None, *whole)], self.n_cells)
        elif self.n_cells <= 2 * self.MATMUL_CELLS:  # a bit of the code (e.g. the group) as the mask
            for bit in range(max(1, int(self.n_cells - 1).bit_length())):
                m = ((c >> bit) & 1).astype(np.uint8)
                parts = [(v, *_runs(c, np.flatnonzero(m == v))) for v in (1, 0)]
                if sum(len(p[1]) for p in parts) <= self.MAX_PIECES:
                    plan = _PiecePlan(m, mask_key(m), parts, self.n_cells)
                    break
        self._plans[order.key] = plan
        return plan

    def _matmul(self, R: Resamples) -> np.ndarray:
        Wf = R.Wf
        M = self._onehot.get(Wf.dtype)
        if M is None:
            M = self._onehot[Wf.dtype] = np.zeros((self.n, self.n_cells), dtype=Wf.dtype)
            M[np.arange(self.n), self.codes] = 1
        # torch's single-threaded sgemm is faster than NumPy's here; integer sums below 2**24 are exact in
        # float32 whatever the summation order
        return torch.mm(torch.from_numpy(Wf), torch.from_numpy(M)).numpy().astype(np.float64)

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
        key = ("cellcount", self.key)
        hit = R._cache.get(key)
        if hit is not None:
            return hit
        for oc in R.ordered_counts():  # counts in an order built for AP / the KL: read the runs off them
            plan = self._plan(oc.order)
            if plan is not None:
                return R.cached(key, lambda: plan.counts(oc))
        if R.parent is not None:  # a sub-block: counted once per parent block (matmul wants many rows)
            r0, r1 = R.rows
            return self(R.parent)[r0:r1]
        if R.b <= 2:  # e.g. the point estimate: a weighted bincount needs no one-hot table
            return R.cached(key, lambda: np.stack([np.bincount(self.codes, weights=w, minlength=self.n_cells)
                                                   for w in R.W.astype(np.float64)]))
        if self.n_cells <= self.MATMUL_CELLS:
            return R.cached(("cellcount", self.key), lambda: self._matmul(R))
        return R.cached(("cellcount", self.key), lambda: self._sorted(R))


def _runs(c: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Maximal runs of equal ``c[pos]`` along the (increasing) positions ``pos``: ``(starts, ends, code)``
    with ``[starts, ends)`` the span of positions of the order that the run covers."""
    seq = c[pos]
    if seq.size == 0:
        return np.zeros(0, np.intp), np.zeros(0, np.intp), np.zeros(0, np.int64)
    cut = np.flatnonzero(seq[1:] != seq[:-1]) + 1
    first = np.concatenate([[0], cut])
    last = np.concatenate([cut, [seq.size]]) - 1
    return pos[first].astype(np.intp), (pos[last] + 1).astype(np.intp), seq[first]


@dataclass
class _PiecePlan:
    """Cell counts from an :class:`OrderedCounts`: each part is (mask value or None, run starts, run ends,
    run codes); with a mask, part v counts only the positions where the mask is v."""

    mask: np.ndarray | None
    mask_key: str
    parts: list[tuple[int | None, np.ndarray, np.ndarray, np.ndarray]]
    n_cells: int

    @property
    def complement(self) -> tuple[np.ndarray, str]:
        """The complement mask and its key (computed once)."""
        c = self.__dict__.get("_complement")
        if c is None:
            assert self.mask is not None
            m0 = (1 - self.mask).astype(np.uint8)
            c = self.__dict__["_complement"] = (m0, mask_key(m0))
        return c

    def counts(self, oc: "OrderedCounts") -> np.ndarray:
        out = np.zeros((oc.W.shape[0], self.n_cells))

        def span(A: np.ndarray, st: np.ndarray, en: np.ndarray) -> np.ndarray:
            return np.take(A, en, axis=1) - np.take(A, st, axis=1)

        for v, st, en, code in self.parts:
            if st.size == 0:
                continue
            if v is None:
                vals = span(oc.C, st, en)
            else:
                assert self.mask is not None
                if v == 1 or not oc.has_C:  # the positions where the mask is v, counted by a masked cumsum
                    m, key = (self.mask, self.mask_key) if v == 1 else self.complement
                    vals = span(oc.masked(m, key)[1], st, en)
                else:  # all minus mask 1
                    vals = span(oc.C, st, en) - span(oc.masked(self.mask, self.mask_key)[1], st, en)
            P = np.zeros((st.size, self.n_cells))
            P[np.arange(st.size), code] = 1.0
            out += vals.astype(np.float64) @ P  # integer sums, exact in float64
        return out


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
