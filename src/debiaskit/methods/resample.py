"""``resample``: group-balanced sampling (every non-empty group equally likely in every batch).

Each batch draws ``batch_size`` training indices *with replacement* with probability ∝ 1 / n_{g_i}
(single-label groups = (target, bias) cells; multi-label groups = protected values), so each non-empty
group has probability 1/G' per draw (Sagawa et al. 2020 "upweighting by resampling"; Idrissi et al. 2022
"SUBG"-style sampling without discarding data). Draws use the run's generator (exact resume). The loss is
the plain task loss.
"""

from __future__ import annotations

from typing import Any

import torch

from debiaskit.methods.base import TrainContext
from debiaskit.methods.bias_supervised import group_ids, num_groups, require_protected
from debiaskit.methods.registry import register_method
from debiaskit.methods.vanilla import Vanilla

__all__ = ["Resample", "group_balanced_probabilities"]


def group_balanced_probabilities(groups: torch.Tensor, n_groups: int) -> torch.Tensor:
    """Sampling probability per sample: 1 / (G' · n_{g_i}) (sums to 1)."""
    counts = torch.bincount(groups, minlength=n_groups).float()
    nonempty = int((counts > 0).sum())
    return 1.0 / (nonempty * counts[groups])


@register_method("resample")
class Resample(Vanilla):
    """Plain task loss on group-balanced batches drawn with replacement."""

    labels_consumed = ("target", "bias")
    evaluated_model = "the single network"

    def __init__(self, ctx: TrainContext, hparams: dict[str, Any]) -> None:
        require_protected(ctx, self.name)
        super().__init__(ctx, hparams)
        g = group_ids(ctx.train_targets, ctx.train_bias, num_bias=ctx.num_bias, multilabel=ctx.multilabel)
        self.register_buffer("probs", group_balanced_probabilities(g, num_groups(ctx)).to(ctx.generator.device))

    def sample_indices(self, step: int) -> torch.Tensor:
        return torch.multinomial(self.probs, int(self.hparams["batch_size"]), replacement=True,
                                 generator=self.ctx.generator)
