"""Fixtures of the dataset tests.

Tiny CIFAR-10 trees with the real layouts (JPEG tree as tar / folder + canonical-order CSV, python pickles), frost
textures, and tiny image files written with PIL for the file-backed datasets (whose test modules request
``own_cache`` for every test)."""

from __future__ import annotations

import csv
import io
import pickle
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from debiaskit.data.cifar10_source import CIFAR10_CLASSES


def random_images(n: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth random RGB images (JPEG-friendly), uint8 (n, 32, 32, 3)."""
    small = rng.integers(0, 256, size=(n, 8, 8, 3)).astype(np.uint8)
    return np.stack([cv2.resize(s, (32, 32), interpolation=cv2.INTER_CUBIC) for s in small])


def _make_jpeg_tree(
    root: Path, *, per_class_train: int = 20, per_class_test: int = 10, seed: int = 0, as_tar: bool = True,
    tar_name: str = "cifar10_images.tar",
) -> dict:
    """Write ``root/cifar10/{tar_name | cifar10_images/}`` + ``train_canonical_order.csv``.

    Returns the original (pre-JPEG) arrays: train in canonical order, test ordered by class then number.
    """
    rng = np.random.default_rng(seed)
    d = root / "cifar10"
    d.mkdir(parents=True, exist_ok=True)
    ytr = rng.permutation(np.repeat(np.arange(10), per_class_train))
    xtr = random_images(len(ytr), rng)
    yte = rng.permutation(np.repeat(np.arange(10), per_class_test))
    xte = random_images(len(yte), rng)
    files: dict[str, bytes] = {"README.md": b"fixture\n"}
    rows = []
    counter = {c: 0 for c in range(10)}
    for i, (img, y) in enumerate(zip(xtr, ytr)):
        path = f"train/{CIFAR10_CLASSES[y]}/{counter[y]:04d}.jpg"
        counter[y] += 1
        files[path] = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
        rows.append((i, 1 + i // 10000, i % 10000, int(y), CIFAR10_CLASSES[y], path))
    counter = {c: 0 for c in range(10)}
    test_sorted = [[] for _ in range(10)]
    for img, y in zip(xte, yte):
        path = f"test/{CIFAR10_CLASSES[y]}/{counter[y]:04d}.jpg"
        counter[y] += 1
        files[path] = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
        test_sorted[y].append(img)
    with open(d / "train_canonical_order.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["canonical_train_index", "data_batch", "index_in_batch", "label", "class_name", "path_in_tar"])
        w.writerows(rows)
    if as_tar:
        with tarfile.open(d / tar_name, "w") as tf:
            dirs = sorted({str(Path(p).parent) for p in files if "/" in p})
            for dname in dirs:
                ti = tarfile.TarInfo(dname + "/")
                ti.type = tarfile.DIRTYPE
                tf.addfile(ti)
            for p, blob in files.items():
                ti = tarfile.TarInfo(p)
                ti.size = len(blob)
                tf.addfile(ti, io.BytesIO(blob))
    else:
        for p, blob in files.items():
            (d / "cifar10_images" / p).parent.mkdir(parents=True, exist_ok=True)
            (d / "cifar10_images" / p).write_bytes(blob)
    return {
        "train_x": xtr, "train_y": ytr,
        "test_x": np.concatenate([np.stack(t) for t in test_sorted if t]),
        "test_y": np.concatenate([np.full(len(t), c) for c, t in enumerate(test_sorted) if t]),
    }


def _make_pickles(root: Path, *, per_batch: int = 6, n_test: int = 8, seed: int = 0, archive: bool = False) -> dict:
    """Write ``root/cifar-10-batches-py/{data_batch_1..5,test_batch}`` (or the .tar.gz) as python pickles."""
    rng = np.random.default_rng(seed)
    batches = {}
    for k in range(1, 6):
        batches[f"data_batch_{k}"] = (rng.integers(0, 256, (per_batch, 32, 32, 3)).astype(np.uint8),
                                      rng.integers(0, 10, per_batch))
    batches["test_batch"] = (rng.integers(0, 256, (n_test, 32, 32, 3)).astype(np.uint8), rng.integers(0, 10, n_test))
    blobs = {}
    for name, (x, y) in batches.items():
        data = x.transpose(0, 3, 1, 2).reshape(len(x), 3072)  # R plane, G plane, B plane
        blobs[name] = pickle.dumps({b"batch_label": name.encode(), b"data": data, b"labels": [int(v) for v in y]},
                                   protocol=2)
    if archive:
        with tarfile.open(root / "cifar-10-python.tar.gz", "w:gz") as tf:
            for name, blob in blobs.items():
                ti = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
                ti.size = len(blob)
                tf.addfile(ti, io.BytesIO(blob))
    else:
        d = root / "cifar-10-batches-py"
        d.mkdir(parents=True, exist_ok=True)
        for name, blob in blobs.items():
            (d / name).write_bytes(blob)
    return {
        "train_x": np.concatenate([batches[f"data_batch_{k}"][0] for k in range(1, 6)]),
        "train_y": np.concatenate([batches[f"data_batch_{k}"][1] for k in range(1, 6)]),
        "test_x": batches["test_batch"][0],
        "test_y": batches["test_batch"][1],
    }


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    """The test gets its own empty image cache folder."""
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


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("DEBIASKIT_CACHE", str(cache))
    return cache


@pytest.fixture
def frost_textures(tmp_path) -> Path:
    d = tmp_path / "data" / "lff"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg", "frost6.jpg"):
        tex = cv2.GaussianBlur(rng.integers(0, 256, (300, 400, 3)).astype(np.uint8), (0, 0), 3)
        cv2.imwrite(str(d / name), tex // 2)
    return d


@pytest.fixture
def make_jpeg_tree():
    """Factory: ``make_jpeg_tree(root, per_class_train=20, per_class_test=10, seed=0, as_tar=True, tar_name=...)``."""
    return _make_jpeg_tree


@pytest.fixture
def make_pickles():
    """Factory: ``make_pickles(root, per_batch=6, n_test=8, seed=0, archive=False)``."""
    return _make_pickles
