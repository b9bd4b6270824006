"""Gradient reversal layer (Ganin & Lempitsky, ICML 2015; used by Wang et al. ICCV 2019).

See ``docs/methods_adversarial.md`` detail 1 for what λ scales in the official adversarial training.

Forward: identity. Backward: the incoming gradient multiplied by ``-λ``. Placed between the trunk and the
adversary, the adversary's own parameters receive the plain gradient of its loss L_adv (it minimises
L_adv) while everything before the layer receives ``-λ ∇L_adv`` (it maximises L_adv): one optimiser on
``L_task + L_adv`` then performs the min-max game of Wang et al.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from debiaskit.errors import DebiaskitError

__all__ = ["GradReverse", "grad_reverse", "GradientReversal", "check_lambda"]


def check_lambda(lam: float, *, what: str = "adv_lambda") -> float:
    """Validate a GRL coefficient: finite and ≥ 0 (a negative λ would make the trunk *help* the adversary)."""
    try:
        v = float(lam)
    except (TypeError, ValueError):
        raise DebiaskitError(f"{what} must be a number, got {lam!r}") from None
    if not math.isfinite(v) or v < 0:
        raise DebiaskitError(f"{what} must be a finite number >= 0, got {lam!r}")
    return v


class GradReverse(torch.autograd.Function):
    """``y = x``; ``dL/dx = -λ · dL/dy``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, lam: float) -> torch.Tensor:  # type: ignore[override]
        ctx.lam = float(lam)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        return grad.neg() * ctx.lam, None


def grad_reverse(x: torch.Tensor, lam: float) -> torch.Tensor:
    """Apply the gradient reversal layer with coefficient ``lam`` (≥ 0)."""
    return GradReverse.apply(x, check_lambda(lam))


class GradientReversal(nn.Module):
    """Module form of :func:`grad_reverse`; ``lam`` can be changed between steps (λ schedules)."""

    def __init__(self, lam: float = 1.0) -> None:
        super().__init__()
        self.lam = check_lambda(lam)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return GradReverse.apply(x, self.lam)

    def extra_repr(self) -> str:
        return f"lam={self.lam}"
