"""Machinery for evaluating a metric on many bootstrap resamples at once.

A resample of ``n`` samples drawn with replacement is represented by its **count vector** ``w`` (how
often each original sample was drawn; ``w.sum() == n``). Every built-in metric is written as a function
of the data and a count matrix ``W`` of shape ``(B, n)`` — one row per resample — so a whole block of
resamples is evaluated with array operations. The point estimate is the same function with ``W = 1``.

A built-in metric carries a :class:`BatchedSpec` in its ``batched`` attribute:

* ``prepare(*arrays, **options) -> state`` validates and pre-computes what does not depend on the
  resample (sort orders, cell codes, one-hot features);
* ``evaluate(state, W) -> ndarray`` returns ``(B,)`` or ``(B, k)`` values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

__all__ = ["BatchedSpec", "batched", "CellIndex", "ones_weights", "safe_div"]

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
        counts = np.bincount(codes, minlength=self.n_cells)
        self.order = np.argsort(codes, kind="stable")
        self.sorted = bool((self.order == np.arange(self.n)).all())
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        self.nonempty = np.flatnonzero(counts)
        self.starts = starts[self.nonempty]
        self.codes = codes

    def __call__(self, W: np.ndarray) -> np.ndarray:
        B = W.shape[0]
        out = np.zeros((B, self.n_cells), dtype=np.float64)
        if self.nonempty.size == 0:
            return out
        if B == 1:
            out[0] = np.bincount(self.codes, weights=W[0].astype(np.float64), minlength=self.n_cells)
            return out
        Ws = W if self.sorted else W[:, self.order]
        out[:, self.nonempty] = np.add.reduceat(Ws, self.starts, axis=1)
        return out
