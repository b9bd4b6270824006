"""Feature taps: take an intermediate representation of any registered model by name.

A *tap* names a sub-module whose output is captured with a forward hook while the model runs normally, so
no model code is copied or re-wired (Wang et al. ICCV 2019 put their adversary on ResNet ``layer3`` =
"conv4" and ``layer4`` = "conv5", their "adv@conv4" / "adv@conv5"; ``docs/methods_adversarial.md``)::

    tap = FeatureTap(model, "conv5", pool="flatten")
    logits, feats = tap(x)         # one forward pass; feats is part of the autograd graph
    tap.dim                        # feature size (computed once with a dry run)

Tap names:

* ``features`` — the pooled penultimate features (the input of ``model.head``; any model);
* any hidden block that exists: ``layer1`` … ``layer4`` (torchvision ResNets, ``cnn64``; ``resnet20`` has
  ``layer1`` … ``layer3``), ``layers.0``, ``layers.1``, … (the MLPs);
* aliases ``conv4`` → ``layer3`` and ``conv5`` → ``layer4`` (the paper's names) where those blocks exist;
* any other dotted sub-module name of the model (``model.named_modules()``) is accepted too.

Pooling of 4-D maps ``(B, C, H, W)``: ``"flatten"`` (the paper's ``--no_avgpool``: the unpooled map
flattened to ``C·H·W``), ``"avg"`` (global average pooling to ``C``), ``"max"`` (global max pooling).
2-D outputs are returned as they are. An unknown tap raises a :class:`DebiaskitError` that lists the
available taps.
"""

from __future__ import annotations

import re
from typing import Any

import torch
import torch.nn as nn

from debiaskit.errors import DebiaskitError

__all__ = ["FeatureTap", "available_taps", "resolve_tap", "TAP_ALIASES", "POOLS"]

#: the paper's names for ResNet stages
TAP_ALIASES: dict[str, str] = {"conv4": "layer3", "conv5": "layer4"}
POOLS: tuple[str, ...] = ("flatten", "avg", "max")
_STANDARD = re.compile(r"^(layer\d+|layers\.\d+)$")


def available_taps(model: nn.Module) -> list[str]:
    """The standard tap names of ``model`` (``features``, hidden blocks, and the conv4/conv5 aliases)."""
    names = [n for n, _ in model.named_modules() if _STANDARD.match(n)]
    out = ["features", *names]
    out += [alias for alias, target in TAP_ALIASES.items() if target in names]
    return out


def resolve_tap(model: nn.Module, tap: str) -> tuple[str, nn.Module]:
    """Map a tap name to ``(module name, module)``; ``features`` maps to ``head`` (its input is captured)."""
    if not isinstance(tap, str) or not tap:
        raise DebiaskitError(f"a tap must be a non-empty name, got {tap!r}")
    modules = dict(model.named_modules())
    if tap == "features":
        if not isinstance(modules.get("head"), nn.Module):
            raise DebiaskitError(f"model {type(model).__name__} has no head; available taps: "
                                 f"{', '.join(available_taps(model)[1:]) or 'none'}")
        return "head", modules["head"]
    name = TAP_ALIASES.get(tap, tap)
    if name in modules and name not in ("", "head"):
        return name, modules[name]
    raise DebiaskitError(
        f"model {type(model).__name__} has no tap {tap!r}; available taps: {', '.join(available_taps(model))}"
    )


def _pool(x: torch.Tensor, pool: str) -> torch.Tensor:
    if x.dim() <= 2:
        return x.reshape(x.shape[0], -1)
    if pool == "flatten":
        return x.flatten(1)
    dims = tuple(range(2, x.dim()))
    if pool == "avg":
        return x.mean(dim=dims)
    return x.amax(dim=dims)


class FeatureTap:
    """Capture the output of one named sub-module of ``model`` on every forward pass (forward hook).

    The hook stores a reference to the module's output tensor (no copy), so gradients flow from whatever
    consumes :attr:`last` back into the trunk. ``tap="features"`` uses a forward *pre*-hook on ``head`` and
    captures its input. Call :meth:`remove` to detach the hook. Not thread-safe (one capture slot).
    """

    def __init__(self, model: nn.Module, tap: str, *, pool: str = "flatten") -> None:
        if pool not in POOLS:
            raise DebiaskitError(f"unknown tap pooling {pool!r}; choose from {', '.join(POOLS)}")
        self.model = model
        self.tap = tap
        self.pool = pool
        self.module_name, module = resolve_tap(model, tap)
        self._out: torch.Tensor | None = None
        if tap == "features":
            self._handle = module.register_forward_pre_hook(self._pre_hook)
        else:
            self._handle = module.register_forward_hook(self._hook)
        self._dim: int | None = None

    def _hook(self, module: nn.Module, inputs: Any, output: Any) -> None:
        self._out = output[0] if isinstance(output, (tuple, list)) else output

    def _pre_hook(self, module: nn.Module, inputs: Any) -> None:
        self._out = inputs[0]

    @property
    def last(self) -> torch.Tensor:
        """The pooled/flattened features of the last forward pass, ``(B, dim)``."""
        if self._out is None:
            raise RuntimeError("the model has not been run since the tap was attached")
        return _pool(self._out, self.pool)

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the model once; return ``(model output, tapped features)``."""
        self._out = None
        out = self.model(x)
        feats = self.last
        self._out = None  # do not keep the graph alive between calls
        return out, feats

    def dim_for(self, in_shape: tuple[int, ...]) -> int:
        """Feature size for inputs of shape ``in_shape`` = (C, H, W) (one dry run in eval mode, cached)."""
        if self._dim is None:
            was_training = self.model.training
            p = next(self.model.parameters(), None)
            device = p.device if p is not None else torch.device("cpu")
            self.model.eval()
            try:
                with torch.no_grad():
                    _, f = self(torch.zeros(2, *in_shape, device=device))
            finally:
                self.model.train(was_training)
            self._dim = int(f.shape[1])
        return self._dim

    def remove(self) -> None:
        self._handle.remove()
