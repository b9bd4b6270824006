"""``adversarial``: feature-level adversarial removal of the protected attribute (Wang et al. ICCV 2019, adv@conv4/5).

The task network (any registered model) is trained on its task loss while an adversary MLP predicts the
protected attribute from a *tapped* intermediate representation (:mod:`debiaskit.models.taps`: ``conv4`` =
ResNet ``layer3``, ``conv5`` = ``layer4``, ``features``, MLP ``layers.i``; unpooled-flattened by default,
the paper's ``--no_avgpool``). A gradient reversal layer sits between tap and adversary, so with one
optimiser on

    L = L_task(f(x), y) + L_adv(a(GRL_λ(h(x))), g)

the adversary minimises L_adv while the trunk receives ``-λ ∇_h L_adv`` (λ scales only the gradient
into the trunk; the adversary trains on plain cross-entropy — ``docs/methods_adversarial.md`` detail 1).

Adversary: ``Linear(in, 300) → BN → LeakyReLU → [Linear(300, 300) → BN → LeakyReLU] × 2 → Linear(300, G)``
(``adv_hidden``, ``adv_layers`` hidden layers; LeakyReLU slope 0.01).

Mini-batches are **protected-balanced** (paper ``--batch_balanced``): from a loader batch of
``loader_factor × batch_size`` random training samples the first ``batch_size // G`` of every protected
value are kept; an unbalanceable draw is skipped and counted (``skipped_draws`` in the logs), and after
``balance_redraws`` failed re-draws the step performs no update (``skipped_step``) — never an infinite loop.

Options beyond the paper: ``adv_warmup_steps`` (the first steps train only the adversary, trunk frozen),
``lambda_schedule`` = ``constant`` (paper) | ``linear`` (ramp 0 → λ over ``lambda_ramp_steps`` after the
warm-up) | ``dann`` (λ·(2/(1+e^{-10p}) − 1), p = progress after warm-up; Ganin & Lempitsky 2015).

Task loss: single-label cross-entropy; multi-label BCE-with-logits. ``class_weights="auto"`` follows the
paper: multi-label per-class weight w_c = #neg_c / #pos_c on the *whole* per-class term (not
``pos_weight``), single-label unweighted; ``"balanced"`` also weights single-label CE by n / (C · n_c);
``"none"`` disables weights.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from debiaskit.errors import DebiaskitError
from debiaskit.methods.base import Batch, Method, TrainContext
from debiaskit.methods.bias_supervised import ProtectedBalancedSampler, require_protected
from debiaskit.methods.grl import check_lambda, grad_reverse
from debiaskit.methods.registry import register_method
from debiaskit.methods.space import LogUniform
from debiaskit.models.taps import POOLS, FeatureTap

__all__ = ["Adversarial", "AdversaryMLP", "BalancedBatchesMixin", "lambda_at", "task_class_weights", "weighted_task_loss"]

LAMBDA_SCHEDULES = ("constant", "linear", "dann")
CLASS_WEIGHTS = ("auto", "none", "balanced")


class AdversaryMLP(nn.Module):
    """The paper's adversary / attacker head: (Linear → BN → LeakyReLU) × ``layers`` → Linear(hidden, n_out)."""

    def __init__(self, n_in: int, n_out: int, *, hidden: int = 300, layers: int = 3, negative_slope: float = 0.01) -> None:
        super().__init__()
        if int(layers) < 1 or int(hidden) < 1:
            raise DebiaskitError(f"adversary needs >= 1 hidden layer of width >= 1, got layers={layers}, hidden={hidden}")
        mods: list[nn.Module] = []
        d = int(n_in)
        for _ in range(int(layers)):
            mods += [nn.Linear(d, int(hidden)), nn.BatchNorm1d(int(hidden)), nn.LeakyReLU(negative_slope)]
            d = int(hidden)
        mods.append(nn.Linear(d, int(n_out)))
        self.net = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def lambda_at(step: int, *, lam: float, schedule: str, warmup: int, ramp: int, total: int) -> float:
    """GRL coefficient at ``step`` (1-based): 0 during the adversary warm-up, then per ``schedule``."""
    if step <= warmup:
        return 0.0
    t = step - warmup
    if schedule == "constant":
        return lam
    if schedule == "linear":
        return lam if ramp <= 0 else lam * min(1.0, t / ramp)
    p = min(1.0, t / max(1, total - warmup))
    return lam * (2.0 / (1.0 + math.exp(-10.0 * p)) - 1.0)


