"""``reweight``: importance weighting by inverse group frequency (the standard bias-supervised baseline).

Every training sample of group g (single-label: the cell (target, bias); multi-label: the protected value)
gets the weight w_g = N / (G' · n_g), where n_g is the group's training count and G' the number of
non-empty groups. The loss of a batch is ``mean_i w_{g_i} · ℓ_i``: in expectation over uniformly drawn
batches this is the *group-balanced* risk (1/G') Σ_g E[ℓ | g] (e.g. Sagawa et al. 2020, §"Importance
weighting" baseline; Idrissi et al. 2022 "SUBG/RWG"). We do not renormalise by the batch's weight sum
(that would be a biased estimate); batches are the trainer's shuffled epochs.
"""

from __future__ import annotations

from typing import Any

import torch

from debiaskit.methods.base import Batch, TrainContext
from debiaskit.methods.bias_supervised import group_ids, num_groups, require_protected
from debiaskit.methods.registry import register_method
from debiaskit.methods.vanilla import Vanilla

__all__ = ["Reweight", "inverse_group_weights"]


def inverse_group_weights(groups: torch.Tensor, n_groups: int) -> torch.Tensor:
    """Weight per group N / (G' n_g) (0 for empty groups); mean weight over the samples is 1."""
    counts = torch.bincount(groups, minlength=n_groups).float()
    nonempty = int((counts > 0).sum())
    return torch.where(counts > 0, groups.numel() / (nonempty * counts.clamp_min(1)), torch.zeros_like(counts))


@register_method("reweight")
class Reweight(Vanilla):
    """Task loss weighted by inverse group frequency (groups = target × protected cells)."""

    labels_consumed = ("target", "bias")
    evaluated_model = "the single network"

    def __init__(self, ctx: TrainContext, hparams: dict[str, Any]) -> None:
        require_protected(ctx, self.name)
        super().__init__(ctx, hparams)
        g = group_ids(ctx.train_targets, ctx.train_bias, num_bias=ctx.num_bias, multilabel=ctx.multilabel)
        self.register_buffer("group_weights", inverse_group_weights(g, num_groups(ctx)))

    def objective(self, batch: Batch) -> tuple[torch.Tensor, dict[str, Any]]:
        g = group_ids(batch.y, batch.b, num_bias=self.ctx.num_bias, multilabel=self.ctx.multilabel)
        per = self.task_loss(self.model(batch.x), batch.y, reduction="none")
        return (self.group_weights[g] * per).mean(), {"unweighted_loss": per.detach().mean()}
