"""``vanilla``: empirical risk minimisation with cross-entropy (BCE for multi-label tasks).

:class:`Vanilla` is also the base of every single-network method: subclasses change only
:meth:`Vanilla.objective` (the loss of one batch), the data (``prepare_splits``) or the sampling
(``sample_indices``) — ``reweight``, ``resample``, ``groupdro``, ``balanced_split``, ``latent_aug``.
"""

from __future__ import annotations

from typing import Any

import torch

from debiaskit.methods.base import Batch, Method, TrainContext
from debiaskit.methods.registry import register_method


@register_method("vanilla")
class Vanilla(Method):
    """One network trained with the plain task loss; uses target labels only."""

    labels_consumed = ("target",)
    evaluated_model = "the single network"
    paper = "empirical risk minimisation (the baseline of every paper here)"
    #: the vanilla baseline of the DisEnt paper (Lee et al., NeurIPS 2021, Sec. 4.1 and its official scripts):
    #: the same network as DisEnt's encoders, DisEnt's learning rate, 50k steps, no LR decay. The Colored MNIST
    #: and Corrupted CIFAR-10 reproduction tables compare against exactly this baseline.
    dataset_hparams = {
        "colored_mnist": {"model": "mlp_disent", "lr": 0.01, "steps": 50000},
        "corrupted_cifar10": {"model": "resnet18", "lr": 1e-3, "steps": 50000},
        "bffhq": {"model": "resnet18", "lr": 1e-4, "batch_size": 64, "steps": 50000},
    }

    def __init__(self, ctx: TrainContext, hparams: dict) -> None:
        super().__init__(ctx, hparams)
        self.model = self.make_model()
        self.opt = self.add_optimizer("model", self.model.parameters())

    def objective(self, batch: Batch) -> tuple[torch.Tensor, dict[str, Any]]:
        """The loss to minimise on ``batch`` and extra detached logs (override in subclasses)."""
        return self.task_loss(self.model(batch.x), batch.y), {}

    def update(self, batch: Batch, step: int) -> dict[str, Any]:
        self.model.train()
        loss, logs = self.objective(batch)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"loss": loss.detach(), **logs}

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        self.model.eval()
        return self.model(x)
