"""``vanilla``: empirical risk minimisation with cross-entropy (BCE for multi-label tasks)."""

from __future__ import annotations

import torch

from debiaskit.methods.base import Batch, Method, TrainContext
from debiaskit.methods.registry import register_method


@register_method("vanilla")
class Vanilla(Method):
    """One network trained with the plain task loss; uses target labels only."""

    labels_consumed = ("target",)
    evaluated_model = "the single network"

    def __init__(self, ctx: TrainContext, hparams: dict) -> None:
        super().__init__(ctx, hparams)
        self.model = self.make_model()
        self.opt = self.add_optimizer("model", self.model.parameters())

    def update(self, batch: Batch, step: int) -> dict[str, float]:
        self.model.train()
        loss = self.task_loss(self.model(batch.x), batch.y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"loss": loss.detach()}

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        self.model.eval()
        return self.model(x)
