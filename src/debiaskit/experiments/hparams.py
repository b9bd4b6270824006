"""The hyper-parameter registry: one function resolves the hyper-parameters of every run.

:func:`resolve_hparams` is what ``debiaskit train``, ``debiaskit sweep``, ``debiaskit demo``, the Python API
(:func:`debiaskit.fit`) and the benchmarks use, so the same (method, dataset, ratio) cell always gets the same
values. Layers, later ones winning:

1. :data:`COMMON_HPARAMS` — keys every method has (model, optimiser, lr, batch size, steps, LR schedule);
2. :data:`DATASET_HPARAMS` — per-dataset defaults (network and budget of the dataset's usual protocol);
3. the method's ``default_hparams`` (its own keys), merged along the class hierarchy;
4. the method's ``dataset_hparams[dataset]`` — the values its paper / official scripts use on that dataset;
5. the method's ``ratio_hparams[(dataset, ratio)]`` — values that change with the bias-conflicting ratio;
6. with ``hparams_seed > 0``: a random draw from the method's ``search_space`` (and :data:`COMMON_SEARCH`),
   DomainBed-style (Gulrajani & Lopez-Paz, ICLR 2021): seed 0 is the default setting, seeds 1, 2, ... are
   draws seeded by ``(method, dataset, ratio, hparams_seed)`` and identical on every machine and backend;
7. the user's values (validated: an unknown key is an error).

A dataset without an entry in :data:`DATASET_HPARAMS` gets ``model: auto`` (a network chosen from the
image shape when the data is built: see :func:`debiaskit.models.auto_model_name`) and a warning.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from debiaskit.errors import DebiaskitError
from debiaskit.methods.base import Method
from debiaskit.methods.registry import get_method
from debiaskit.methods.space import Distribution, LogUniform

__all__ = [
    "COMMON_HPARAMS",
    "COMMON_SEARCH",
    "DATASET_HPARAMS",
    "HParamSource",
    "explain_hparams",
    "resolve_hparams",
    "same_ratio",
]

log = logging.getLogger(__name__)

#: hyper-parameters every method has
COMMON_HPARAMS: dict[str, Any] = {
    "model": "auto",
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

#: random-search ranges of the common keys (used only when a sweep sets ``n_hparams``)
COMMON_SEARCH: dict[str, Distribution] = {
    "lr": LogUniform(1e-4, 1e-2),
    "weight_decay": LogUniform(1e-6, 1e-2),
}

#: per-dataset defaults: the network and budget of the dataset's usual protocol (LfF / DisEnt / Wang et al.)
DATASET_HPARAMS: dict[str, dict[str, Any]] = {
    # LfF protocol (Nam et al., NeurIPS 2020): 100-d MLP, Adam 1e-3, 23.5k steps
    "colored_mnist": {"model": "mlp_lff", "lr": 1e-3, "batch_size": 256, "steps": 23500},
    # LfF protocol: CIFAR ResNet-20, 196 x 200 = 39.2k steps
    "corrupted_cifar10": {"model": "resnet20", "lr": 1e-3, "batch_size": 256, "steps": 39200},
    "bffhq": {"model": "resnet18", "lr": 1e-4, "batch_size": 64, "steps": 50000},
    "celeba": {"model": "resnet18", "lr": 1e-4, "weight_decay": 1e-4, "batch_size": 256, "steps": 127200},
    "celeba64_mini": {"model": "cnn64", "lr": 1e-3, "batch_size": 128, "steps": 2000},
    "waterbirds": {"model": "resnet50", "optimizer": "sgd", "lr": 1e-3, "weight_decay": 1e-4, "batch_size": 128,
                   "steps": 5000},
    # Wang et al., ICCV 2019 (Sec. 4 and the released commands): ResNet-50, Adam 1e-4, weight decay 1e-5, batch
    # 32; imSitu 15 epochs of 24,301 images ~ 11.4k steps. COCO's train split is not released: 10k steps on
    # whatever training split the user provides.
    "imsitu_gender": {"model": "resnet50", "lr": 1e-4, "weight_decay": 1e-5, "batch_size": 32, "steps": 11400},
    "coco_gender": {"model": "resnet50", "lr": 1e-4, "weight_decay": 1e-5, "batch_size": 32, "steps": 10000},
}

#: relative tolerance when matching a conflicting ratio against a ``ratio_hparams`` key
_RATIO_TOL = 1e-9


def same_ratio(a: Any, b: Any) -> bool:
    """Whether two conflicting ratios are the same number (0.01 == 1e-2 == 0.010)."""
    try:
        return abs(float(a) - float(b)) <= _RATIO_TOL * max(1.0, abs(float(b)))
    except (TypeError, ValueError):
        return False


def _mro_merge(cls: type[Method], attr: str, *, nested: bool = False) -> dict[Any, Any]:
    """Merge a dict class attribute along the method's class hierarchy (base classes first).

    ``nested``: the values are themselves tables (``dataset_hparams``, ``ratio_hparams``) merged key by key.
    """
    out: dict[Any, Any] = {}
    for klass in reversed(cls.__mro__):
        for k, v in (klass.__dict__.get(attr) or {}).items():
            out[k] = {**out.get(k, {}), **v} if nested else v
    return out


@dataclass(frozen=True)
class HParamSource:
    """Where a resolved value came from (shown by ``debiaskit methods info``)."""

    value: Any
    source: str  # common | dataset | method | method:dataset | method:ratio | search | user


def explain_hparams(
    method: str, dataset: str, *, ratio: float | None = None, hparams_seed: int = 0,
    user: dict[str, Any] | None = None,
) -> dict[str, HParamSource]:
    """Like :func:`resolve_hparams`, but every value comes with the layer that set it."""
    cls = get_method(method)
    out: dict[str, HParamSource] = {k: HParamSource(v, "common") for k, v in COMMON_HPARAMS.items()}
    for k, v in DATASET_HPARAMS.get(dataset, {}).items():
        out[k] = HParamSource(v, "dataset")
    for k, v in _mro_merge(cls, "default_hparams").items():
        out[k] = HParamSource(v, "method")
    for k, v in _mro_merge(cls, "dataset_hparams", nested=True).get(dataset, {}).items():
        out[k] = HParamSource(v, "method:dataset")
    if ratio is not None:
        for (ds, r), hp in _mro_merge(cls, "ratio_hparams", nested=True).items():
            if ds == dataset and same_ratio(ratio, r):
                for k, v in hp.items():
                    out[k] = HParamSource(v, "method:ratio")
    if hparams_seed:
        for k, v in _draw(cls, method, dataset, ratio, hparams_seed).items():
            out[k] = HParamSource(v, "search")
    for k, v in (user or {}).items():
        out[k] = HParamSource(v, "user")
    return out


def _draw(cls: type[Method], method: str, dataset: str, ratio: float | None, hparams_seed: int) -> dict[str, Any]:
    """The ``hparams_seed``-th random setting of a cell (the same on every machine)."""
    space: dict[str, Distribution] = {**COMMON_SEARCH, **_mro_merge(cls, "search_space")}
    key = f"{method}|{dataset}|{'' if ratio is None else float(ratio)!r}|{int(hparams_seed)}"
    seed = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")
    rng = np.random.default_rng(seed)
    return {name: space[name].sample(rng) for name in sorted(space)}


def resolve_hparams(
    method: str, dataset: str, *, ratio: float | None = None, hparams_seed: int = 0,
    user: dict[str, Any] | None = None, warn: bool = True,
) -> dict[str, Any]:
    """The full hyper-parameters of ``method`` on ``dataset`` at conflicting ratio ``ratio``.

    ``user`` values override everything; a key the method does not have raises
    :class:`~debiaskit.errors.DebiaskitError` (a typo is never silently ignored).
    """
    if isinstance(hparams_seed, bool) or not isinstance(hparams_seed, int) or hparams_seed < 0:
        raise DebiaskitError(f"hparams_seed must be a non-negative integer, got {hparams_seed!r}")
    user = dict(user or {})
    resolved = explain_hparams(method, dataset, ratio=ratio, hparams_seed=hparams_seed)
    unknown = sorted(set(user) - set(resolved))
    if unknown:
        raise DebiaskitError(
            f"unknown hparam key(s) {', '.join(unknown)} for {method} on {dataset}; "
            f"valid: {', '.join(sorted(resolved))}"
        )
    out = {k: v.value for k, v in resolved.items()}
    out.update(user)
    if warn and dataset not in DATASET_HPARAMS and "model" not in user and out.get("model") == "auto":
        warnings.warn(
            f"dataset {dataset!r} has no registered defaults: the model is chosen from the image shape "
            f"(model: auto) and the budget is {out['steps']} steps; set hparams.model / hparams.steps to choose",
            UserWarning, stacklevel=2,
        )
    return out
