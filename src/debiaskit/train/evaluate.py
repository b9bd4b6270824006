"""Evaluation of a method on a split: predictions in large batches, then the group metrics."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from debiaskit.data.augment import make_batch_transform
from debiaskit.data.base import BiasedDataset
from debiaskit.metrics.groups import bias_metrics


@torch.no_grad()
def predict_logits(method: Any, dataset: BiasedDataset, *, device: torch.device, batch_size: int = 2048) -> torch.Tensor:
    """Logits of ``method.predict`` over the whole split (returned on CPU)."""
    transform = make_batch_transform(dataset.info, train=False)
    out = []
    for start in range(0, len(dataset), batch_size):
        x = dataset.images[start : start + batch_size].to(device, non_blocking=True)
        out.append(method.predict(transform(x)).float().cpu())
    return torch.cat(out) if out else torch.zeros(0, dataset.num_classes)


def macro_average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Macro AP over labels with at least one positive (multi-label evaluation)."""
    from sklearn.metrics import average_precision_score

    keep = targets.sum(0) > 0
    if not keep.any():
        return math.nan
    return float(average_precision_score(targets[:, keep], scores[:, keep], average="macro"))


def split_metrics(logits: torch.Tensor, dataset: BiasedDataset) -> dict[str, Any]:
    """Metrics of one split from its logits: group accuracies (single-label) or mAP (multi-label), and the loss.

    Single-label splits also carry ``group_count`` / ``group_correct``: ``(num_classes, num_bias)`` integer
    matrices of samples and correct predictions per (target, bias) cell.
    """
    y = dataset.targets.cpu()
    if dataset.multilabel:
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y.float()).item() if len(y) else math.nan
        return {"mAP": macro_average_precision(torch.sigmoid(logits).numpy(), y.numpy()), "loss": loss}
    preds = logits.argmax(1)
    out = bias_metrics(
        y, preds, sensitive_features=dataset.bias.cpu(), num_classes=dataset.num_classes, num_bias=dataset.num_bias,
        aligned_cells=dataset.aligned_cells.cpu(),
    )
    out["loss"] = torch.nn.functional.cross_entropy(logits, y).item() if len(y) else math.nan
    # per-(target, bias) cell counts: what heat maps and group-level post-hoc rules need
    g = y.long() * dataset.num_bias + dataset.bias.cpu().long()
    n_cells = dataset.num_classes * dataset.num_bias
    out["group_count"] = torch.bincount(g, minlength=n_cells).reshape(dataset.num_classes, -1).tolist()
    out["group_correct"] = (
        torch.bincount(g, weights=(preds == y).double(), minlength=n_cells).long()
        .reshape(dataset.num_classes, -1).tolist()
    )
    return out
