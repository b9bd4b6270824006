"""``disent``: Learning Debiased Representation via Disentangled Feature Augmentation (Lee et al., NeurIPS 2021).

Implemented from the paper (Lee et al., NeurIPS 2021, Eqs. 1–4) and our reading of the official learner.py, described
in words; nothing copied (code details: docs/methods_lff_disent.md details 6–9, 12).

Modules: an intrinsic encoder ``E_i`` and a bias encoder ``E_b`` (two networks built with the run's
``model``; their own heads are discarded) and two heads ``C_i``, ``C_b`` = ``Linear(2·feature_dim, C)`` on the
concatenation ``[z_i ; z_b]``. For Colored MNIST (``mlp_disent``, 16-d features) the heads are Linear(32, 10).

Per step (Eqs. 2–4), with ``sg`` = stop-gradient:

1. ``z_i = E_i(x)``, ``z_b = E_b(x)``; ``p_i = C_i([z_i ; sg(z_b)])``, ``p_b = C_b([sg(z_i) ; z_b])``.
2. EMAs of the detached plain CE of both heads, class-max normalisation, ``W = m̂_b / (m̂_b + m̂_d + 1e-8)``
   (Eq. 1, :mod:`debiaskit.losses`).
3. ``L_dis = mean(W · CE(p_i, y)) + λ_dis · mean(GCE(p_b, y))`` (Eq. 2).
4. After the curriculum (0-based official step ``> curr_step``; here ``step > curr_step + 1`` with our 1-based
   step numbering): a random in-batch permutation ``π`` (drawn with the run's generator, it may leave samples
   in place), ``z̃_b = z_b[π]``, ``ỹ = y[π]``;
   ``L_swap = mean(W · CE(C_i([z_i ; sg(z̃_b)]), y)) + λ_swap_b · mean(GCE(C_b([sg(z_i) ; z̃_b]), ỹ))`` (Eq. 3) —
   the intrinsic head keeps ``y`` and the un-permuted ``W``; the bias head learns the permuted label.
5. ``L = L_dis + λ_swap · L_swap`` (Eq. 4); one backward, both Adam optimisers step.

Gradient routing: ``E_b``/``C_b`` get gradient only from the GCE terms, ``E_i``/``C_i`` only from the W·CE
terms (``C_i``'s weights on its ``z_b`` half still learn: only the *input* is detached).

LR schedule (docs/methods_lff_disent.md detail 7): the run's scheduler (StepLR with ``lr_step_size`` = the official ``lr_decay_step`` = 10 000 and
``lr_gamma``) is stepped only once the official 0-based step index is ``>= curr_step``, i.e. after our 1-based
update ``step > curr_step``; with curr 10k the lr is lr0 for updates 1-20 000, then decays every 10k.

Test time: ``C_i([E_i(x) ; E_b(x)])`` — both encoders are needed.

Per-dataset defaults come from the authors' released scripts (``dataset_hparams``); on Corrupted CIFAR-10 the
learning rate and λ also depend on the conflicting ratio (``ratio_hparams``: 0.5 %: lr 5e-4, λ 1; 1 %, 2 %:
1e-3, λ 5; 5 %: 1e-3, λ 1). Every entry point resolves them through
:func:`debiaskit.experiments.hparams.resolve_hparams`, so ``train`` and ``sweep`` agree.

Differences from the official code: the features are taken from ``model.features(x)`` (no forward hook, no
wasted fc forward); the permutation comes from the run's seeded generator (the official code uses unseeded
numpy); the EMA/class-max details of :mod:`debiaskit.losses` apply.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from debiaskit.errors import DebiaskitError
from debiaskit.losses import DEFAULT_EMA_ALPHA, DEFAULT_Q, RelativeDifficulty, generalized_ce
from debiaskit.methods.base import Batch, Method, TrainContext
from debiaskit.methods.registry import register_method
from debiaskit.methods.space import Choice, LogUniform

_DEFAULTS = {
    "q": DEFAULT_Q,
    "ema_alpha": DEFAULT_EMA_ALPHA,
    "lambda_dis": 1.0,
    "lambda_swap_b": 1.0,
    "lambda_swap": 1.0,
    "curr_step": 10000,
    "steps": 50000,
    "lr_schedule": "step",
    "lr_step_size": 10000,
    "lr_gamma": 0.5,
    "weight_decay": 0.0,
}


class _Head(nn.Module):
    """``Linear(2·feature_dim, C)`` on ``[z_i ; z_b]`` (DisEnt's ``MLP_DISENTANGLE.fc`` / ResNet ``fc`` of 1024)."""

    def __init__(self, feature_dim: int, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(2 * feature_dim, num_classes)

    def forward(self, z_i: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.cat([z_i, z_b], dim=1))


@register_method("disent")
class DisEnt(Method):
    """DisEnt; evaluates ``C_i([E_i(x) ; E_b(x)])``. Uses target labels only."""

    labels_consumed = ("target",)
    evaluated_model = "the intrinsic head C_i on [E_i(x); E_b(x)] (both encoders)"
    paper = "Lee et al., Learning Debiased Representation via Disentangled Feature Augmentation, NeurIPS 2021"
    default_hparams = _DEFAULTS
    #: the official per-dataset settings (the authors' released training scripts; see docs/methods_lff_disent.md)
    dataset_hparams = {
        "colored_mnist": {"model": "mlp_disent", "lr": 0.01, "batch_size": 256, "lambda_dis": 10.0,
                          "lambda_swap_b": 10.0, "lambda_swap": 1.0, "lr_gamma": 0.5},
        "corrupted_cifar10": {"model": "resnet18", "lr": 1e-3, "batch_size": 256, "lambda_dis": 5.0,
                              "lambda_swap_b": 5.0, "lambda_swap": 1.0, "lr_gamma": 0.5},
        "bffhq": {"model": "resnet18", "lr": 1e-4, "batch_size": 64, "lambda_dis": 2.0, "lambda_swap_b": 2.0,
                  "lambda_swap": 0.1, "lr_gamma": 0.1},
    }
    #: the official settings that change with the conflicting ratio (Corrupted CIFAR-10 scripts)
    ratio_hparams = {
        ("corrupted_cifar10", 0.005): {"lr": 5e-4, "lambda_dis": 1.0, "lambda_swap_b": 1.0},
        ("corrupted_cifar10", 0.01): {"lr": 1e-3, "lambda_dis": 5.0, "lambda_swap_b": 5.0},
        ("corrupted_cifar10", 0.02): {"lr": 1e-3, "lambda_dis": 5.0, "lambda_swap_b": 5.0},
        ("corrupted_cifar10", 0.05): {"lr": 1e-3, "lambda_dis": 1.0, "lambda_swap_b": 1.0},
    }
    search_space = {
        "lr": LogUniform(1e-4, 1e-2),
        "lambda_dis": Choice([1.0, 2.0, 5.0, 10.0]),
        "lambda_swap_b": Choice([1.0, 2.0, 5.0, 10.0]),
        "lambda_swap": Choice([0.1, 0.5, 1.0]),
    }

    def __init__(self, ctx: TrainContext, hparams: dict[str, Any]) -> None:
        super().__init__(ctx, hparams)
        hp = self.hparams
        if ctx.multilabel:
            raise DebiaskitError("disent needs a single-label task (it trains with cross-entropy)")
        for k in ("lambda_dis", "lambda_swap_b", "lambda_swap"):
            if float(hp[k]) < 0:
                raise DebiaskitError(f"{k} must be >= 0, got {hp[k]}")
        if int(hp["curr_step"]) < 0:
            raise DebiaskitError(f"curr_step must be >= 0, got {hp['curr_step']}")
        self.enc_i = self.make_model()
        self.enc_b = self.make_model()
        dim = int(self.enc_i.feature_dim)
        # the encoders' own heads are never used: drop them so they hold no dead parameters
        self.enc_i.head = nn.Identity()
        self.enc_b.head = nn.Identity()
        self.head_i = _Head(dim, ctx.num_classes).to(ctx.device)
        self.head_b = _Head(dim, ctx.num_classes).to(ctx.device)
        self.opt_i = self.add_optimizer("intrinsic", [*self.enc_i.parameters(), *self.head_i.parameters()])
        self.opt_b = self.add_optimizer("bias", [*self.enc_b.parameters(), *self.head_b.parameters()])
        self.q = float(hp["q"])
        self.curr_step = int(hp["curr_step"])
        self.lambda_dis = float(hp["lambda_dis"])
        self.lambda_swap_b = float(hp["lambda_swap_b"])
        self.lambda_swap = float(hp["lambda_swap"])
        self.reweight = RelativeDifficulty(ctx.train_targets, ctx.num_classes, alpha=float(hp["ema_alpha"]))

    def swap_active(self, step: int) -> bool:
        """Whether update ``step`` (1-based) uses feature swapping: official 0-based ``step - 1 > curr_step``."""
        return step - 1 > self.curr_step

    def loss_terms(self, batch: Batch, step: int) -> dict[str, torch.Tensor | None]:
        """The four loss terms of Eqs. 2–3 of the DisEnt paper (with gradients) plus the weight ``w`` and permutation ``perm``.

        ``dis_i = mean(W·CE(C_i([z_i; sg(z_b)]), y))``, ``dis_b = mean(GCE(C_b([sg(z_i); z_b]), y))``,
        ``swap_i = mean(W·CE(C_i([z_i; sg(z_b[π])]), y))``, ``swap_b = mean(GCE(C_b([sg(z_i); z_b[π]]), y[π]))``
        (the swap terms are ``None`` before the curriculum).
        """
        x, y = batch.x, batch.y
        z_i = self.enc_i.features(x)
        z_b = self.enc_b.features(x)
        z_i_sg, z_b_sg = z_i.detach(), z_b.detach()
        p_i = self.head_i(z_i, z_b_sg)
        p_b = self.head_b(z_i_sg, z_b)
        ce_i = F.cross_entropy(p_i, y, reduction="none")
        ce_b = F.cross_entropy(p_b, y, reduction="none")
        w = self.reweight.weights(batch.idx, y, ce_b.detach(), ce_i.detach())
        terms: dict[str, torch.Tensor | None] = {
            "dis_i": (w * ce_i).mean(),
            "dis_b": generalized_ce(p_b, y, q=self.q).mean(),
            "swap_i": None, "swap_b": None, "w": w, "perm": None,
        }
        if self.swap_active(step):
            perm = torch.randperm(y.shape[0], generator=self.ctx.generator, device=self.ctx.generator.device)
            perm = perm.to(y.device)
            z_b_sw, y_sw = z_b[perm], y[perm]
            p_i_sw = self.head_i(z_i, z_b_sw.detach())
            p_b_sw = self.head_b(z_i_sg, z_b_sw)
            terms["swap_i"] = (w * F.cross_entropy(p_i_sw, y, reduction="none")).mean()
            terms["swap_b"] = generalized_ce(p_b_sw, y_sw, q=self.q).mean()
            terms["perm"] = perm
        return terms

    def losses(self, batch: Batch, step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``L = L_dis + λ_swap · L_swap`` (Eq. 4) of one batch and its detached logs."""
        t = self.loss_terms(batch, step)
        loss = t["dis_i"] + self.lambda_dis * t["dis_b"]
        zero = torch.zeros((), device=loss.device)
        if t["swap_i"] is not None:
            loss = loss + self.lambda_swap * (t["swap_i"] + self.lambda_swap_b * t["swap_b"])
        logs = {
            "loss_dis_i": t["dis_i"].detach(), "loss_dis_b": t["dis_b"].detach(),
            "loss_swap_i": zero if t["swap_i"] is None else t["swap_i"].detach(),
            "loss_swap_b": zero if t["swap_b"] is None else t["swap_b"].detach(),
            "w_mean": t["w"].mean(),
        }
        return loss, logs

    def update(self, batch: Batch, step: int) -> dict[str, Any]:
        self.train()
        loss, logs = self.losses(batch, step)
        self.opt_i.zero_grad(set_to_none=True)
        self.opt_b.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_i.step()
        self.opt_b.step()
        logs["loss"] = loss.detach()
        return logs

    def on_step_end(self, step: int) -> None:
        """Step the LR schedulers only after the curriculum (official: 0-based index ``>= curr_step``)."""
        if step - 1 >= self.curr_step:
            for s in self.schedulers.values():
                s.step()

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        self.eval()
        return self.head_i(self.enc_i.features(x), self.enc_b.features(x))
