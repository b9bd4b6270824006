"""Dataset registry: ``list_datasets()``, ``get_splits(name, **kw)``, ``get_dataset(name, split=..., **kw)``.

A dataset *builder* is a function ``builder(**kwargs) -> DatasetSplits`` registered under a name::

    @register_dataset("colored_mnist")
    def build_colored_mnist(*, ratio: float = 0.01, ...) -> DatasetSplits: ...

Keyword arguments are validated against the builder's signature so a typo is a clear error.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from debiaskit.data.base import BiasedDataset, DatasetSplits
from debiaskit.errors import DebiaskitError
from debiaskit.registry import Registry


# Each built-in module registers itself on import; add new modules here.
_BUILTIN_MODULES: list[str] = [
    "debiaskit.data.colored_mnist",
    "debiaskit.data.corrupted_cifar10",
    "debiaskit.data.celeba64_mini",
    "debiaskit.data.bffhq",
    "debiaskit.data.celeba",
    "debiaskit.data.waterbirds",
    "debiaskit.data.wang2019_images",
    "debiaskit.data.generic",
    "debiaskit.data.adapters",  # "user": data handed to debiaskit.fit
]
DATASETS: Registry[Callable[..., DatasetSplits]] = Registry("dataset", builtin_modules=_BUILTIN_MODULES)


def register_dataset(name: str) -> Callable[[Callable[..., DatasetSplits]], Callable[..., DatasetSplits]]:
    return DATASETS.register(name)


def list_datasets(pattern: str = "*") -> list[str]:
    return DATASETS.list(pattern)


def dataset_options(name: str) -> dict[str, Any]:
    """The builder's keyword options and their defaults."""
    sig = inspect.signature(DATASETS.get(name))
    return {
        k: (None if p.default is inspect.Parameter.empty else p.default)
        for k, p in sig.parameters.items()
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    }


def get_splits(name: str, **kwargs: Any) -> DatasetSplits:
    """Build (or load from cache) every split of dataset ``name``."""
    builder = DATASETS.get(name)
    sig = inspect.signature(builder)
    accepts_var = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    if not accepts_var:
        unknown = sorted(set(kwargs) - set(sig.parameters))
        if unknown:
            raise DebiaskitError(
                f"dataset {name!r} has no option(s) {', '.join(unknown)}; "
                f"valid options: {', '.join(sig.parameters) or '(none)'}"
            )
    return builder(**kwargs)


def get_dataset(name: str, split: str = "train", **kwargs: Any) -> BiasedDataset:
    """One split of dataset ``name``."""
    return get_splits(name, **kwargs)[split]
