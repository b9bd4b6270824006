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
    "debiaskit.models.adapters",  # python:<module>:<class> names (user classes, debiaskit.fit)
    "debiaskit.models.backbones",  # torchvision:<arch>, timm:<arch>
]
MODELS: Registry[Callable[..., nn.Module]] = Registry("model", builtin_modules=_BUILTIN_MODULES)


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    return MODELS.register(name)


def list_models(pattern: str = "*") -> list[str]:
    return MODELS.list(pattern)


def auto_model_name(in_shape: Sequence[int]) -> str:
    """The network ``model: auto`` builds for inputs of shape (C, H, W).

    Up to 28 px: ``mlp``; up to 32 px: ``resnet20`` (CIFAR ResNet); up to 64 px: ``cnn64``; larger:
    ``resnet18``. Never an MLP on 32 px or larger images.
    """
    side = max(int(in_shape[-1]), int(in_shape[-2])) if len(in_shape) >= 2 else 1
    if side <= 28:
        return "mlp"
    if side <= 32:
        return "resnet20"
    if side <= 64:
        return "cnn64"
    return "resnet18"


def create_model(name: str, *, num_classes: int, in_shape: Sequence[int], **kwargs: Any) -> nn.Module:
    """Instantiate model ``name`` for inputs of shape ``in_shape`` = (C, H, W) (``auto``: see :func:`auto_model_name`)."""
    if name == "auto":
        name = auto_model_name(in_shape)
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
    model.registry_name = name  # what was built (``auto`` resolved), recorded in result.json
    return model