def task_class_weights(ctx: TrainContext, mode: str) -> torch.Tensor | None:
    """Per-class task-loss weights from the training labels (``docs/methods_adversarial.md`` detail 2).

    Multi-label (``auto`` or ``balanced``): #neg/#pos per class (the authors' COCO task loss); single-label
    ``balanced``: n/(C n_c); ``none`` and single-label ``auto``: no weights (``None``).
    """
    if mode not in CLASS_WEIGHTS:
        raise DebiaskitError(f"unknown class_weights {mode!r}; choose from {', '.join(CLASS_WEIGHTS)}")
    y = ctx.train_targets
    if mode == "none" or (mode == "auto" and not ctx.multilabel):
        return None
    if ctx.multilabel:
        pos = y.float().sum(0)
        neg = y.shape[0] - pos
        return torch.where(pos > 0, neg / pos.clamp_min(1), torch.ones_like(pos))
    counts = torch.bincount(y, minlength=ctx.num_classes).float()
    return torch.where(counts > 0, y.numel() / (ctx.num_classes * counts.clamp_min(1)), torch.zeros_like(counts))


def weighted_task_loss(logits: torch.Tensor, y: torch.Tensor, *, multilabel: bool, weights: torch.Tensor | None,
                       reduction: str = "mean") -> torch.Tensor:
    """CE (single-label, optional class weights) or per-class-weighted BCE averaged over classes (multi-label)."""
    if multilabel:
        loss = F.binary_cross_entropy_with_logits(logits, y.float(), reduction="none")
        if weights is not None:
            loss = loss * weights
        loss = loss.mean(1)
        return loss.mean() if reduction == "mean" else loss
    if weights is None:
        return F.cross_entropy(logits, y, reduction=reduction)
    loss = F.cross_entropy(logits, y, weight=weights, reduction="none")
    if reduction != "mean":
        return loss
    return loss.sum() / weights[y].sum().clamp_min(1e-12)


def _common_adv_hparams() -> dict[str, Any]:
    return {
        "adv_lambda": 1.0,
        "balanced_batches": True,
        "loader_factor": 2.5,
        "balance_redraws": 3,
        "class_weights": "auto",
    }


class BalancedBatchesMixin:
    """Protected-balanced batch sampling with skip counters, shared by ``adversarial`` and ``adversarial_image``.

    ``sample_indices`` asks the :class:`ProtectedBalancedSampler`; when every attempt of a step fails it still
    returns a (tiny) valid index batch and flags the step, and ``_consume_skip`` (called first in ``update``)
    tells the method to perform no update. Totals live in buffers (checkpointed).
    """

    ctx: TrainContext
    hparams: dict[str, Any]

    def _init_balanced(self) -> None:
        hp = self.hparams
        dev = self.ctx.device
        self.register_buffer("skipped_draws_total", torch.zeros((), dtype=torch.long, device=dev))  # type: ignore[attr-defined]
        self.register_buffer("skipped_steps_total", torch.zeros((), dtype=torch.long, device=dev))  # type: ignore[attr-defined]
        self.sampler = (
            ProtectedBalancedSampler(self.ctx, int(hp["batch_size"]), loader_factor=float(hp["loader_factor"]),
                                     max_redraws=int(hp["balance_redraws"]))
            if hp["balanced_batches"] else None
        )
        self._skip_step = False
        self._skipped_draws = 0

    def sample_indices(self, step: int) -> torch.Tensor | None:
        if self.sampler is None:
            return None
        idx, skipped = self.sampler.next()
        self._skipped_draws = skipped
        self._skip_step = idx is None
        if idx is None:  # unbalanceable: hand the trainer a valid batch, update() will not use it
            idx = torch.arange(min(2, self.ctx.n_train), device=self.ctx.generator.device)
        return idx

    def _consume_skip(self) -> bool:
        """Count this step's skipped draws; True when the whole step must be skipped."""
        self.skipped_draws_total += self._skipped_draws  # type: ignore[has-type]
        if self._skip_step:
            self.skipped_steps_total += 1  # type: ignore[has-type]
            self._skip_step = False
            return True
        return False

    def _skip_counters(self, skipped_step: bool) -> dict[str, torch.Tensor]:
        return {"skipped_draws": torch.tensor(float(self._skipped_draws)), "skipped_step": torch.tensor(float(skipped_step))}


