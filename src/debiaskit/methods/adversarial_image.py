"""``adversarial_image``: image-level adversarial removal ("adv@image", Wang et al. ICCV 2019).

A U-Net (:class:`debiaskit.models.unet.MaskUNet`) predicts a one-channel mask M(x) ∈ (0, 1) that starts
near 1. The masked image x̃ = x ⊙ M(x) (broadcast over channels, on the *normalised* tensor, so a masked
pixel becomes the normalisation mean, ``docs/methods_adversarial.md`` detail 4) goes to the task network f
and, through the gradient reversal layer, to an adversary CNN a (any registered model, ``adv_model``;
default = the task model) predicting the protected attribute:

    L = L_task(f(x̃), y) + L_adv(a(GRL_λ(x̃)), g) + β · mean|x̃ − x|

Schedule (the paper's two stages, plus the pre-training it assumes; ``docs/methods_adversarial.md``
detail 3), as fractions of ``steps``:

* stage 0 ``pretrain`` (``pretrain_fraction``): f trained on original images, a trained on original images
  (balanced batches) — the paper starts from a pre-trained task model and a gender classifier trained on
  gender-balanced data, which are not released, so we train them first;
* stage 1 ``mask`` (``mask_fraction``): only the U-Net learns; f and a are frozen (eval mode, optimisers not
  stepped), so the mask learns to fool a fixed adversary while keeping the fixed task network accurate;
* stage 2 ``finetune`` (the rest): U-Net frozen; f and a train on masked images (a re-learns whatever is
  left of the protected attribute, f adapts to the masked images).

Early stopping on the task metric: the trainer's model-selection rule (``best_val_accuracy`` /
``best_val_map``) returns the best-validation checkpoint, and with ``early_stop_patience`` > 0 the method's
``on_eval`` hook asks the trainer to stop after that many evaluations in stages 1–2 without improvement of
``early_stop_metric`` (``split/metric``; default ``val/mAP`` for multi-label, ``val/accuracy`` otherwise);
``result.json`` then records ``early_stopped_at_step`` (later updates, if any, are no-ops logged ``stopped=1``).

Inspection grid: ``mask_grid.png`` in the run directory — rows original / mask / masked for ``grid_n``
training images — written every ``grid_every`` steps (0 = only at the last step) and at every ``on_eval``.
The run directory is ``Method.run_dir`` (set by the trainer). :func:`save_mask_grid` writes a grid for any images.

Defaults (CPU-sized): λ = 5, β = 0.1 (paper COCO), U-Net ngf 16 / depth 3 (paper ngf 64 / depth 5 at 224 px),
balanced batches (paper 8 + 8 of a loader batch of 40).
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from debiaskit.errors import DebiaskitError
from debiaskit.io import write_bytes
from debiaskit.methods.adversarial import BalancedBatchesMixin, task_class_weights, weighted_task_loss
from debiaskit.methods.base import Batch, Method, TrainContext
from debiaskit.methods.bias_supervised import require_protected
from debiaskit.methods.grl import check_lambda, grad_reverse
from debiaskit.methods.registry import register_method
from debiaskit.methods.space import LogUniform
from debiaskit.models import create_model
from debiaskit.models.unet import MaskUNet

__all__ = ["AdversarialImage", "save_mask_grid", "STAGES"]

STAGES = ("pretrain", "mask", "finetune")
GRID_FILE = "mask_grid.png"


def _denormalise(x: torch.Tensor, info: dict[str, Any]) -> torch.Tensor:
    norm = info.get("normalize")
    if norm:
        mean = torch.tensor(norm["mean"], dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(norm["std"], dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        x = x * std + mean
    return x.clamp(0, 1)


def save_mask_grid(path: str | Path, x: torch.Tensor, mask: torch.Tensor, *, info: dict[str, Any] | None = None) -> Path:
    """Write a PNG grid: row 1 original images, row 2 masks (gray), row 3 masked images (atomic write).

    ``x`` are normalised inputs ``(n, C, H, W)`` (as the model sees them), ``mask`` is ``(n, 1, H, W)``.
    """
    from PIL import Image
    from torchvision.utils import make_grid

    x = x.detach().float().cpu()
    m = mask.detach().float().cpu()
    info = info or {}
    orig = _denormalise(x, info)
    masked = _denormalise(x * m, info)
    if orig.shape[1] == 1:
        orig, masked = orig.expand(-1, 3, -1, -1), masked.expand(-1, 3, -1, -1)
    rows = torch.cat([orig[:, :3], m.expand(-1, 3, -1, -1), masked[:, :3]], 0)
    grid = make_grid(rows, nrow=x.shape[0], padding=2, pad_value=1.0)
    arr = (grid.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return write_bytes(path, buf.getvalue())


@register_method("adversarial_image")
class AdversarialImage(BalancedBatchesMixin, Method):
    """U-Net mask + task network + adversary CNN through a GRL on the masked image; staged schedule."""

    labels_consumed = ("target", "bias")
    evaluated_model = "the task network on U-Net-masked images"

    paper = "Wang et al., Balanced Datasets Are Not Enough, ICCV 2019 (adversarial image mask, Sec. 5)"
    search_space = {"adv_lambda": LogUniform(0.5, 20.0), "l1_beta": LogUniform(0.01, 1.0)}
    default_hparams = {
        "adv_lambda": 5.0,
        "l1_beta": 0.1,
        "adv_model": None,
        "adv_model_kwargs": {},
        "unet_ngf": 16,
        "unet_depth": 3,
        "mask_init_bias": 3.0,
        "mask_lr": None,
        "pretrain_fraction": 0.3,
        "mask_fraction": 0.3,
        "balanced_batches": True,
        "loader_factor": 2.5,
        "balance_redraws": 3,
        "class_weights": "auto",
        "early_stop_patience": 0,
        "early_stop_metric": None,
        "grid_every": 0,
        "grid_n": 8,
    }

    def __init__(self, ctx: TrainContext, hparams: dict[str, Any]) -> None:
        super().__init__(ctx, hparams)
        hp = self.hparams
        require_protected(ctx, self.name)
        self.lam = check_lambda(hp["adv_lambda"])
        self.beta = float(hp["l1_beta"])
        if not math.isfinite(self.beta) or self.beta < 0:
            raise DebiaskitError(f"l1_beta must be a finite number >= 0, got {hp['l1_beta']!r}")
        pf, mf = float(hp["pretrain_fraction"]), float(hp["mask_fraction"])
        if pf < 0 or mf < 0 or pf + mf > 1:
            raise DebiaskitError(f"pretrain_fraction and mask_fraction must be >= 0 with sum <= 1, got {pf}, {mf}")
        steps = int(hp["steps"])
        self.pretrain_end = int(round(pf * steps))
        self.mask_end = self.pretrain_end + int(round(mf * steps))
        if int(hp["early_stop_patience"]) < 0 or int(hp["grid_every"]) < 0 or int(hp["grid_n"]) < 1:
            raise DebiaskitError("early_stop_patience and grid_every must be >= 0 and grid_n >= 1")
        c, h, w = ctx.in_shape
        self.unet = MaskUNet(c, ngf=int(hp["unet_ngf"]), depth=int(hp["unet_depth"]),
                             init_bias=float(hp["mask_init_bias"])).to(ctx.device)
        self.model = self.make_model()
        self.adversary = create_model(str(hp["adv_model"] or hp["model"]), num_classes=ctx.num_bias, in_shape=ctx.in_shape,
                                      **dict(hp["adv_model_kwargs"] or {})).to(ctx.device)
        self.opt_mask = self.add_optimizer("unet", self.unet.parameters(),
                                           lr=None if hp["mask_lr"] is None else float(hp["mask_lr"]))
        self.opt_task = self.add_optimizer("model", self.model.parameters())
        self.opt_adv = self.add_optimizer("adversary", self.adversary.parameters())
        wts = task_class_weights(ctx, str(hp["class_weights"]))
        self.register_buffer("class_weights", wts if wts is not None else torch.zeros(0, device=ctx.device))
        self.register_buffer("best_score", torch.tensor(-math.inf, device=ctx.device))
        self.register_buffer("evals_since_best", torch.zeros((), dtype=torch.long, device=ctx.device))
        self.register_buffer("stopped", torch.zeros((), dtype=torch.bool, device=ctx.device))
        self.register_buffer("grid_x", torch.zeros(0, c, h, w, device=ctx.device), persistent=False)
        self._init_balanced()
        self._run_dir: Path | None = None

    # -- schedule -------------------------------------------------------------------------------
    def stage_at(self, step: int) -> str:
        if step <= self.pretrain_end:
            return "pretrain"
        if step <= self.mask_end:
            return "mask"
        return "finetune"

    def masked(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.unet(x)
        return x * m, m

    def _task_loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        w = self.class_weights if self.class_weights.numel() else None
        return weighted_task_loss(logits, y, multilabel=self.ctx.multilabel, weights=w)

    def update(self, batch: Batch, step: int) -> dict[str, Any]:
        z = torch.zeros(())
        if self._consume_skip() or bool(self.stopped):
            return {"loss": z, "task_loss": z, "adv_loss": z, "adv_acc": z, "l1": z, "mask_mean": z,
                    "stage": z, "stopped": torch.tensor(float(bool(self.stopped))),
                    **self._skip_counters(not bool(self.stopped))}
        if self.grid_x.shape[0] == 0:
            self.grid_x = batch.x[: int(self.hparams["grid_n"])].detach().clone()
        stage = self.stage_at(step)
        x, y, b = batch.x, batch.y, batch.b
        l1 = z
        mask_mean = z
        if stage == "pretrain":
            self.model.train()
            self.adversary.train()
            task = self._task_loss(self.model(x), y)
            adv_logits = self.adversary(x)
            adv = F.cross_entropy(adv_logits, b)
            loss = task + adv
            opts = [self.opt_task, self.opt_adv]
        elif stage == "mask":
            self.unet.train()
            self.model.eval()
            self.adversary.eval()
            xm, m = self.masked(x)
            task = self._task_loss(self.model(xm), y)
            adv_logits = self.adversary(grad_reverse(xm, self.lam))
            adv = F.cross_entropy(adv_logits, b)
            l1 = (xm - x).abs().mean()
            loss = task + adv + self.beta * l1
            mask_mean = m.detach().mean()
            opts = [self.opt_mask]
        else:
            self.unet.eval()
            self.model.train()
            self.adversary.train()
            with torch.no_grad():
                xm, m = self.masked(x)
            task = self._task_loss(self.model(xm), y)
            adv_logits = self.adversary(xm)
            adv = F.cross_entropy(adv_logits, b)
            l1 = (xm - x).abs().mean()
            loss = task + adv
            mask_mean = m.mean()
            opts = [self.opt_task, self.opt_adv]
        for o in self.optimizers.values():
            o.zero_grad(set_to_none=True)
        loss.backward()
        for o in opts:
            o.step()
        self._maybe_grid(step)
        acc = (adv_logits.detach().argmax(1) == b).float().mean()
        return {"loss": loss.detach(), "task_loss": task.detach(), "adv_loss": adv.detach(), "adv_acc": acc,
                "l1": l1.detach(), "mask_mean": mask_mean, "stage": torch.tensor(float(STAGES.index(stage))),
                "stopped": z, **self._skip_counters(False)}

    # -- inspection / early stopping ---------------------------------------------------------------
    def _maybe_grid(self, step: int) -> None:
        every, steps = int(self.hparams["grid_every"]), int(self.hparams["steps"])
        if step != steps and not (every and step % every == 0):
            return
        run_dir = self._run_dir or self.run_dir
        if run_dir is not None and run_dir.is_dir():
            self.write_grid(run_dir / GRID_FILE)

    @torch.no_grad()
    def write_grid(self, path: str | Path, x: torch.Tensor | None = None) -> Path:
        """Save original / mask / masked images (``x`` or the stored first training images) to ``path``."""
        x = self.grid_x if x is None else x
        if x.shape[0] == 0:
            raise DebiaskitError("no images to draw the mask grid from (the method has not trained yet)")
        was = self.unet.training
        self.unet.eval()
        m = self.unet(x)
        self.unet.train(was)
        return save_mask_grid(path, x, m, info=self.ctx.dataset_info)

    def on_eval(self, step: int, results: dict[str, dict[str, float]], out_dir: str | Path | None = None) -> bool:
        """Optional trainer hook after each evaluation: grid + early stopping. Returns True once stopped."""
        if out_dir is not None:
            self._run_dir = Path(out_dir)
            if self.grid_x.shape[0]:
                self.write_grid(self._run_dir / GRID_FILE)
        patience = int(self.hparams["early_stop_patience"])
        if patience <= 0 or step <= self.pretrain_end:
            return bool(self.stopped)
        key = self.hparams["early_stop_metric"] or ("val/mAP" if self.ctx.multilabel else "val/accuracy")
        split, _, metric = str(key).partition("/")
        score = results.get(split, {}).get(metric)
        if score is None or (isinstance(score, float) and math.isnan(score)):
            return bool(self.stopped)
        if score > float(self.best_score):
            self.best_score.fill_(float(score))
            self.evals_since_best.zero_()
        else:
            self.evals_since_best += 1
            if int(self.evals_since_best) >= patience:
                self.stopped.fill_(True)
        return bool(self.stopped)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        self.unet.eval()
        self.model.eval()
        return self.model(self.masked(x)[0])
