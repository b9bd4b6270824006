"""``groupdro``: online group distributionally robust optimisation (Sagawa et al., ICLR 2020, Algorithm 1).

Group weights q on the simplex (one per group: single-label (target, bias) cells, multi-label protected
values), initialised uniform over the groups present in training. Every step, with L_g the mean loss of
group g in the batch (optionally plus the generalisation adjustment C / sqrt(n_g), Sagawa et al. eq. 5):

    q_g ← q_g · exp(η · L_g)   for groups present in the batch;   q ← q / Σ q
    loss = Σ_g q_g · L_g

(the exponentiated-gradient ascent on q, then a gradient step on θ). ``dro_eta`` = η (paper: 0.01),
``dro_adjustment`` = C (0 = none). Groups absent from a batch keep their weight. q is a buffer, so it is
checkpointed and resumes exactly. Batches are the trainer's shuffled epochs (Sagawa et al. also run GroupDRO
with plain sampling or group-balanced sampling; use ``resample`` for the latter's sampler).
"""

from __future__ import annotations

from typing import Any

import torch

from debiaskit.errors import DebiaskitError
from debiaskit.methods.base import Batch, TrainContext
from debiaskit.methods.bias_supervised import group_ids, num_groups, require_protected
from debiaskit.methods.registry import register_method
from debiaskit.methods.space import LogUniform
from debiaskit.methods.vanilla import Vanilla

__all__ = ["GroupDRO", "groupdro_step"]


def groupdro_step(q: torch.Tensor, per_sample_loss: torch.Tensor, groups: torch.Tensor, *, eta: float,
                  adjustment: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One online GroupDRO step. Returns ``(new q, robust loss Σ q_g L_g, per-group mean losses)``.

    ``q`` is not modified in place; the new q is detached (it is not differentiated through).
    """
    G = q.numel()
    counts = torch.bincount(groups, minlength=G).to(per_sample_loss.dtype)
    sums = torch.zeros(G, dtype=per_sample_loss.dtype, device=per_sample_loss.device).index_add_(0, groups, per_sample_loss)
    present = counts > 0
    group_loss = sums / counts.clamp_min(1)
    score = group_loss.detach() + (adjustment if adjustment is not None else 0.0)
    new_q = q * torch.exp(eta * torch.where(present, score, torch.zeros_like(score)))
    new_q = new_q / new_q.sum()
    return new_q.detach(), (new_q * group_loss).sum(), group_loss.detach()


@register_method("groupdro")
class GroupDRO(Vanilla):
    """Minimise the q-weighted group losses while q ascends towards the worst group."""

    labels_consumed = ("target", "bias")
    evaluated_model = "the single network"

    paper = "Sagawa et al., Distributionally Robust Neural Networks, ICLR 2020 (online GroupDRO, Alg. 1)"
    default_hparams = {"dro_eta": 0.01, "dro_adjustment": 0.0}
    search_space = {"dro_eta": LogUniform(1e-3, 1e-1)}

    def __init__(self, ctx: TrainContext, hparams: dict[str, Any]) -> None:
        require_protected(ctx, self.name)
        super().__init__(ctx, hparams)
        eta, adj = float(self.hparams["dro_eta"]), float(self.hparams["dro_adjustment"])
        if not eta > 0:
            raise DebiaskitError(f"dro_eta must be > 0, got {self.hparams['dro_eta']}")
        if adj < 0:
            raise DebiaskitError(f"dro_adjustment must be >= 0, got {adj}")
        self.eta = eta
        G = num_groups(ctx)
        g = group_ids(ctx.train_targets, ctx.train_bias, num_bias=ctx.num_bias, multilabel=ctx.multilabel)
        counts = torch.bincount(g, minlength=G).float()
        q = (counts > 0).float()
        self.register_buffer("q", q / q.sum())
        self.register_buffer("adjustment", adj / counts.clamp_min(1).sqrt())

    def objective(self, batch: Batch) -> tuple[torch.Tensor, dict[str, Any]]:
        g = group_ids(batch.y, batch.b, num_bias=self.ctx.num_bias, multilabel=self.ctx.multilabel)
        per = self.task_loss(self.model(batch.x), batch.y, reduction="none")
        new_q, loss, group_loss = groupdro_step(self.q, per, g, eta=self.eta, adjustment=self.adjustment)
        self.q.copy_(new_q)
        return loss, {"avg_loss": per.detach().mean(), "max_q": self.q.max(), "worst_group_batch_loss": group_loss.max()}
