"""Machinery for evaluating a metric on many bootstrap resamples at once.

A resample of ``n`` samples drawn with replacement is represented by its **count vector** ``w`` (how
often each original sample was drawn; ``w.sum() == n``). Every built-in metric is written as a function
of the data and a count matrix ``W`` of shape ``(B, n)`` — one row per resample — so a whole block of
resamples is evaluated with array operations. The point estimate is the same function with ``W = 1``.

A block of resamples is passed to metrics as a :class:`Resamples` object holding the index matrix
``idx`` (``(B, n)``, drawn once) and, computed lazily once per block, the count matrix ``W``. Metrics that
depend only on counts per cell (group × label × prediction, histogram bins: DEO, EO/DP gaps, BA, aligned
KL) count ``codes[idx]`` directly — a gather from a small table plus a ``bincount`` into a few cells,
which is cache-friendly even at n = 10^6. Metrics that need per-sample weights in a sort order (AP, the
official KL) use ``W``.

A built-in metric carries a :class:`BatchedSpec` in its ``batched`` attribute:

* ``prepare(*arrays, **options) -> state`` validates and pre-computes what does not depend on the
  resample (sort orders, cell codes, one-hot features);
* ``evaluate(state, R) -> ndarray`` returns ``(B,)`` or ``(B, k)`` values; ``R`` is a :class:`Resamples`
  or a plain ``(B, n)`` count matrix.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

__all__ = ["BatchedSpec", "batched", "CellIndex", "PatternSums", "Resamples", "as_weights", "ones_weights", "safe_div"]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class BatchedSpec:
    prepare: Callable[..., Any]
    evaluate: Callable[[Any, np.ndarray], np.ndarray]
    n_arrays: int  # how many leading positional arguments are per-sample arrays (resampled jointly)


def batched(prepare: Callable[..., Any], evaluate: Callable[[Any, np.ndarray], np.ndarray], *, n_arrays: int):
    """Decorator attaching a :class:`BatchedSpec` to a public metric function."""

    def deco(fn: F) -> F:
        fn.batched = BatchedSpec(prepare, evaluate, n_arrays)  # type: ignore[attr-defined]
        return fn

    return deco


class Resamples:
    """A block of bootstrap resamples: index matrix ``idx`` (B, n) and lazily its count matrix ``W``."""

    def __init__(self, *, idx: np.ndarray | None = None, W: np.ndarray | None = None) -> None:
        if idx is None and W is None:
            raise ValueError("Resamples needs idx or W")
        self.idx = idx
        self._W = W
        self._cells: dict[tuple[str, int], np.ndarray] = {}  # cell counts shared by metrics with equal codes
        src = idx if idx is not None else W
        self.b, self.n = src.shape  # type: ignore[union-attr]

    @property
    def shape(self) -> tuple[int, int]:
        return (self.b, self.n)

    @property
    def W(self) -> np.ndarray:
        if self._W is None:
            b, n = self.b, self.n
            small = b * n < 2**31 - 1
            itype = np.int32 if small else np.int64
            flat = (self.idx.astype(itype, copy=False) + (np.arange(b, dtype=itype) * n)[:, None]).ravel()
            W = np.bincount(flat, minlength=b * n).reshape(b, n)
            self._W = W.astype(np.int32) if small else W
        return self._W


def as_weights(R: Any) -> np.ndarray:
    """The ``(B, n)`` count matrix of a :class:`Resamples` or of a plain array."""
    return R.W if isinstance(R, Resamples) else np.asarray(R)


def ones_weights(n: int) -> np.ndarray:
    """The count matrix of the original sample (one row of ones)."""
    return np.ones((1, n), dtype=np.int64)


def safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` with NaN where ``den == 0`` (an undefined rate), without warnings."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast_shapes(num.shape, den.shape), np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


class CellIndex:
    """Weighted counts of samples per cell (disjoint categories), for a batch of count vectors.

    ``CellIndex(codes, n_cells)(W)`` equals ``[np.bincount(codes, weights=w, minlength=n_cells) for w in W]``
    but uses one gather plus ``np.add.reduceat`` over cells sorted once.
    """

    def __init__(self, codes: np.ndarray, n_cells: int) -> None:
        codes = np.asarray(codes, dtype=np.int64)
        self.n = codes.shape[0]
        self.n_cells = int(n_cells)
        self._counts = np.bincount(codes, minlength=self.n_cells)
        self.nonempty = np.flatnonzero(self._counts)
        self._order: np.ndarray | None = None  # sort by cell, built on first use of the count-matrix path
        self.codes = codes
        self._codes32 = codes.astype(np.int32) if self.n_cells < 2**20 else codes
        self._key = (hashlib.sha1(self._codes32.tobytes()).hexdigest(), self.n_cells)
        self._small: dict[Any, np.ndarray] = {}

    def _from_idx(self, R: "Resamples") -> np.ndarray:
        hit = R._cells.get(self._key)
        if hit is None:
            hit = R._cells[self._key] = self._count_idx(R.idx)
        return hit

    def _count_idx(self, idx: np.ndarray) -> np.ndarray:
        B = idx.shape[0]
        top = B * self.n_cells
        # the smallest table dtype keeps the random gather codes[idx] in cache
        dt = np.int8 if top <= 127 else np.int16 if top <= 32767 else np.int32
        table = self._small.get(dt)
        if table is None:
            table = self._small[dt] = self._codes32.astype(dt)
        c = table[idx]
        if B > 1:
            c += (np.arange(B, dtype=dt) * self.n_cells)[:, None]
        return np.bincount(c.ravel(), minlength=B * self.n_cells).reshape(B, self.n_cells).astype(np.float64)

    def _sorted_layout(self) -> tuple[np.ndarray, bool, np.ndarray]:
        if self._order is None:
            self._order = np.argsort(self.codes, kind="stable")
            self._is_sorted = bool((self._order == np.arange(self.n)).all())
            starts = np.concatenate([[0], np.cumsum(self._counts)[:-1]])
            self._starts = starts[self.nonempty]
        return self._order, self._is_sorted, self._starts

    def __call__(self, R: Any) -> np.ndarray:
        if isinstance(R, Resamples) and R.idx is not None:
            return self._from_idx(R)
        W = as_weights(R)
        B = W.shape[0]
        out = np.zeros((B, self.n_cells), dtype=np.float64)
        if self.nonempty.size == 0:
            return out
        if B == 1:
            out[0] = np.bincount(self.codes, weights=W[0].astype(np.float64), minlength=self.n_cells)
            return out
        order, is_sorted, starts = self._sorted_layout()
        Ws = W if is_sorted else W[:, order]
        out[:, self.nonempty] = np.add.reduceat(Ws, starts, axis=1)
        return out


class PatternSums:
    """Column sums ``W @ F`` of a binary feature matrix F, for a batch of count vectors.

    When F has few distinct rows (e.g. one-hot attribute × task columns), samples are grouped by their row
    pattern and counted with :class:`CellIndex`, then ``counts @ patterns``; otherwise a float matmul.
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
        if self.cells is not None:
            return self.cells(R) @ self.patterns
        W = as_weights(R)
        return W.astype(np.float64) @ self.F.astype(np.float64)
