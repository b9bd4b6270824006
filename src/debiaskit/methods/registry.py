"""Method registry and hyper-parameter defaults (DomainBed ``hparams_registry`` style).

``default_hparams(method, dataset)`` = common defaults ← per-dataset defaults ← the method's own
(``Method.method_hparams(dataset)``). Any key outside that dict is rejected when a run is configured.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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


#: hyper-parameters every method has
COMMON_HPARAMS: dict[str, Any] = {
    "model": "mlp",
    "model_kwargs": {},
    "optimizer": "adam",
    "lr": 1e-3,
    "weight_decay": 0.0,
    "momentum": 0.9,
    "batch_size": 256,
    "steps": 1000,
    "lr_schedule": "none",
    "lr_step_size": 10000,
    "lr_gamma": 0.5,
}

#: per-dataset defaults (the LfF protocol where one exists; spec lff_disent.md §4-§5)
DATASET_HPARAMS: dict[str, dict[str, Any]] = {
    "colored_mnist": {"model": "mlp_lff", "lr": 1e-3, "batch_size": 256, "steps": 23500},
    "corrupted_cifar10": {"model": "resnet20", "lr": 1e-3, "batch_size": 256, "steps": 39200},
    "bffhq": {"model": "resnet18", "lr": 1e-4, "batch_size": 64, "steps": 50000},
    "celeba": {"model": "resnet18", "lr": 1e-4, "weight_decay": 1e-4, "batch_size": 256, "steps": 127200},
    "celeba64_mini": {"model": "cnn64", "lr": 1e-3, "batch_size": 128, "steps": 2000},
    "waterbirds": {"model": "resnet50", "optimizer": "sgd", "lr": 1e-3, "weight_decay": 1e-4, "batch_size": 128, "steps": 5000},
}


def default_hparams(method: str, dataset: str) -> dict[str, Any]:
    cls = get_method(method)
    hp = dict(COMMON_HPARAMS)
    hp.update(DATASET_HPARAMS.get(dataset, {}))
    hp.update(cls.method_hparams(dataset))
    return hp