@register_method("adversarial")
class Adversarial(BalancedBatchesMixin, Method):
    """Task network + GRL + adversary MLP on a tapped representation, protected-balanced batches."""

    labels_consumed = ("target", "bias")
    evaluated_model = "the task network (the adversary is discarded)"

    paper = "Wang et al., Balanced Datasets Are Not Enough, ICCV 2019 (adversarial removal, Sec. 5)"
    default_hparams = {
        **_common_adv_hparams(),
        "tap": "features",
        "tap_pool": "flatten",
        "adv_hidden": 300,
        "adv_layers": 3,
        "adv_warmup_steps": 0,
        "lambda_schedule": "constant",
        "lambda_ramp_steps": 0,
    }
    search_space = {"adv_lambda": LogUniform(0.1, 10.0)}

    def __init__(self, ctx: TrainContext, hparams: dict[str, Any]) -> None:
        super().__init__(ctx, hparams)
        hp = self.hparams
        require_protected(ctx, self.name)
        self.lam = check_lambda(hp["adv_lambda"])
        if hp["lambda_schedule"] not in LAMBDA_SCHEDULES:
            raise DebiaskitError(f"unknown lambda_schedule {hp['lambda_schedule']!r}; choose from {', '.join(LAMBDA_SCHEDULES)}")
        if hp["tap_pool"] not in POOLS:
            raise DebiaskitError(f"unknown tap_pool {hp['tap_pool']!r}; choose from {', '.join(POOLS)}")
        for k in ("adv_warmup_steps", "lambda_ramp_steps"):
            if int(hp[k]) < 0:
                raise DebiaskitError(f"{k} must be >= 0, got {hp[k]}")
        self.model = self.make_model()
        self.tap = FeatureTap(self.model, str(hp["tap"]), pool=str(hp["tap_pool"]))
        n_in = self.tap.dim_for(ctx.in_shape)
        self.adversary = AdversaryMLP(n_in, ctx.num_bias, hidden=int(hp["adv_hidden"]), layers=int(hp["adv_layers"])).to(ctx.device)
        self.opt = self.add_optimizer("model", [*self.model.parameters(), *self.adversary.parameters()])
        w = task_class_weights(ctx, str(hp["class_weights"]))
        self.register_buffer("class_weights", w if w is not None else torch.zeros(0, device=ctx.device))
        self._init_balanced()

    # -- training ---------------------------------------------------------------------------------
    def lambda_at(self, step: int) -> float:
        hp = self.hparams
        return lambda_at(step, lam=self.lam, schedule=str(hp["lambda_schedule"]), warmup=int(hp["adv_warmup_steps"]),
                         ramp=int(hp["lambda_ramp_steps"]), total=int(hp["steps"]))

    def _task_loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        w = self.class_weights if self.class_weights.numel() else None
        return weighted_task_loss(logits, y, multilabel=self.ctx.multilabel, weights=w)

    def update(self, batch: Batch, step: int) -> dict[str, Any]:
        if self._consume_skip():
            z = torch.zeros(())
            return {"loss": z, "task_loss": z, "adv_loss": z, "adv_acc": z, "lambda": z, **self._skip_counters(True)}
        lam = self.lambda_at(step)
        warm = step <= int(self.hparams["adv_warmup_steps"])
        self.model.train()
        self.adversary.train()
        if warm:  # adversary warm-up: the trunk is frozen, only the adversary learns
            with torch.no_grad():
                logits, feats = self.tap(batch.x)
                task = self._task_loss(logits, batch.y)
            adv_logits = self.adversary(feats)
            adv = F.cross_entropy(adv_logits, batch.b)
            loss = adv
        else:
            logits, feats = self.tap(batch.x)
            task = self._task_loss(logits, batch.y)
            adv_logits = self.adversary(grad_reverse(feats, lam))
            adv = F.cross_entropy(adv_logits, batch.b)
            loss = task + adv
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        acc = (adv_logits.detach().argmax(1) == batch.b).float().mean()
        return {"loss": (task + adv).detach(), "task_loss": task.detach(), "adv_loss": adv.detach(), "adv_acc": acc,
                "lambda": torch.tensor(lam), **self._skip_counters(False)}

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        self.model.eval()
        return self.model(x)

    @torch.no_grad()
    def adversary_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The adversary's protected-attribute logits on ``x`` (eval mode)."""
        self.model.eval()
        self.adversary.eval()
        _, feats = self.tap(x)
        return self.adversary(feats)
