"""BFFHQ (biased FFHQ of BiaSwap, Kim et al. ICCV 2021) in the DisEnt release layout (``docs/datasets_files.md``).

Layout (``data_dir`` is the ``bffhq`` folder or its parent)::

    bffhq/
      0.5pct/align/[<class>/]<id>_<target>_<bias>.png     bias-aligned training images
      0.5pct/conflict/[<class>/]<id>_<target>_<bias>.png  bias-conflicting training images
      valid/<id>_<target>_<bias>.png                       validation (biased like train, DisEnt issue #1)
      test/<id>_<target>_<bias>.png                        test

Labels come from the file names (last two ``_``-separated fields of the stem): target = age
(0 young, 1 old), bias = gender; bias-aligned cells are the diagonal ``target == bias`` (young-female,
old-male per Barbano et al., ICLR 2023, who describe most females as aged 10-29 and most males as 40-59;
the 0/1 gender coding is the release's, and the names ``female``/``male`` are our reading of it). As in the
paper (DisEnt's ``data/util.py``), the ``test`` split keeps only bias-conflicting images (``target != bias``)
by default; ``test_set="full"`` keeps all.

Transforms recorded in ``info`` follow DisEnt: random crop with padding 4 + horizontal flip for training,
normalisation with the **CIFAR-10** mean/std (``docs/methods_lff_disent.md`` detail 11). DisEnt resizes to
224 on the fly; here the resize happens once, into the image cache (``resolution``, default 224).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from debiaskit.data.base import DatasetSplits
from debiaskit.data.filesplits import (
    CIFAR10_NORM,
    cache_options,
    file_split,
    find_dataset_root,
    list_images,
)
from debiaskit.data.registry import register_dataset
from debiaskit.errors import DataMissingError, DebiaskitError

__all__ = ["build_bffhq", "parse_label_filename"]

CLASS_NAMES = ["young", "old"]
BIAS_NAMES = ["female", "male"]


def parse_label_filename(path: Path) -> tuple[int, int] | None:
    """``.../<anything>_<target>_<bias>.<ext>`` → ``(target, bias)``; ``None`` when the name does not fit."""
    parts = path.stem.split("_")
    if len(parts) < 3:
        return None
    try:
        return int(parts[-2]), int(parts[-1])
    except ValueError:
        return None


def _labels(files: list[Path], folder: Path) -> tuple[np.ndarray, np.ndarray]:
    parsed = [parse_label_filename(p) for p in files]
    bad = [p for p, lab in zip(files, parsed) if lab is None or not (0 <= lab[0] <= 1 and 0 <= lab[1] <= 1)]
    if bad:
        shown = ", ".join(str(p.relative_to(folder)) for p in bad[:5])
        raise DebiaskitError(
            f"bffhq: {len(bad)} file name(s) under {folder} do not end in _<target>_<bias> with 0/1 labels "
            f"(e.g. 123_0_1.png): {shown}"
        )
    arr = np.asarray(parsed, dtype=np.int64).reshape(-1, 2)
    return arr[:, 0], arr[:, 1]


@register_dataset("bffhq")
def build_bffhq(
    *,
    data_dir: str | None = None,
    pct: str = "0.5pct",
    test_set: str = "conflicting",
    resolution: int = 224,
    crop: str = "none",
    on_error: str = "fail",
    progress: bool = True,
    num_workers: int | None = None,
) -> DatasetSplits:
    """Build BFFHQ ``train`` / ``val`` / ``test`` from the DisEnt folder release.

    Args:
        data_dir: the ``bffhq`` folder or a folder containing it (default ``$DEBIASKIT_DATA``).
        pct: training sub-folder (the release ships ``0.5pct``: 0.5 % bias-conflicting).
        test_set: ``"conflicting"`` (paper protocol: target != bias only) or ``"full"``.
        resolution, crop, on_error, progress, num_workers: image-cache options
            (:func:`debiaskit.data.filecache.build_image_cache`).
    """
    if test_set not in ("conflicting", "full"):
        raise DebiaskitError(f"bffhq: test_set must be 'conflicting' or 'full', got {test_set!r}")
    cache = cache_options(resolution=resolution, crop=crop, on_error=on_error, progress=progress,
                          num_workers=num_workers)
    root = find_dataset_root(
        data_dir, dataset="bffhq", subdirs=["bffhq"],
        is_root=lambda p: (p / "valid").is_dir() and (p / "test").is_dir(),
        expected="the BFFHQ release folders <pct>/{align,conflict}, valid/, test/",
    )
    train_dir = root / pct
    missing = [str(d) for d in (train_dir / "align", train_dir / "conflict") if not d.is_dir()]
    if missing:
        avail = sorted(p.name for p in root.iterdir() if p.is_dir() and (p / "align").is_dir())
        raise DataMissingError(
            f"bffhq: missing folder(s) {', '.join(missing)}; training sets found in {root}: {', '.join(avail) or 'none'}"
        )
    align = list_images(train_dir / "align")
    conflict = list_images(train_dir / "conflict")
    splits_files = {
        "train": align + conflict,
        "val": list_images(root / "valid"),
        "test": list_images(root / "test"),
    }
    folder_of = {"train": train_dir, "val": root / "valid", "test": root / "test"}
    empty = [str(folder_of[k]) for k, v in splits_files.items() if not v]
    if empty:
        raise DataMissingError(f"bffhq: no image files in {', '.join(empty)}")
    common = {
        "train_augment": {"padding": 4, "flip": True},
        "normalize": CIFAR10_NORM,
        "root": str(root),
        "protocol": "DisEnt BFFHQ (target=age, bias=gender)",
    }
    out = {}
    for split, files in splits_files.items():
        t, b = _labels(files, folder_of[split])
        info = dict(common)
        if split == "train":
            folder_aligned = np.r_[np.ones(len(align), bool), np.zeros(len(conflict), bool)]
            # labels in file names are authoritative; count disagreements with the align/conflict folder
            info["folder_label_mismatch"] = int(((t == b) != folder_aligned).sum())
            info["pct"] = pct
        if split == "test":
            info["test_set"] = test_set
            if test_set == "conflicting":
                keep = t != b
                files = [f for f, k in zip(files, keep) if k]
                t, b = t[keep], b[keep]
                if not files:
                    raise DebiaskitError(f"bffhq: the test folder {folder_of[split]} has no bias-conflicting image")
        out[split] = file_split(
            files, t, b, dataset="bffhq", split=split, num_classes=2, num_bias=2, aligned_cells=None,
            cache=cache, class_names=CLASS_NAMES, bias_names=BIAS_NAMES, info=info,
        )
    return DatasetSplits(out, info={"name": "bffhq", "root": str(root), "pct": pct, "test_set": test_set})
