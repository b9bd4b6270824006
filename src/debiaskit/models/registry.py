"""The model registry (timm-style decorator + factory)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import torch.nn as nn

from debiaskit.errors import DebiaskitError
from debiaskit.registry import Registry


_BUILTIN_MODULES: list[str] = [
    "debiaskit.models.mlp",
    "debiaskit.models.resnet",
    "debiaskit.models.resnet_cifar",
    "debiaskit.models.cnn",
]
MODELS: Registry[Callable[..., nn.Module]] = Registry("model", builtin_modules=_BUILTIN_MODULES)


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    return MODELS.register(name)


def list_models(pattern: str = "*") -> list[str]:
    return MODELS.list(pattern)


def create_model(name: str, *, num_classes: int, in_shape: Sequence[int], **kwargs: Any) -> nn.Module:
    """Instantiate model ``name`` for inputs of shape ``in_shape`` = (C, H, W)."""
    factory = MODELS.get(name)
    params = inspect.signature(factory).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(kwargs) - set(params))
        if unknown:
            raise DebiaskitError(f"model {name!r} has no option(s) {', '.join(unknown)}; valid: {', '.join(params)}")
    model = factory(num_classes=num_classes, in_shape=tuple(in_shape), **kwargs)
    for attr in ("feature_dim", "features", "head"):
        if not hasattr(model, attr):  # pragma: no cover - guards registrations
            raise TypeError(f"model {name!r} does not follow the features()/head contract (missing {attr})")
    return model
