"""Input validation shared by the metric functions.

Every public metric accepts NumPy arrays, PyTorch tensors, pandas Series or plain lists. Tensors are
converted to NumPy **at the boundary** (``detach().cpu().numpy()``); all computation is NumPy. Problems
the user can fix raise :class:`~debiaskit.errors.DebiaskitError` with a one-line message.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Union

import numpy as np
import numpy.typing as npt

from debiaskit.errors import DebiaskitError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import torch

#: What every metric accepts per sample: NumPy arrays (and anything ``np.asarray`` takes), PyTorch
#: tensors (converted with ``detach().cpu().numpy()``), pandas Series and plain sequences.
ArrayLike = Union[npt.ArrayLike, "torch.Tensor", "pd.Series", Sequence[Any]]

__all__ = [
    "ArrayLike",
    "MetricWarning",
    "as_numpy",
    "check_binary",
    "check_scores",
    "check_groups",
    "check_lengths",
    "warn",
]


class MetricWarning(UserWarning):
    """A metric is undefined for part of the data (e.g. a group without positives) and is reported as NaN."""


def warn(message: str) -> None:
    warnings.warn(message, MetricWarning, stacklevel=3)


def as_numpy(x: ArrayLike, *, name: str = "input") -> np.ndarray:
    """Convert a tensor / Series / list to a NumPy array (no copy when already an array)."""
    if x is None:
        raise DebiaskitError(f"{name} is missing")
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor, without importing torch
        x = x.detach().cpu().numpy()
    elif hasattr(x, "to_numpy"):  # pandas
        x = x.to_numpy()
    arr = np.asarray(x)
    if arr.dtype == object:
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            pass
    return arr


def check_lengths(**arrays: np.ndarray) -> int:
    """All arrays must have the same first dimension; return it."""
    lens = {k: (len(v) if np.ndim(v) else 0) for k, v in arrays.items() if v is not None}
    if not lens:
        raise DebiaskitError("no inputs given")
    if len(set(lens.values())) != 1:
        desc = ", ".join(f"{k}={n}" for k, n in lens.items())
        raise DebiaskitError(f"length mismatch: {desc}; all inputs must have one entry per sample")
    n = next(iter(lens.values()))
    if n == 0:
        raise DebiaskitError("empty input: at least one sample is required")
    return n


def check_binary(y: ArrayLike, *, name: str = "y_true", allow_2d: bool = False) -> np.ndarray:
    """Return ``y`` as int8 0/1; booleans and {0., 1.} floats are accepted, anything else is an error."""
    arr = as_numpy(y, name=name)
    if arr.ndim == 0 or arr.ndim > (2 if allow_2d else 1):
        shape = "(n,) or (n, k)" if allow_2d else "(n,)"
        raise DebiaskitError(f"{name} must have shape {shape}, got {arr.shape}")
    if arr.dtype == bool:
        return arr.astype(np.int8)
    if arr.dtype.kind not in "iuf":
        raise DebiaskitError(f"{name} must be binary 0/1 labels, got dtype {arr.dtype}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise DebiaskitError(f"{name} contains NaN or inf; labels must be 0/1")
    bad = (arr != 0) & (arr != 1)
    if bad.any():
        vals = np.unique(arr[bad])[:5].tolist()
        raise DebiaskitError(
            f"{name} must be binary 0/1 labels, found other values {vals}; "
            "for multi-class targets evaluate one-vs-rest (y == k)"
        )
    return arr.astype(np.int8)


def check_scores(s: ArrayLike, *, name: str = "scores", allow_2d: bool = False, unit: bool = False) -> np.ndarray:
    """Return finite float64 scores; ``unit=True`` also requires values in [0, 1] (probabilities)."""
    arr = as_numpy(s, name=name)
    if arr.ndim == 0 or arr.ndim > (2 if allow_2d else 1):
        raise DebiaskitError(f"{name} must be a 1-D{' or 2-D' if allow_2d else ''} array, got shape {arr.shape}")
    if arr.dtype.kind not in "iufb":
        raise DebiaskitError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    if not np.isfinite(arr).all():
        k = int((~np.isfinite(arr)).sum())
        raise DebiaskitError(f"{name} contains {k} NaN/inf value(s); drop or fix those samples first")
    if unit and ((arr < 0).any() or (arr > 1).any()):
        raise DebiaskitError(
            f"{name} must be probabilities in [0, 1] (min {arr.min():.4g}, max {arr.max():.4g}); "
            "apply a sigmoid/softmax to logits first"
        )
    return arr


def check_groups(
    g: ArrayLike, *, name: str = "sensitive_features", min_groups: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Encode group labels as codes ``0..G-1``; return ``(codes, labels)`` with labels sorted."""
    arr = as_numpy(g, name=name)
    if arr.ndim != 1:
        raise DebiaskitError(f"{name} must be 1-D (one group label per sample), got shape {arr.shape}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise DebiaskitError(f"{name} contains NaN/inf; every sample needs a group label")
    if arr.dtype == object:
        if any(v is None or (isinstance(v, float) and v != v) for v in arr):
            raise DebiaskitError(f"{name} contains missing values; every sample needs a group label")
        arr = arr.astype(str)
    if arr.dtype.kind in "iu" and arr.size and arr.min() >= 0 and arr.max() < (1 << 20):
        # small non-negative integers: O(n) encoding instead of a sort/hash
        present = np.bincount(arr.astype(np.intp, copy=False)) > 0
        labels = np.flatnonzero(present).astype(arr.dtype)
        lookup = np.cumsum(present) - 1
        codes = lookup[arr]
    else:
        labels, codes = np.unique(arr, return_inverse=True)
    if len(labels) < min_groups:
        raise DebiaskitError(
            f"{name} has {len(labels)} distinct group(s) ({labels.tolist()}); "
            f"at least {min_groups} are needed to compare groups"
        )
    return codes.astype(np.int64).reshape(-1), labels


def group_name(labels: np.ndarray, k: int) -> str:
    v = labels[k]
    return str(v.item() if hasattr(v, "item") else v)
