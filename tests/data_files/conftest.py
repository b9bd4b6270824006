"""Fixtures for the file-backed dataset tests: tiny image files written with PIL in tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    """Each test gets its own empty image cache folder."""
    monkeypatch.setenv("DEBIASKIT_CACHE", str(tmp_path / "cache"))
    yield


def write_image(path: Path, *, seed: int = 0, size: tuple[int, int] = (12, 10), mode: str = "RGB") -> Path:
    """Write a small random image (width, height = size); the format follows the suffix."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode).save(path)
    return path


def truncate(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


@pytest.fixture
def img():
    return write_image


@pytest.fixture
def trunc():
    return truncate


def overfit(dataset, model_name: str = "cnn64", steps: int = 25, **model_kw) -> tuple[float, float]:
    """Train a small model on the whole (tiny) train split through the batch transform; first/last loss."""
    import torch

    from debiaskit.data.augment import make_batch_transform
    from debiaskit.models import create_model

    torch.manual_seed(0)
    model = create_model(model_name, num_classes=dataset.num_classes, in_shape=dataset.image_shape, **model_kw)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    tf = make_batch_transform(dataset.info, train=True)
    g = torch.Generator().manual_seed(0)
    if dataset.multilabel:
        loss_fn = torch.nn.BCEWithLogitsLoss()
        y = dataset.targets.float()
    else:
        loss_fn = torch.nn.CrossEntropyLoss()
        y = dataset.targets
    losses = []
    for _ in range(steps):
        x = tf(dataset.images[torch.arange(len(dataset))], g)
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses[0], losses[-1]


@pytest.fixture
def train_tiny():
    return overfit
