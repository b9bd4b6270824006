"""The Python API: debias your own ``nn.Module`` on your own data with one call (``docs/api.md``).

>>> result = debiaskit.fit("lff", my_cnn, train_ds, val=val_ds, test=test_ds, steps=2000, out_dir="runs/lff")  # doctest: +SKIP
>>> result.result["reported"]["test"]["conflicting_accuracy"]                                                 # doctest: +SKIP

:func:`fit` goes through exactly what ``debiaskit train`` does — the hyper-parameter registry
(:func:`debiaskit.experiments.hparams.resolve_hparams`), the resolved run config
(:func:`debiaskit.experiments.config.resolve_config`) and the trainer
(:func:`debiaskit.train.trainer.run_training`) — so the run directory, its ``result.json`` and its records are
the same as for a command-line run, and re-running the same call resumes or returns the finished run.

How your pieces are plugged in:

* **the model** — an ``nn.Module`` is adapted to the features/head contract
  (:func:`debiaskit.models.adapters.adapt_model`) and registered for this process as the model
  ``python:<module>:<class>``; every network the method builds is a deep copy of it (LfF and DisEnt build two),
  so they all start from your weights. The run records the class's import path, its constructor arguments
  (when they can be found) and a checksum of the initial weights, so ``debiaskit predict`` in another process
  rebuilds the class, or says in one line which module is missing. A string names a registered model
  (``cnn64``, ``torchvision:resnet50``, ``timm:convnext_tiny``, a plugin's model);
* **the data** — :func:`debiaskit.data.adapters.as_splits` (in memory when it fits, else streamed); the
  splits are registered for this process as the dataset ``user`` with a content key.
"""

from __future__ import annotations

import copy
import logging
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from debiaskit.data.adapters import as_splits, register_live_splits
from debiaskit.errors import DebiaskitError
from debiaskit.experiments.config import resolve_config
from debiaskit.methods.registry import get_method
from debiaskit.models.adapters import (
    adapt_model,
    import_path,
    importable,
    init_kwargs_of,
    register_live_model,
    weights_fingerprint,
)
from debiaskit.train.trainer import RunResult, run_training

__all__ = ["RunResult", "fit"]

log = logging.getLogger(__name__)


