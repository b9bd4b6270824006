"""Shared helpers of the file-backed dataset builders: locating the data folder, listing image files,
turning (file list, labels) into a :class:`~debiaskit.data.base.BiasedDataset` backed by the memory-mapped
image cache of :mod:`debiaskit.data.filecache`, and the majority rule for ``aligned_cells``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from debiaskit.data.base import BiasedDataset
from debiaskit.data.filecache import IMAGE_EXTENSIONS, build_image_cache, normalize_resolution
from debiaskit.errors import DataMissingError, DebiaskitError
from debiaskit.paths import resolve_data_dir

__all__ = [
    "find_dataset_root",
    "list_images",
    "majority_aligned_cells",
    "file_split",
    "check_files_exist",
    "deterministic_split",
    "cache_options",
    "IMAGENET_NORM",
    "CIFAR10_NORM",
]

#: Normalisation constants recorded in ``info["normalize"]`` (read by ``make_batch_transform``).
IMAGENET_NORM = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
CIFAR10_NORM = {"mean": [0.4914, 0.4822, 0.4465], "std": [0.2023, 0.1994, 0.2010]}


def find_dataset_root(
    data_dir: str | os.PathLike | None,
    *,
    dataset: str,
    subdirs: Sequence[str],
    is_root: Callable[[Path], bool],
    expected: str,
) -> Path:
    """Return the folder holding the dataset.

    ``data_dir`` (or ``$DEBIASKIT_DATA``) may be the dataset folder itself or a parent holding it under one
    of ``subdirs``. ``is_root(path)`` tells whether a candidate has the expected layout; ``expected``
    describes that layout for the error message.
    """
    base = resolve_data_dir(data_dir)
    if base is None:
        raise DataMissingError(
            f"{dataset}: no data directory given; pass data_dir=... (CLI --data-dir) or set DEBIASKIT_DATA to the "
            f"folder holding {expected}"
        )
    candidates = [base, *(base / s for s in subdirs)]
    for c in candidates:
        if c.is_dir() and is_root(c):
            return c
    raise DataMissingError(
        f"{dataset}: expected {expected} in one of: {', '.join(str(c) for c in candidates)}; not found"
    )


def list_images(folder: Path, *, recursive: bool = True) -> list[Path]:
    """Image files under ``folder`` (by extension, case-insensitive), sorted by path."""
    it = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in it if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."))


def check_files_exist(files: Sequence[Path], *, dataset: str, where: Path) -> None:
    """Raise :class:`DataMissingError` naming the missing files (first 10) and the folder they belong in."""
    missing = [p for p in files if not p.is_file()]
    if missing:
        shown = ", ".join(str(p.relative_to(where)) if p.is_relative_to(where) else str(p) for p in missing[:10])
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise DataMissingError(
            f"{dataset}: {len(missing)} of {len(files)} image files listed in the annotations are missing under "
            f"{where}: {shown}{more}"
        )


def majority_aligned_cells(targets: torch.Tensor, bias: torch.Tensor, num_classes: int, num_bias: int) -> torch.Tensor:
    """Bias-aligned cells = the most frequent bias value of each target class (ties → lowest bias id).

    For a multi-hot ``targets`` matrix ``(N, K)`` the majority is taken per label over the samples carrying it.
    A class with no samples gets no aligned cell.
    """
    t = torch.as_tensor(targets).long()
    b = torch.as_tensor(bias).long()
    if t.dim() == 2:
        onehot_b = torch.nn.functional.one_hot(b, num_bias).to(torch.float64)
        counts = t.to(torch.float64).T @ onehot_b  # (K, num_bias)
    else:
        counts = torch.bincount(t * num_bias + b, minlength=num_classes * num_bias).reshape(num_classes, num_bias)
        counts = counts.to(torch.float64)
    cells = torch.zeros(num_classes, num_bias, dtype=torch.bool)
    has = counts.sum(1) > 0
    cells[torch.arange(num_classes)[has], counts.argmax(1)[has]] = True
    return cells


def deterministic_split(n: int, *, seed: int, val_fraction: float, test_fraction: float) -> np.ndarray:
    """Assign each of ``n`` rows to 0=train / 1=val / 2=test by a seeded permutation (exact fraction sizes)."""
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise DebiaskitError(
            f"val_fraction and test_fraction must be in [0, 1) with a sum below 1, got {val_fraction}, {test_fraction}"
        )
    perm = np.random.default_rng(seed).permutation(n)
    n_val, n_test = int(round(n * val_fraction)), int(round(n * test_fraction))
    out = np.zeros(n, dtype=np.int64)
    out[perm[:n_val]] = 1
    out[perm[n_val : n_val + n_test]] = 2
    return out


def _fingerprint(digest: str, targets: torch.Tensor, bias: torch.Tensor) -> str:
    h = hashlib.sha256(digest.encode())
    for a in (targets, bias):
        a = a.contiguous().numpy()
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def file_split(
    files: Sequence[Path],
    targets: Any,
    bias: Any,
    *,
    dataset: str,
    split: str,
    num_classes: int,
    num_bias: int,
    aligned_cells: torch.Tensor | None,
    cache: dict[str, Any],
    class_names: list[str] | None = None,
    bias_names: list[str] | None = None,
    meta: dict[str, Any] | None = None,
    info: dict[str, Any] | None = None,
) -> BiasedDataset:
    """Cache the images of one split and wrap them with their labels.

    Labels (and ``meta`` columns) are indexed by ``cache.kept`` so skipped files drop their rows. The
    fingerprint hashes the cache's image digest with the labels instead of re-reading every image byte.
    """
    t = torch.as_tensor(np.asarray(targets)).long()
    b = torch.as_tensor(np.asarray(bias)).long()
    c = build_image_cache(list(files), name=f"{dataset}-{split}", **cache)
    kept = torch.from_numpy(c.kept)
    if len(c.kept) != len(files):
        t, b = t[kept], b[kept]
    meta_t = {k: torch.as_tensor(np.asarray(v))[kept] for k, v in (meta or {}).items()}
    inf = dict(info or {})
    inf.update({
        "source_files": len(files),
        "skipped": c.skipped,
        "image_cache": str(c.path),
        "cache_hit": c.hit,
        "resolution": [int(s) for s in c.images.shape[2:]],
    })
    return BiasedDataset(
        images=c.images,
        targets=t,
        bias=b,
        num_classes=num_classes,
        num_bias=num_bias,
        split=split,
        name=dataset,
        aligned_cells=aligned_cells,
        class_names=class_names,
        bias_names=bias_names,
        meta=meta_t,
        info=inf,
        _fingerprint=_fingerprint(c.digest, t, b),
    )


def cache_options(
    *, resolution: Any, crop: str, on_error: str, progress: bool, num_workers: int | None = None
) -> dict[str, Any]:
    """The cache options every file-backed builder accepts, validated early (before any decoding)."""
    if on_error not in ("fail", "skip"):
        raise DebiaskitError(f"on_error must be 'fail' or 'skip', got {on_error!r}")
    if crop not in ("none", "center"):
        raise DebiaskitError(f"crop must be 'none' or 'center', got {crop!r}")
    return {"resolution": normalize_resolution(resolution), "crop": crop, "on_error": on_error,
            "progress": bool(progress), "num_workers": num_workers}
