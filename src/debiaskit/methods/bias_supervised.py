"""Shared pieces of the bias-supervised methods (they read the protected / bias labels of training data).

* :func:`require_protected` — clear error when a dataset has no usable protected attribute;
* :func:`group_ids` — group id per training sample: ``target · num_bias + bias`` for single-label tasks
  (the SubpopBench / Sagawa et al. cells), the protected value alone for multi-label tasks;
* :func:`balanced_positions` — the protected-balanced mini-batch of Wang et al. (ICCV 2019; the
  authors' ``--batch_balanced``):
  from a loader batch keep the first ``k`` samples of every protected value, or report that it cannot be
  balanced (the paper then skips the batch);
* :class:`ProtectedBalancedSampler` — draws loader batches with the run's generator and returns balanced
  batches, counting skipped draws, with a bounded number of re-draws (never an infinite loop).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from debiaskit.errors import DebiaskitError
from debiaskit.methods.base import TrainContext

__all__ = ["require_protected", "group_ids", "num_groups", "balanced_positions", "ProtectedBalancedSampler"]


def require_protected(ctx: TrainContext, method: str) -> None:
    """Raise a one-line error unless the training data have a protected attribute with ≥ 2 observed values."""
    if ctx.num_bias < 2:
        raise DebiaskitError(
            f"method {method!r} needs a protected (bias) attribute with at least 2 values; dataset "
            f"{ctx.dataset!r} has num_bias={ctx.num_bias}"
        )
    present = int(torch.unique(ctx.train_bias).numel()) if ctx.n_train else 0
    if present < 2:
        raise DebiaskitError(
            f"method {method!r} needs training samples of at least 2 protected groups; the training split of "
            f"{ctx.dataset!r} has {present}"
        )


def num_groups(ctx: TrainContext) -> int:
    return ctx.num_bias if ctx.multilabel else ctx.num_classes * ctx.num_bias


def group_ids(targets: torch.Tensor, bias: torch.Tensor, *, num_bias: int, multilabel: bool) -> torch.Tensor:
    """Group id per sample: ``y · num_bias + b`` (single-label) or ``b`` (multi-label: groups = protected value)."""
    if multilabel:
        return bias.long()
    return targets.long() * int(num_bias) + bias.long()


def balanced_positions(b: torch.Tensor, per_group: int, n_values: int) -> torch.Tensor | None:
    """Positions (in loader order) of the first ``per_group`` samples of every protected value.

    Returns ``None`` when some value has fewer than ``per_group`` samples in ``b`` (the batch cannot be
    balanced). Vectorised: rank within value = cumulative count of the one-hot codes.
    """
    onehot = F.one_hot(b.long(), n_values)
    counts = onehot.sum(0)
    if bool((counts < per_group).any()):
        return None
    rank = (onehot.cumsum(0) * onehot).sum(1) - 1
    return torch.nonzero(rank < per_group).squeeze(1)


class ProtectedBalancedSampler:
    """Protected-balanced batches (Wang et al. 2019 ``--batch_balanced``; ``docs/methods_adversarial.md`` detail 1).

    Each attempt draws a loader batch of ``ceil(loader_factor · batch_size)`` distinct training indices
    uniformly at random (with the run's generator, so resume is exact) and keeps the first
    ``batch_size // n_values`` of every protected value. An attempt that cannot be balanced is *skipped*
    and counted; after ``1 + max_redraws`` failed attempts the step itself is marked skipped
    (``next()`` returns ``None``) — the caller then performs no update. Differences from the official
    code: loader batches are i.i.d. draws rather than consecutive slices of an epoch permutation, and a
    bounded number of re-draws replaces "skip and move to the next loader batch".
    """

    def __init__(self, ctx: TrainContext, batch_size: int, *, loader_factor: float = 2.5, max_redraws: int = 3) -> None:
        n_values = int(ctx.num_bias)
        if loader_factor < 1:
            raise DebiaskitError(f"loader_factor must be >= 1, got {loader_factor}")
        if int(max_redraws) < 0:
            raise DebiaskitError(f"balance_redraws must be >= 0, got {max_redraws}")
        self.per_group = int(batch_size) // n_values
        if self.per_group < 1:
            raise DebiaskitError(
                f"batch_size {batch_size} is smaller than the number of protected values ({n_values}); "
                "a protected-balanced batch needs at least one sample of each"
            )
        counts = torch.bincount(ctx.train_bias.long(), minlength=n_values)
        if int(counts.min()) < self.per_group:
            raise DebiaskitError(
                f"protected-balanced batches need {self.per_group} samples of every protected value, but the "
                f"training split has {counts.tolist()} per value; lower batch_size or set balanced_batches=false"
            )
        self.n = int(ctx.n_train)
        self.m = min(self.n, int(math.ceil(loader_factor * batch_size)))
        self.n_values = n_values
        self.bias = ctx.train_bias
        self.generator = ctx.generator
        self.max_redraws = int(max_redraws)

    def next(self) -> tuple[torch.Tensor | None, int]:
        """``(indices or None, number of skipped attempts)``."""
        skipped = 0
        for _ in range(1 + self.max_redraws):
            idx = torch.randperm(self.n, generator=self.generator, device=self.generator.device)[: self.m]
            pos = balanced_positions(self.bias[idx.to(self.bias.device)], self.per_group, self.n_values)
            if pos is not None:
                return idx[pos.to(idx.device)], skipped
            skipped += 1
        return None, skipped