def _model_spec(model: Any, *, in_shape: tuple[int, ...], num_classes: int, feature_layer: str | None, pool: str,
                seed: int, user_kwargs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(hparams.model, hparams.model_kwargs)`` for the ``model`` argument of :func:`fit`."""
    if isinstance(model, str):
        kwargs = dict(user_kwargs)
        if feature_layer is not None:
            kwargs["feature_layer"] = feature_layer
            kwargs["pool"] = pool
        return model, kwargs
    if isinstance(model, type):
        raise DebiaskitError(f"fit takes a model instance or a model name, got the class {model.__name__}; "
                             f"call it first, e.g. {model.__name__}(...)")
    if not isinstance(model, nn.Module):
        raise DebiaskitError(f"model must be a torch.nn.Module or a registered model name, got {type(model).__name__}")
    if user_kwargs:
        raise DebiaskitError("hparams.model_kwargs applies to named models; configure your module before passing it")
    cls = type(model)
    name = f"python:{import_path(cls)}"
    weights = weights_fingerprint(model)
    init = init_kwargs_of(model) if importable(cls) else None
    if init is not None and not _rebuilds(cls, init, model):
        init = None
    if not importable(cls):
        log.info("model class %s is defined in a script, a notebook or a function (%s): this process can use the run, "
                 "another process cannot rebuild the model (define the class in an importable module)",
                 cls.__qualname__, cls.__module__)
    elif init is None:
        warnings.warn(
            f"the constructor arguments of {cls.__qualname__} could not be found, so another process cannot rebuild "
            "the model: give the class a debiaskit_init_kwargs() method or attributes named like its __init__ "
            "parameters (docs/api.md)", UserWarning, stacklevel=3,
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # a replaced head starts the same way on every call
        adapted = adapt_model(copy.deepcopy(model), in_shape=in_shape, num_classes=num_classes,
                              feature_layer=feature_layer, pool=pool)
    register_live_model(name, weights, adapted)
    return name, {"init": init, "feature_layer": feature_layer, "pool": pool, "weights": weights}


def _rebuilds(cls: type, init: dict[str, Any], model: nn.Module) -> bool:
    """Whether ``cls(**init)`` has the same parameter and buffer names and shapes as ``model``."""
    try:
        with torch.random.fork_rng(devices=[]):
            other = cls(**init)
    except Exception:  # noqa: BLE001 - any failure means "cannot rebuild"
        return False
    a = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    b = {k: tuple(v.shape) for k, v in other.state_dict().items()}
    return a == b


def fit(
    method: str,
    model: nn.Module | str,
    train: Any,
    *,
    val: Any = None,
    test: Any = None,
    steps: int,
    out_dir: str | Path,
    hparams: dict[str, Any] | None = None,
    device: str | None = None,
    seed: int = 0,
    feature_layer: str | None = None,
    pool: str = "avg",
    data_path: str = "auto",
    memory_budget: int | None = None,
    num_workers: int | None = None,
    train_options: dict[str, Any] | None = None,
) -> RunResult:
    """Train ``method`` on your model and data; returns the trainer's :class:`~debiaskit.train.trainer.RunResult`.

    Args:
        method: a method name (``debiaskit methods list``): ``vanilla``, ``lff``, ``disent``, ``groupdro``,
            ``adversarial``, ... or a plugin's.
        model: any classifier ``nn.Module`` (taking float images ``(B, C, H, W)``, returning logits), or a
            registered model name (``cnn64``, ``torchvision:resnet18``, ...). Your module is not modified.
        train, val, test: :class:`~debiaskit.data.base.BiasedDataset`, any map-style dataset returning
            ``(x, y)`` or ``(x, y, b)``, or a ``DataLoader`` over one. ``val`` drives model selection.
        steps: number of optimisation steps.
        out_dir: the run directory (an unfinished run there is resumed, a finished one returned as it is).
        hparams: hyper-parameters over the method's defaults (``debiaskit methods info METHOD``), e.g.
            ``{"lr": 1e-3, "batch_size": 64}``.
        device: ``auto`` (default), ``cpu``, ``cuda[:N]``.
        seed: the run's seed.
        feature_layer, pool: where the penultimate features are (see
            :func:`~debiaskit.models.adapters.adapt_model`); default: the input of the last ``nn.Linear``.
        data_path: ``auto`` | ``in-memory`` | ``streaming`` (:func:`~debiaskit.data.adapters.as_splits`).
        memory_budget: bytes of images ``auto`` moves into memory (default 2 GiB).
        num_workers: DataLoader workers for reading your dataset (default: your DataLoader's, else 0).
        train_options: the run config's ``train`` section (``eval_every``, ``selection``, ``weight_average``, ...).

    Raises:
        DebiaskitError: a method that reads bias labels on data without them, malformed samples, a model that
            cannot be split into features and head, unknown hyper-parameters, ...
    """
    cls = get_method(method)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise DebiaskitError(f"steps must be a positive integer, got {steps!r}")
    splits = as_splits(train, val, test, data_path=data_path, memory_budget=memory_budget, num_workers=num_workers)
    tr = splits["train"]
    if "bias" in cls.labels_consumed and not tr.info.get("bias_labels", True):
        raise DebiaskitError(
            f"method {method!r} reads bias labels (labels consumed: {', '.join(cls.labels_consumed)}), but the training "
            "data returns (x, y); return (x, y, b) from your dataset, or use a method that needs target labels only "
            "(vanilla, lff, disent)"
        )
    hp = dict(hparams or {})
    for k in ("model", "steps"):
        if k in hp:
            raise DebiaskitError(f"pass {k} as fit's own argument, not in hparams")
    name, model_kwargs = _model_spec(model, in_shape=tuple(tr.image_shape), num_classes=tr.num_classes,
                                     feature_layer=feature_layer, pool=pool, seed=seed,
                                     user_kwargs=dict(hp.pop("model_kwargs", None) or {}))
    key = register_live_splits(splits)
    raw = {
        "seed": seed,
        "device": device or "auto",
        "dataset": {"name": "user", "key": key},
        "method": method,
        "hparams": {**hp, "model": name, "model_kwargs": model_kwargs, "steps": steps},
        "train": dict(train_options or {}),
    }
    cfg = resolve_config(raw)
    return run_training(cfg, out_dir, splits=splits)
