"""Group-wise accuracy metrics for biased datasets (the LfF / DisEnt evaluation protocol).

Definitions (pinned down; see docs/concepts.md):

* ``accuracy``: plain top-1 accuracy over all samples (what the DisEnt code reports).
* ``unbiased_accuracy``: mean of the per-(target, bias) cell accuracies over the non-empty cells
  (LfF ``train.py``; Nam et al. 2020 "unbiased" metric).
* ``aligned_accuracy`` / ``conflicting_accuracy``: mean of the cell accuracies over the bias-aligned /
  bias-conflicting non-empty cells (LfF's "aligned" = mean of the diagonal, "skewed" = off-diagonal).
* ``conflicting_sample_accuracy``: plain accuracy over bias-conflicting samples (DisEnt's BFFHQ number).
* ``worst_group_accuracy``: minimum cell accuracy over non-empty cells (Sagawa et al. 2020).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from debiaskit.errors import DebiaskitError
from debiaskit.metrics._validation import ArrayLike

__all__ = [
    "GROUP_METRICS",
    "bias_metrics",
    "group_accuracy_matrix",
    "group_table",
    "unbiased_accuracy",
    "worst_group_accuracy",
]

GROUP_METRICS = (
    "accuracy",
    "unbiased_accuracy",
    "aligned_accuracy",
    "conflicting_accuracy",
    "conflicting_sample_accuracy",
    "worst_group_accuracy",
)


def _as_long(x: ArrayLike, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        a = np.asarray(x)
        x = a if a.flags.writeable else a.copy()  # torch warns on read-only arrays
    t = torch.as_tensor(x)
    if t.is_floating_point() and not bool((t == t.round()).all()):
        raise DebiaskitError(f"{name} must hold integer class ids")
    return t.long().reshape(-1).cpu()


def group_accuracy_matrix(
    y_true: ArrayLike, y_pred: ArrayLike, *, sensitive_features: ArrayLike, num_classes: int, num_bias: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(correct, count)``, each ``(num_classes, num_bias)``, counted per (target, bias) cell.

    ``sensitive_features`` is the bias attribute (ids ``0..num_bias-1``); ``y_true``/``y_pred`` are class ids.
    """
    y, p = _as_long(y_true, "y_true"), _as_long(y_pred, "y_pred")
    b = _as_long(sensitive_features, "sensitive_features")
    if not (len(p) == len(y) == len(b)):
        raise DebiaskitError(f"length mismatch: y_true {len(y)}, y_pred {len(p)}, sensitive_features {len(b)}")
    for t, name, k in ((y, "y_true", num_classes), (p, "y_pred", num_classes), (b, "sensitive_features", num_bias)):
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= k):
            raise DebiaskitError(f"{name} has ids outside 0..{k - 1}")
    g = y * num_bias + b
    n = num_classes * num_bias
    count = torch.bincount(g, minlength=n).reshape(num_classes, num_bias)
    correct = torch.bincount(g, weights=(p == y).double(), minlength=n).reshape(num_classes, num_bias)
    return correct, count


def _cell_mean(acc: torch.Tensor, mask: torch.Tensor) -> float:
    vals = acc[mask & ~torch.isnan(acc)]
    return float(vals.mean()) if vals.numel() else math.nan


def unbiased_accuracy(
    y_true: ArrayLike, y_pred: ArrayLike, *, sensitive_features: ArrayLike, num_classes: int, num_bias: int
) -> float:
    """Mean of the per-(target, bias) cell accuracies over non-empty cells (LfF's unbiased accuracy)."""
    correct, count = group_accuracy_matrix(y_true, y_pred, sensitive_features=sensitive_features,
                                           num_classes=num_classes, num_bias=num_bias)
    acc = correct / count.double()
    return _cell_mean(acc, torch.ones_like(count, dtype=torch.bool))


def worst_group_accuracy(
    y_true: ArrayLike, y_pred: ArrayLike, *, sensitive_features: ArrayLike, num_classes: int, num_bias: int
) -> float:
    """Minimum cell accuracy over the non-empty (target, bias) cells (Sagawa et al. 2020)."""
    correct, count = group_accuracy_matrix(y_true, y_pred, sensitive_features=sensitive_features,
                                           num_classes=num_classes, num_bias=num_bias)
    acc = (correct / count.double())[count > 0]
    return float(acc.min()) if acc.numel() else math.nan


def bias_metrics(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sensitive_features: ArrayLike,
    num_classes: int,
    num_bias: int,
    aligned_cells: ArrayLike | None = None,
) -> dict[str, float]:
    """All group metrics of :data:`GROUP_METRICS` in one pass.

    ``aligned_cells`` is a bool ``(num_classes, num_bias)`` matrix; by default the diagonal.
    """
    correct, count = group_accuracy_matrix(y_true, y_pred, sensitive_features=sensitive_features,
                                           num_classes=num_classes, num_bias=num_bias)
    if aligned_cells is None:
        if num_classes != num_bias:
            raise DebiaskitError("aligned_cells is required when num_classes != num_bias")
        aligned_cells = torch.eye(num_classes, dtype=torch.bool)
    aligned = torch.as_tensor(aligned_cells, dtype=torch.bool).cpu()
    acc = correct / count.double()  # NaN for empty cells
    nonempty = count > 0
    total = int(count.sum())
    conf_n = int(count[~aligned].sum())
    return {
        "accuracy": float(correct.sum() / total) if total else math.nan,
        "unbiased_accuracy": _cell_mean(acc, nonempty),
        "aligned_accuracy": _cell_mean(acc, aligned & nonempty),
        "conflicting_accuracy": _cell_mean(acc, ~aligned & nonempty),
        "conflicting_sample_accuracy": float(correct[~aligned].sum() / conf_n) if conf_n else math.nan,
        "worst_group_accuracy": float(acc[nonempty].min()) if nonempty.any() else math.nan,
    }


def group_table(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    sensitive_features: ArrayLike,
    num_classes: int,
    num_bias: int,
    aligned_cells: ArrayLike | None = None,
    class_names: list[str] | None = None,
    bias_names: list[str] | None = None,
) -> list[dict[str, Any]]:
    """One row per non-empty (target, bias) cell: names, count, accuracy, aligned flag."""
    correct, count = group_accuracy_matrix(y_true, y_pred, sensitive_features=sensitive_features,
                                           num_classes=num_classes, num_bias=num_bias)
    if aligned_cells is None:
        aligned_cells = torch.eye(num_classes, num_bias, dtype=torch.bool)
    aligned = torch.as_tensor(aligned_cells, dtype=torch.bool)
    rows = []
    for y in range(num_classes):
        for b in range(num_bias):
            n = int(count[y, b])
            if n == 0:
                continue
            rows.append(
                {
                    "target": class_names[y] if class_names else y,
                    "bias": bias_names[b] if bias_names else b,
                    "aligned": bool(aligned[y, b]),
                    "count": n,
                    "accuracy": float(correct[y, b]) / n,
                }
            )
    return rows
