"""Tiny planted-bias data and a run helper for the adversarial-method tests (fixtures ``toy`` and ``run_method``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from debiaskit.data.base import BiasedDataset, DatasetSplits
from debiaskit.experiments.config import resolve_config
from debiaskit.train import run_training


def planted(n: int, *, corr: float, seed: int, split: str, num_bias: int = 2, side: int = 4,
            multilabel: bool = False) -> BiasedDataset:
    """1×side×side uint8 images: pixels 0-3 encode the target, pixels 4-7 the protected value, rest noise.

    With probability ``corr`` the protected value equals the target (mod num_bias), else it is uniform.
    """
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    b = np.where(rng.random(n) < corr, y % num_bias, rng.integers(0, num_bias, n))
    img = rng.integers(0, 60, (n, side * side)).astype(np.float64)
    img[:, 0:4] += 120 * y[:, None] + rng.normal(0, 25, (n, 4))
    img[:, 4:8] += (160 / max(num_bias - 1, 1)) * b[:, None] + rng.normal(0, 10, (n, 4))
    images = torch.from_numpy(np.clip(img, 0, 255).astype(np.uint8).reshape(n, 1, side, side))
    targets = torch.from_numpy(np.stack([y, 1 - y], 1) if multilabel else y)
    return BiasedDataset(images=images, targets=targets, bias=torch.from_numpy(b), num_classes=2,
                         num_bias=num_bias, split=split, name="toy",
                         aligned_cells=None if (multilabel or num_bias == 2) else torch.eye(2, num_bias, dtype=torch.bool))


def toy_splits(n: int = 600, *, corr: float = 0.9, num_bias: int = 2, multilabel: bool = False, side: int = 4,
               seed: int = 0) -> DatasetSplits:
    return DatasetSplits({
        "train": planted(n, corr=corr, seed=seed, split="train", num_bias=num_bias, multilabel=multilabel, side=side),
        "val": planted(n // 3, corr=corr, seed=seed + 1, split="val", num_bias=num_bias, multilabel=multilabel, side=side),
        "test": planted(n // 3, corr=0.0, seed=seed + 2, split="test", num_bias=num_bias, multilabel=multilabel, side=side),
    })


def run(method: str, out: Path, splits: DatasetSplits, *, steps: int = 20, seed: int = 0, **hp: Any):
    cfg = resolve_config({
        "dataset": "colored_mnist", "method": method, "seed": seed, "device": "cpu",
        "hparams": {"model": "mlp", "model_kwargs": {"hidden": [32, 32]}, "batch_size": 64, "steps": steps,
                    "lr": 1e-2, **hp},
        "train": {"eval_every": steps, "checkpoint_every": steps, "progress": False},
    })
    return run_training(cfg, out, splits=splits)


@pytest.fixture
def toy():
    """``toy(n, corr=..., num_bias=..., multilabel=...)`` → DatasetSplits of planted-bias images."""
    return toy_splits


@pytest.fixture
def run_method():
    """``run_method(method, out_dir, splits, steps=..., **hparams)`` → RunResult (tiny mlp, CPU)."""
    return run
