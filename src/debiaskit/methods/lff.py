"""``lff``: Learning from Failure (Nam et al., NeurIPS 2020), as in the official code (``alinlab/LfF`` ``train.py``).

Two networks of the same architecture are trained on the same mini-batch:

* ``f_B`` (biased) with the GCE surrogate (:func:`debiaskit.losses.generalized_ce`, q = 0.7, official
  gradient scaling ``q·p_y^q·∇CE``);
* ``f_D`` (debiased, the evaluated model) with the per-sample re-weighted CE ``mean_i(W_i · CE_i)``, where
  ``W = m̂_b / (m̂_b + m̂_d + 1e-8)`` (LfF Eq. 1) from per-sample EMAs (α = 0.7) of both branches' plain CE,
  normalised by the class maximum over the whole training set. EMAs are updated before ``W`` is read, ``W``
  is applied from step 1, and the weighted loss is a plain batch mean (``docs/methods_lff_disent.md`` details 2-5).

Each network has its own optimiser with the run's optimiser/lr/weight decay (no LR schedule in the official
code; ``lr_schedule`` is honoured if set). One ``backward()`` on the sum, then both optimisers step — the two
terms touch disjoint parameters.

Differences from the official code: the EMA tables live on the training device (the official code keeps them
on the CPU — same numbers); the class maximum is floored at 1e-12 (the official code yields NaN when a whole
class has exactly zero loss).
"""

from __future__ import annotations

from typing import Any

import torch

from debiaskit.errors import DebiaskitError
from debiaskit.losses import DEFAULT_EMA_ALPHA, DEFAULT_Q, RelativeDifficulty, generalized_ce
from debiaskit.methods.base import Batch, Method, TrainContext
from debiaskit.methods.registry import register_method
from debiaskit.methods.space import Uniform


@register_method("lff")
class LfF(Method):
    """Learning from Failure; evaluates the debiased network ``f_D``. Uses target labels only."""

    labels_consumed = ("target",)
    evaluated_model = "the debiased network f_D"

    paper = "Nam et al., Learning from Failure, NeurIPS 2020"
    default_hparams = {"q": DEFAULT_Q, "ema_alpha": DEFAULT_EMA_ALPHA}
    #: the official LfF budgets (Nam et al. 2020, App. / official scripts): Colored MNIST 100-d MLP, Adam 1e-3,
    #: 23.5k steps; Corrupted CIFAR-10 ResNet-20, 196 x 200 = 39.2k steps
    dataset_hparams = {
        "colored_mnist": {"model": "mlp_lff", "lr": 1e-3, "batch_size": 256, "steps": 23500},
        "corrupted_cifar10": {"model": "resnet20", "lr": 1e-3, "batch_size": 256, "steps": 39200},
    }
    search_space = {"q": Uniform(0.3, 0.9), "ema_alpha": Uniform(0.5, 0.9)}

    def __init__(self, ctx: TrainContext, hparams: dict[str, Any]) -> None:
        super().__init__(ctx, hparams)
        if ctx.multilabel:
            raise DebiaskitError("lff needs a single-label task (its losses are softmax cross-entropies)")
        self.model_b = self.make_model()
        self.model_d = self.make_model()
        self.opt_b = self.add_optimizer("biased", self.model_b.parameters())
        self.opt_d = self.add_optimizer("debiased", self.model_d.parameters())
        self.q = float(self.hparams["q"])
        self.reweight = RelativeDifficulty(ctx.train_targets, ctx.num_classes, alpha=float(self.hparams["ema_alpha"]))

    def losses(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The LfF objective of one batch (both forwards, EMA update, W, GCE + W·CE); loss and detached logs."""
        logits_b = self.model_b(batch.x)
        logits_d = self.model_d(batch.x)
        ce_b = torch.nn.functional.cross_entropy(logits_b, batch.y, reduction="none")
        ce_d = torch.nn.functional.cross_entropy(logits_d, batch.y, reduction="none")
        w = self.reweight.weights(batch.idx, batch.y, ce_b.detach(), ce_d.detach())
        loss_b = generalized_ce(logits_b, batch.y, q=self.q).mean()
        loss_d = (w * ce_d).mean()
        logs = {"loss_b": loss_b.detach(), "loss_d": loss_d.detach(), "ce_b": ce_b.detach().mean(),
                "ce_d": ce_d.detach().mean(), "w_mean": w.mean()}
        return loss_b + loss_d, logs

    def update(self, batch: Batch, step: int) -> dict[str, Any]:
        self.model_b.train()
        self.model_d.train()
        loss, logs = self.losses(batch)
        self.opt_b.zero_grad(set_to_none=True)
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_b.step()
        self.opt_d.step()
        return logs

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        self.model_d.eval()
        return self.model_d(x)

    @torch.no_grad()
    def predict_biased(self, x: torch.Tensor) -> torch.Tensor:
        """The biased network's logits (diagnostics)."""
        self.model_b.eval()
        return self.model_b(x)
