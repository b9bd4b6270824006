"""The method contract (DomainBed-style ``Algorithm``): one class per training method.

A method owns its networks and optimisers and turns one mini-batch into one update::

    class MyMethod(Method):
        name = "my_method"
        labels_consumed = ("target",)          # or ("target", "bias") when it reads bias labels

        default_hparams = {"my_lambda": 1.0}  # method-specific hyper-parameters and defaults
        dataset_hparams = {"colored_mnist": {"lr": 0.01}}       # published per-dataset values (optional)
        ratio_hparams = {("corrupted_cifar10", 0.005): {...}}   # per conflicting ratio (optional)
        search_space = {"my_lambda": LogUniform(0.1, 10)}        # random-search ranges (optional)

        def __init__(self, ctx: TrainContext, hparams: dict): ...
        def update(self, batch: Batch, step: int) -> dict[str, float]: ...  # one optimisation step
        def predict(self, x) -> logits                                       # the evaluated model

Optional hooks: ``prepare_splits`` (change the training data, e.g. a balanced subset or an augmented set),
``sample_indices`` (custom batch sampling, e.g. group-balanced batches), ``on_step_end`` (schedulers),
``on_eval`` (after each evaluation: write inspection artefacts into ``run_dir``, or return True to stop early).

Hyper-parameters are resolved in one place, :func:`debiaskit.experiments.hparams.resolve_hparams`
(common defaults ← per-dataset defaults ← the method's ``default_hparams`` ← its ``dataset_hparams[dataset]``
← its ``ratio_hparams[(dataset, ratio)]`` ← the user's values); a key outside that set is an error.

Everything a method must checkpoint is either a registered sub-module / buffer of the method (it is an
``nn.Module``, so ``state_dict()`` covers it), an optimiser in ``self.optimizers`` or a scheduler in
``self.schedulers``; the trainer saves and restores them for resume.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn as nn

from debiaskit.data.base import DatasetSplits
from debiaskit.errors import DebiaskitError
from debiaskit.methods.optimizers import build_optimizer
from debiaskit.methods.space import Distribution
from debiaskit.models import create_model


@dataclass
class TrainContext:
    """What a method may know about the training data and the run."""

    dataset: str
    num_classes: int
    num_bias: int
    in_shape: tuple[int, int, int]
    n_train: int
    train_targets: torch.Tensor  # on device
    train_bias: torch.Tensor  # on device (only methods that declare "bias" in labels_consumed may read it)
    device: torch.device
    generator: torch.Generator  # the run's RNG on ``device`` (saved in checkpoints)
    multilabel: bool = False
    dataset_info: dict[str, Any] = field(default_factory=dict)
    channels_last: bool = False  # performance option: models and batches in NHWC memory format
    optimizer_impl: str = "auto"  # performance option: PyTorch optimiser implementation (methods/optimizers.py)


@dataclass
class Batch:
    """A training mini-batch: dataset indices, float inputs (already transformed), targets, bias labels."""

    idx: torch.Tensor
    x: torch.Tensor
    y: torch.Tensor
    b: torch.Tensor


class Method(nn.Module):
    """Base class; see the module docstring."""

    name: ClassVar[str] = "method"
    labels_consumed: ClassVar[tuple[str, ...]] = ("target",)
    #: what ``predict`` evaluates, recorded in result.json
    evaluated_model: ClassVar[str] = "the trained network"

    def __init__(self, ctx: TrainContext, hparams: dict[str, Any]) -> None:
        super().__init__()
        self.ctx = ctx
        self.hparams = dict(hparams)
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict[str, Any] = {}
        #: the run directory, set by the trainer before training (None outside a run)
        self.run_dir: Path | None = None

    # -- hyper-parameters (declarative; resolved by debiaskit.experiments.hparams) ----------------
    #: method-specific hyper-parameters and their defaults
    default_hparams: ClassVar[dict[str, Any]] = {}
    #: published per-dataset values (any key, common or method-specific)
    dataset_hparams: ClassVar[dict[str, dict[str, Any]]] = {}
    #: published values that depend on the bias-conflicting ratio: ``{(dataset, ratio): {...}}``
    ratio_hparams: ClassVar[dict[tuple[str, float], dict[str, Any]]] = {}
    #: random-search ranges for ``n_hparams`` sweeps: ``{name: Distribution}``
    search_space: ClassVar[dict[str, Distribution]] = {}
    #: the paper the method comes from (shown by ``debiaskit methods list``)
    paper: ClassVar[str] = ""

    # -- data hooks -----------------------------------------------------------------------------
    @classmethod
    def prepare_splits(cls, splits: DatasetSplits, hparams: dict[str, Any]) -> DatasetSplits:
        """Optionally replace the training split (e.g. α-balanced subset, GAN-augmented set)."""
        return splits

    def sample_indices(self, step: int) -> torch.Tensor | None:
        """Return the next batch's training indices, or ``None`` for the trainer's shuffled epochs."""
        return None

    # -- training -------------------------------------------------------------------------------
    def update(self, batch: Batch, step: int) -> dict[str, Any]:  # pragma: no cover - abstract
        """One optimisation step; returns scalar logs (floats or 0-dim tensors, detached)."""
        raise NotImplementedError

    def on_step_end(self, step: int) -> None:
        """Called after every update with the number of completed steps; steps the LR schedulers."""
        for s in self.schedulers.values():
            s.step()

    def on_eval(self, step: int, results: dict[str, dict[str, float]], out_dir: Path | None = None) -> bool:
        """Called after every evaluation with ``results[split][metric]``; return True to stop training early."""
        return False

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- helpers for subclasses -------------------------------------------------------------------
    def make_model(self, **overrides: Any) -> nn.Module:
        hp = self.hparams
        kwargs = dict(hp.get("model_kwargs") or {})
        kwargs.update(overrides)
        model = create_model(hp["model"], num_classes=self.ctx.num_classes, in_shape=self.ctx.in_shape, **kwargs)
        model = model.to(self.ctx.device)
        if self.ctx.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model

    def make_optimizer(self, params: Any, *, lr: float | None = None) -> torch.optim.Optimizer:
        hp = self.hparams
        return build_optimizer(hp["optimizer"], params, lr=hp["lr"] if lr is None else lr,
                               weight_decay=hp["weight_decay"], momentum=hp["momentum"],
                               impl=self.ctx.optimizer_impl)

    def make_scheduler(self, opt: torch.optim.Optimizer) -> Any | None:
        """The run's LR schedule (``lr_schedule`` = none | step | cosine), stepped once per update."""
        hp = self.hparams
        kind = hp["lr_schedule"]
        if kind == "none":
            return None
        if kind == "step":
            return torch.optim.lr_scheduler.StepLR(opt, step_size=int(hp["lr_step_size"]), gamma=float(hp["lr_gamma"]))
        if kind == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=int(hp["steps"]))
        raise DebiaskitError(f"unknown lr_schedule {kind!r}; choose none, step or cosine")

    def add_optimizer(self, key: str, params: Any, *, lr: float | None = None) -> torch.optim.Optimizer:
        opt = self.make_optimizer(params, lr=lr)
        self.optimizers[key] = opt
        sched = self.make_scheduler(opt)
        if sched is not None:
            self.schedulers[key] = sched
        return opt

    def task_loss(self, logits: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        """Cross-entropy for single-label tasks, BCE-with-logits for multi-label tasks."""
        if self.ctx.multilabel:
            loss = nn.functional.binary_cross_entropy_with_logits(logits, y.float(), reduction="none").mean(1)
            return loss.mean() if reduction == "mean" else loss
        return nn.functional.cross_entropy(logits, y, reduction=reduction)

    @property
    def uses_bias_labels(self) -> bool:
        return "bias" in self.labels_consumed
