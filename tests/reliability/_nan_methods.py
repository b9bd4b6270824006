"""Toy methods whose updates go non-finite at chosen steps (``from reliability._nan_methods import ...``).

``nan_at`` is plain ``vanilla``, except at the steps listed in ``hparams.bad_steps``, where the update is
poisoned the way a diverging run is:

* ``bad_mode: loss`` — the loss is multiplied by NaN before ``backward`` and the optimiser steps anyway, so
  the logged loss, every gradient, the weights and Adam's moments all become NaN;
* ``bad_mode: grad`` — the loss is finite, but a ``0 * sqrt(w - w)`` term makes the gradients NaN (the
  derivative of ``sqrt`` at 0 is infinite): only the gradient check can see it;
* ``bad_mode: noop`` — the reference: no backward, no optimiser step at those steps (what ``nan_policy: skip``
  must make of the poisoned steps), finite logs.
"""

from __future__ import annotations

from typing import Any

import torch

from debiaskit.methods.base import Batch
from debiaskit.methods.registry import METHODS, register_method
from debiaskit.methods.vanilla import Vanilla

NAME = "test_nan_at"


class NanAt(Vanilla):
    default_hparams = {"bad_steps": [], "bad_mode": "loss"}

    def update(self, batch: Batch, step: int) -> dict[str, Any]:
        if step not in self.hparams["bad_steps"]:
            return super().update(batch, step)
        mode = self.hparams["bad_mode"]
        self.model.train()
        loss, _ = self.objective(batch)
        if mode == "noop":
            return {"loss": loss.detach()}
        if mode == "loss":
            loss = loss * float("nan")
        elif mode == "grad":
            w = next(self.model.parameters())
            loss = loss + 0.0 * torch.sqrt(w - w.detach()).sum()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"loss": loss.detach()}


def register() -> str:
    if NAME not in METHODS.list("*"):
        register_method(NAME)(NanAt)
    return NAME
