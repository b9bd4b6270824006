"""``balanced_split``: train with the plain task loss on an α-balanced subset of the training split.

Wang et al. (ICCV 2019, "α-balanced" splits) build α-balanced training sets: for every label y,
1/α ≤ #(g=0, y) / #(g=1, y) ≤ α. ``prepare_splits`` replaces the train split by such a subset before
training (val/test stay the original splits, as in the paper):

* binary protected attribute: :func:`debiaskit.leakage.splits.balanced_split` (exact per-label cap for
  single-label targets, the greedy removal for multi-hot targets);
* protected attribute with more than two values (e.g. Colored MNIST colours; single-label only): our own
  generalisation of the per-label cap — in every label y each cell (y, g) keeps at most
  α · min_g' n(y, g') samples (so every pairwise ratio inside a label is ≤ α), chosen uniformly at random
  with ``balance_seed``. A label with an empty cell is dropped entirely (as the binary cap does).

The train split's ``info`` gains ``balanced_split_alpha``, ``balanced_split_size`` and
``balanced_split_size_before`` (recorded in ``result.json`` → ``data.info``) and the full report
(``balanced_split``: group sizes, achieved max ratio, method). The subset is deterministic given
``balance_seed``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from debiaskit.data.base import DatasetSplits
from debiaskit.errors import DebiaskitError
from debiaskit.leakage.splits import balanced_split
from debiaskit.methods.base import TrainContext
from debiaskit.methods.bias_supervised import require_protected
from debiaskit.methods.registry import register_method
from debiaskit.methods.vanilla import Vanilla

__all__ = ["BalancedSplitMethod", "multivalue_balanced_indices"]


def multivalue_balanced_indices(targets: np.ndarray, bias: np.ndarray, alpha: float, *, num_classes: int,
                                num_bias: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of the α-balanced subset for a multi-valued protected attribute (single-label targets).

    Cell (y, g) keeps ``min(n(y,g), floor(α · min_g' n(y,g')))`` samples, drawn uniformly at random.
    Vectorised: random keys, rank within cell by a stable sort on (cell, key).
    """
    if not np.isfinite(alpha) or alpha < 1:
        raise DebiaskitError(f"balance_alpha must be >= 1, got {alpha}")
    cells = targets.astype(np.int64) * num_bias + bias.astype(np.int64)
    counts = np.bincount(cells, minlength=num_classes * num_bias).reshape(num_classes, num_bias)
    cap = np.minimum(counts, np.floor(alpha * counts.min(1, keepdims=True)).astype(np.int64)).reshape(-1)
    keys = np.random.default_rng(seed).random(len(cells))
    order = np.lexsort((keys, cells))
    sorted_cells = cells[order]
    starts = np.searchsorted(sorted_cells, np.arange(num_classes * num_bias))
    rank = np.arange(len(cells)) - starts[sorted_cells]
    keep = order[rank < cap[sorted_cells]]
    return np.sort(keep)


@register_method("balanced_split")
class BalancedSplitMethod(Vanilla):
    """Plain task loss on the α-balanced training subset (Wang et al. 2019 "α-split" baseline)."""

    labels_consumed = ("target", "bias")
    evaluated_model = "the single network (trained on the α-balanced subset)"

    paper = "Wang et al., Balanced Datasets Are Not Enough, ICCV 2019 (alpha-balanced splits, Sec. 3)"
    default_hparams = {"balance_alpha": 1.0, "balance_seed": 0}

    @classmethod
    def prepare_splits(cls, splits: DatasetSplits, hparams: dict[str, Any]) -> DatasetSplits:
        train = splits["train"]
        if train.num_bias < 2:
            raise DebiaskitError(
                f"method 'balanced_split' needs a protected (bias) attribute with at least 2 values; dataset "
                f"{train.name!r} has num_bias={train.num_bias}"
            )
        alpha, seed = float(hparams["balance_alpha"]), int(hparams["balance_seed"])
        y, g = train.targets.cpu().numpy(), train.bias.cpu().numpy()
        if train.num_bias == 2:
            res = balanced_split(y, g, alpha, seed=seed)
            idx, report = res.indices, {k: v for k, v in res.report.items() if k != "per_label"}
        else:
            if train.multilabel:
                raise DebiaskitError("balanced_split with multi-label targets needs a binary protected attribute")
            idx = multivalue_balanced_indices(y, g, alpha, num_classes=train.num_classes, num_bias=train.num_bias, seed=seed)
            report = {"alpha": alpha, "method": "per-label cap α·min over protected values", "seed": seed,
                      "size_before": int(len(y)), "size": int(len(idx))}
        if len(idx) == 0:
            raise DebiaskitError(f"the α={alpha} balanced subset of {train.name!r}/train is empty")
        sub = train.subset(torch.from_numpy(np.asarray(idx, dtype=np.int64)), split="train")
        sub.info = {**train.info, "balanced_split_alpha": alpha, "balanced_split_size": int(len(idx)),
                    "balanced_split_size_before": int(len(y)), "balanced_split": report}
        return DatasetSplits({**{k: v for k, v in splits.items()}, "train": sub}, info=dict(splits.info))

    def __init__(self, ctx: TrainContext, hparams: dict[str, Any]) -> None:
        require_protected(ctx, self.name)
        super().__init__(ctx, hparams)
