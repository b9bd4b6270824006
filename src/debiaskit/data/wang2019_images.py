"""COCO and imSitu gender splits of Wang et al. (ICCV 2019) *with images* (``docs/datasets_files.md``).

Labels come from the authors' pickles, read by :mod:`debiaskit.data.wang2019` (``load_coco_labels``,
``load_imsitu_labels``, ``load_ratio_ids``); images from a separate ``image_root``::

    <data_dir>/wang2019/object_multilabel/data/{train,val,test}.data, object_id.map, *_ratio_{1,2,3}.ids
    <data_dir>/wang2019/verb_classification/data/{train,val,test}.data, verb_id.map, *_ratio_{1,2,3}.ids

    COCO:   <image_root>/COCO_val2014_000000391895.jpg   or  <image_root>/{val2014,train2014}/COCO_...jpg
    imSitu: <image_root>/hitchhiking_238.jpg             or  <image_root>/of500_images_resized/hitchhiking_238.jpg

``coco_gender``: multi-label, ``targets`` is the ``(N, 79)`` multi-hot object matrix (COCO's 80 classes minus
person); ``imsitu_gender``: single-label, 211 verbs. ``bias`` = gender, 0 man / 1 woman, in both.
``aligned_cells[k]`` marks the majority gender among training images carrying label ``k`` (the first
available split when the train pickle is absent, as for COCO here). Every split whose ``.data`` file
exists is built; ``balanced_ratio=α`` restricts **train only** to the shipped α-balanced id list, as the
paper's ``--balanced --ratio`` (val/test stay the original splits, as in the authors' scripts).

Images: Wang et al. train on Resize(256) → RandomCrop(224) → flip and evaluate on CenterCrop(224). The
cache stores the deterministic evaluation view (resize shorter side + centre crop to ``resolution``,
default 224), and ``info`` records flip + ImageNet normalisation for training: the random 224-from-256
crop is **not** reproduced (a documented deviation).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from debiaskit.data.base import DatasetSplits
from debiaskit.data.filesplits import IMAGENET_NORM, cache_options, check_files_exist, file_split, majority_aligned_cells
from debiaskit.data.registry import register_dataset
from debiaskit.data.wang2019 import (
    GENDER_NAMES,
    coco_object_names,
    imsitu_verb_names,
    load_coco_labels,
    load_imsitu_labels,
    load_ratio_ids,
)
from debiaskit.errors import DataMissingError, DebiaskitError
from debiaskit.paths import resolve_data_dir

__all__ = ["build_coco_gender", "build_imsitu_gender"]

_SPLITS = ("train", "val", "test")


def _resolve_images(names: list[str], image_root: Path, subdirs: Callable[[str], list[str]]) -> list[Path]:
    """First existing candidate per image name; the primary path (``image_root/name``) when none exists."""
    out = []
    for n in names:
        cands = [image_root / n, *(image_root / s / n for s in subdirs(n))]
        out.append(next((c for c in cands if c.is_file()), cands[0]))
    return out


def _coco_subdirs(name: str) -> list[str]:
    parts = name.split("_")  # COCO_val2014_000000391895.jpg -> val2014
    sub = [parts[1]] if len(parts) >= 3 else []
    return sub + [s for s in ("val2014", "train2014") if s not in sub]


def _imsitu_subdirs(name: str) -> list[str]:
    return ["of500_images_resized", "images"]


def _build(
    task: str,
    *,
    data_dir: str | None,
    image_root: str | None,
    balanced_ratio: int | None,
    cache: dict,
) -> DatasetSplits:
    dataset = "coco_gender" if task == "coco" else "imsitu_gender"
    labels_root = resolve_data_dir(data_dir)
    if labels_root is None:
        raise DataMissingError(
            f"{dataset}: no label directory; pass data_dir=... (the folder holding wang2019/) or set DEBIASKIT_DATA"
        )
    if not image_root:
        raise DataMissingError(
            f"{dataset}: pass image_root=... , the folder with the {'COCO 2014' if task == 'coco' else 'imSitu'} "
            "images named in the label pickles"
        )
    img_root = Path(image_root).expanduser()
    if not img_root.is_dir():
        raise DataMissingError(f"{dataset}: image_root {img_root} is not a folder")
    if balanced_ratio is not None and int(balanced_ratio) not in (1, 2, 3):
        raise DebiaskitError(f"{dataset}: balanced_ratio must be 1, 2 or 3 (the shipped α-splits), got {balanced_ratio!r}")
    load = load_coco_labels if task == "coco" else load_imsitu_labels
    names_of = coco_object_names if task == "coco" else imsitu_verb_names
    loaded: dict[str, tuple[np.ndarray, np.ndarray, list[str]]] = {}
    absent = []
    for s in _SPLITS:
        try:
            loaded[s] = load(labels_root, s)
        except DebiaskitError as e:
            if "not found" not in str(e):
                raise
            absent.append(s)
    if not loaded:
        raise DataMissingError(f"{dataset}: no label split found under {labels_root}: {'; '.join(absent)}")
    if balanced_ratio is not None:
        if "train" not in loaded:
            raise DataMissingError(f"{dataset}: balanced_ratio needs the train split, which is absent under {labels_root}")
        ids = load_ratio_ids(labels_root, task, "train", int(balanced_ratio))
        y, g, n = loaded["train"]
        if len(ids) and ids.max() >= len(g):
            raise DebiaskitError(f"{dataset}: train_ratio_{balanced_ratio}.ids indexes beyond the {len(g)} train records")
        loaded["train"] = (y[ids], g[ids], [n[i] for i in ids])
    class_names = names_of(labels_root)
    k = len(class_names)
    subdirs = _coco_subdirs if task == "coco" else _imsitu_subdirs
    files = {s: _resolve_images(v[2], img_root, subdirs) for s, v in loaded.items()}
    for s, f in files.items():
        check_files_exist(f, dataset=f"{dataset}/{s}", where=img_root)
    ref = "train" if "train" in loaded else next(iter(loaded))
    y_ref, g_ref, _ = loaded[ref]
    if task == "coco" and y_ref.shape[1] != k:
        raise DebiaskitError(f"{dataset}: {y_ref.shape[1]} object columns but {k} names in object_id.map")
    aligned = majority_aligned_cells(torch.as_tensor(y_ref.astype(np.int64)), torch.as_tensor(g_ref), k, 2)
    info = {
        "labels_root": str(labels_root), "image_root": str(img_root), "balanced_ratio": balanced_ratio,
        "aligned_from": ref, "absent_splits": absent, "train_augment": {"flip": True}, "normalize": IMAGENET_NORM,
    }
    out = {}
    for s, (y, g, _) in loaded.items():
        out[s] = file_split(
            files[s], y.astype(np.int64), g, dataset=dataset, split=s, num_classes=k, num_bias=2,
            aligned_cells=aligned, cache=cache, class_names=class_names, bias_names=list(GENDER_NAMES),
            info=dict(info),
        )
    return DatasetSplits(out, info={"name": dataset, **{k_: v for k_, v in info.items() if k_ != "normalize"}})


@register_dataset("coco_gender")
def build_coco_gender(
    *,
    data_dir: str | None = None,
    image_root: str | None = None,
    balanced_ratio: int | None = None,
    resolution: int = 224,
    crop: str = "center",
    on_error: str = "fail",
    progress: bool = True,
    num_workers: int | None = None,
) -> DatasetSplits:
    """COCO gender split of Wang et al. 2019 with images: 79-label multi-hot targets, bias = gender.

    Args:
        data_dir: folder holding ``wang2019/object_multilabel/data/`` (or that folder itself).
        image_root: folder with the COCO 2014 images (flat, or ``val2014/`` / ``train2014/`` inside).
        balanced_ratio: 1, 2 or 3 restricts train to the shipped α-balanced ids (None = full train).
        resolution, crop, on_error, progress, num_workers: image-cache options.
    """
    cache = cache_options(resolution=resolution, crop=crop, on_error=on_error, progress=progress,
                          num_workers=num_workers)
    return _build("coco", data_dir=data_dir, image_root=image_root, balanced_ratio=balanced_ratio, cache=cache)


@register_dataset("imsitu_gender")
def build_imsitu_gender(
    *,
    data_dir: str | None = None,
    image_root: str | None = None,
    balanced_ratio: int | None = None,
    resolution: int = 224,
    crop: str = "center",
    on_error: str = "fail",
    progress: bool = True,
    num_workers: int | None = None,
) -> DatasetSplits:
    """imSitu gender split of Wang et al. 2019 with images: 211 verbs, bias = gender.

    Args:
        data_dir: folder holding ``wang2019/verb_classification/data/`` (or that folder itself).
        image_root: folder with the imSitu images (flat, or ``of500_images_resized/`` inside).
        balanced_ratio: 1, 2 or 3 restricts train to the shipped α-balanced ids (None = full train).
        resolution, crop, on_error, progress, num_workers: image-cache options.
    """
    cache = cache_options(resolution=resolution, crop=crop, on_error=on_error, progress=progress,
                          num_workers=num_workers)
    return _build("imsitu", data_dir=data_dir, image_root=image_root, balanced_ratio=balanced_ratio, cache=cache)
