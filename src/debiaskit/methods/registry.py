"""The method registry (timm-style decorator): ``register_method``, ``list_methods``, ``get_method``.

Hyper-parameter defaults are declared on each method class and resolved by
:func:`debiaskit.experiments.hparams.resolve_hparams`.
"""

from __future__ import annotations

from collections.abc import Callable

from debiaskit.methods.base import Method
from debiaskit.registry import Registry


_BUILTIN_MODULES: list[str] = [
    "debiaskit.methods.vanilla",
    "debiaskit.methods.adversarial",
    "debiaskit.methods.adversarial_image",
    "debiaskit.methods.reweight",
    "debiaskit.methods.resample",
    "debiaskit.methods.groupdro",
    "debiaskit.methods.balanced",
    "debiaskit.methods.lff",
    "debiaskit.methods.disent",
    "debiaskit.methods.latent_aug",
]
METHODS: Registry[type[Method]] = Registry("method", builtin_modules=_BUILTIN_MODULES)


def register_method(name: str) -> Callable[[type[Method]], type[Method]]:
    def deco(cls: type[Method]) -> type[Method]:
        cls.name = name
        return METHODS.register(name)(cls)

    return deco


def list_methods(pattern: str = "*") -> list[str]:
    return METHODS.list(pattern)


def get_method(name: str) -> type[Method]:
    return METHODS.get(name)
