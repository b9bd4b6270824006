"""Shared toy data for the tests: tiny planted-bias datasets, method contexts, a registered toy dataset.

Import it from any test as ``from toydata import ...`` (``tests/`` is on the pytest path)."""

from __future__ import annotations

import numpy as np
import torch

from debiaskit.data.base import BiasedDataset, DatasetSplits
from debiaskit.methods.base import Batch, TrainContext


def planted(n: int, *, conflicting: float, seed: int, split: str, classes: int = 3) -> BiasedDataset:
    """3×4×4 uint8 images: the red channel encodes the bias (easy), a faint grey pattern the target (hard)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    b = np.where(rng.random(n) < conflicting, rng.integers(0, classes, n), y)
    img = rng.integers(0, 40, (n, 3, 16)).astype(np.float64)
    img[:, 0, :] += 200 * b[:, None] / (classes - 1)
    img[np.arange(n), 1, y] += 90
    images = torch.from_numpy(np.clip(img, 0, 255).astype(np.uint8).reshape(n, 3, 4, 4))
    return BiasedDataset(images=images, targets=torch.from_numpy(y), bias=torch.from_numpy(b), num_classes=classes,
                         num_bias=classes, split=split, name="toy")



def toy_splits() -> DatasetSplits:
    return DatasetSplits({
        "train": planted(480, conflicting=0.05, seed=0, split="train"),
        "val": planted(120, conflicting=0.05, seed=1, split="val"),
        "test": planted(150, conflicting=1.0, seed=2, split="test"),
    })


def make_ctx(n: int = 64, classes: int = 3, seed: int = 0) -> TrainContext:
    g = torch.Generator().manual_seed(seed)
    targets = torch.randint(0, classes, (n,), generator=torch.Generator().manual_seed(seed + 100))
    return TrainContext(dataset="toy", num_classes=classes, num_bias=classes, in_shape=(3, 4, 4), n_train=n,
                        train_targets=targets, train_bias=targets.clone(), device=torch.device("cpu"), generator=g)


def make_batch(ctx: TrainContext, idx: torch.Tensor, seed: int = 0) -> Batch:
    x = torch.rand(len(idx), *ctx.in_shape, generator=torch.Generator().manual_seed(seed))
    y = ctx.train_targets[idx]
    return Batch(idx=idx, x=x, y=y, b=y.clone())


def small_hparams(method: str, **kw):
    from debiaskit.experiments.hparams import resolve_hparams

    hp = resolve_hparams(method, "toy", warn=False)
    hp.update({"model": "mlp", "model_kwargs": {"hidden": [8, 6], "input_scale": 1.0}, "batch_size": 16, "lr": 1e-2})
    hp.update(kw)
    return hp


def build_toy(*, ratio: float = 0.05, seed: int = 0) -> DatasetSplits:
    """A registered-dataset builder over :func:`planted` (for sweep tests; no files, builds in milliseconds)."""
    return DatasetSplits({
        "train": planted(320, conflicting=ratio, seed=seed, split="train"),
        "val": planted(90, conflicting=ratio, seed=seed + 1, split="val"),
        "test": planted(90, conflicting=1.0, seed=seed + 2, split="test"),
    })


def register_toy(name: str = "lffdis_toy") -> str:
    from debiaskit.data.registry import DATASETS, list_datasets

    list_datasets()  # import the built-in datasets first
    if name not in DATASETS.list("*"):
        DATASETS.register(name)(build_toy)
    return name
