"""Weight averaging of the evaluated model (an addition of ours, off by default).

``train.weight_average: ema`` keeps an exponential moving average of every floating-point parameter and
buffer of the method, ``θ̄ ← d·θ̄ + (1 − d)·θ`` after each update from ``train.weight_average_start`` on
(before that θ̄ = θ), with ``d = train.weight_average_decay``. Training itself is unchanged — the averaged
weights are only *evaluated*: every evaluation writes a second set of rows with ``"weights": "ema"`` to
``metrics.jsonl``, so one run yields both the faithful method and its averaged variant, and selection rules
apply to either (see docs/concepts.md). Averaging weights along the trajectory (Polyak & Juditsky 1992;
Izmailov et al., UAI 2018 for SWA) reduces the seed-to-seed variance of the final model.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn as nn

from debiaskit.errors import DebiaskitError

__all__ = ["WeightAverage"]


class WeightAverage:
    """EMA of a module's floating-point state (parameters and buffers)."""

    def __init__(self, module: nn.Module, *, decay: float, start: int = 0) -> None:
        if not 0.0 <= decay < 1.0:
            raise DebiaskitError(f"train.weight_average_decay must be in [0, 1), got {decay!r}")
        self.decay = float(decay)
        self.start = int(start)
        self._live = [t for t in module.state_dict(keep_vars=True).values() if t.is_floating_point()]
        self.shadow = [t.detach().clone() for t in self._live]

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Called after update ``step`` (1-based)."""
        live = [t.detach() for t in self._live]
        if step <= self.start:
            torch._foreach_copy_(self.shadow, live)
        else:
            torch._foreach_lerp_(self.shadow, live, 1.0 - self.decay)

    @contextmanager
    @torch.no_grad()
    def swapped_in(self) -> Iterator[None]:
        """Temporarily load the averaged weights into the module (restored on exit)."""
        saved = [t.detach().clone() for t in self._live]
        try:
            for t, s in zip(self._live, self.shadow):
                t.data.copy_(s)
            yield
        finally:
            for t, s in zip(self._live, saved):
                t.data.copy_(s)

    def state_dict(self) -> dict[str, list[torch.Tensor]]:
        return {"shadow": [s.clone() for s in self.shadow]}

    def load_state_dict(self, state: dict[str, list[torch.Tensor]]) -> None:
        for s, v in zip(self.shadow, state["shadow"]):
            s.copy_(v)
