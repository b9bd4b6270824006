"""Shared toy data for the tests: tiny planted-bias datasets, method contexts, a registered toy dataset.

Import it from any test as ``from toydata import ...`` (``tests/`` is on the pytest path).

Two planted-bias families:

* :func:`planted` / :func:`toy_splits` / :func:`build_toy`: 3 classes, the bias a bright colour channel (easy),
  the target a faint pattern (hard); bias-aligned train/val and a fully conflicting test split — the setting of
  LfF / DisEnt (no bias labels needed).
* :func:`planted_pixels` / :func:`pixel_splits`: binary target and a protected attribute (2 or more values), each
  written into its own pixels; protected = target with probability ``corr`` in train/val, independent in test —
  the setting of the bias-supervised methods (adversarial, reweighting, GroupDRO, ...).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from debiaskit.data.base import BiasedDataset, DatasetSplits
from debiaskit.methods.base import Batch, TrainContext


def planted(n: int, *, conflicting: float, seed: int, split: str, classes: int = 3,
            signal: float = 90.0) -> BiasedDataset:
    """3×4×4 uint8 images: the red channel encodes the bias (easy), one brighter green pixel the target (hard).

    With probability ``conflicting`` the bias is drawn uniformly (so it may still equal the target), else it
    equals the target. ``signal``: how much brighter the target's pixel is than the uniform 0-40 noise.
    """
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    b = np.where(rng.random(n) < conflicting, rng.integers(0, classes, n), y)
    img = rng.integers(0, 40, (n, 3, 16)).astype(np.float64)
    img[:, 0, :] += 200 * b[:, None] / (classes - 1)
    img[np.arange(n), 1, y] += signal
    images = torch.from_numpy(np.clip(img, 0, 255).astype(np.uint8).reshape(n, 3, 4, 4))
    return BiasedDataset(images=images, targets=torch.from_numpy(y), bias=torch.from_numpy(b), num_classes=classes,
                         num_bias=classes, split=split, name="toy")



def toy_splits() -> DatasetSplits:
    return DatasetSplits({
        "train": planted(480, conflicting=0.05, seed=0, split="train"),
        "val": planted(120, conflicting=0.05, seed=1, split="val"),
        "test": planted(150, conflicting=1.0, seed=2, split="test"),
    })


def hard_toy_splits(*, classes: int = 5, n: int = 1000, conflicting: float = 0.1, signal: float = 50.0,
                    seed: int = 0) -> DatasetSplits:
    """A planted-bias problem on which bias-blind training fails on the bias-conflicting test cells.

    5 classes (with 2 or 3 the conflicting cells can be fitted by "anything but the bias" instead of the
    target), a weak target pixel (``signal`` 50 over 0-40 noise), 10 % uniformly re-drawn bias in train / val
    (8 % bias-conflicting), and a test split (300) whose bias is independent of the target.
    """
    kw = {"classes": classes, "signal": signal}
    return DatasetSplits({
        "train": planted(n, conflicting=conflicting, seed=seed, split="train", **kw),
        "val": planted(n // 4, conflicting=conflicting, seed=seed + 1, split="val", **kw),
        "test": planted(300, conflicting=1.0, seed=seed + 2, split="test", **kw),
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


def planted_pixels(n: int, *, corr: float, seed: int, split: str, num_bias: int = 2, side: int = 4,
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


def pixel_splits(n: int = 600, *, corr: float = 0.9, num_bias: int = 2, multilabel: bool = False, side: int = 4,
                 seed: int = 0) -> DatasetSplits:
    """Train (n), val (n/3) with protected = target at rate ``corr``; test (n/3) with an independent protected value."""
    kw = {"num_bias": num_bias, "multilabel": multilabel, "side": side}
    return DatasetSplits({
        "train": planted_pixels(n, corr=corr, seed=seed, split="train", **kw),
        "val": planted_pixels(n // 3, corr=corr, seed=seed + 1, split="val", **kw),
        "test": planted_pixels(n // 3, corr=0.0, seed=seed + 2, split="test", **kw),
    })


def run_tiny(method: str, out: Path, splits: DatasetSplits, *, steps: int = 20, seed: int = 0, **hp: Any):
    """``run_training`` of ``method`` on ``splits`` with a tiny MLP on CPU, one evaluation at the end."""
    from debiaskit.experiments.config import resolve_config
    from debiaskit.train import run_training

    cfg = resolve_config({
        "dataset": "colored_mnist", "method": method, "seed": seed, "device": "cpu",
        "hparams": {"model": "mlp", "model_kwargs": {"hidden": [32, 32]}, "batch_size": 64, "steps": steps,
                    "lr": 1e-2, **hp},
        "train": {"eval_every": steps, "checkpoint_every": steps, "progress": False},
    })
    return run_training(cfg, out, splits=splits)
