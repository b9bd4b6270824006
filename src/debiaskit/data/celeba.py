"""CelebA images in torchvision's layout, any target attribute and any protected attribute.

Layout (``data_dir`` is the ``celeba`` folder or its parent, as torchvision's ``root``)::

    celeba/
      img_align_celeba/000001.jpg ... 202599.jpg   aligned & cropped 178x218 JPEGs
      list_attr_celeba.txt                          202,599 x 40 attributes in {-1, 1}
      list_eval_partition.txt                       0/1/2 = train/val/test (162,770 / 19,867 / 19,962)

Annotations are parsed by :func:`debiaskit.data.attribute_labels.load_celeba_attributes`. ``targets`` =
the ``target`` attribute as 0/1, ``bias`` = the ``protected`` attribute as 0/1 (default ``Male``, the
"gender expression" of Ramaswamy et al., CVPR 2021, and LfF's Blond_Hair/Male task).
Splits are the official partition. ``aligned_cells[y]`` = the protected value that is the majority among
*training* images of target class ``y`` (ties → value 0). ``meta["attrs"]`` holds all 40 attributes as
0/1 uint8 (names in ``info["attr_names"]``), as in ``celeba64_mini``.

Images are resized once into the memory-mapped cache (default 224x224 stretched, LfF's
``Resize((224, 224))``); ``info`` records LfF's transform: horizontal flip for training, ImageNet
normalisation. ``limit`` keeps the first ``limit`` images of each split (file order) for quick runs. The
annotation files are checked against torchvision's md5 sums (``verify_annotations=False`` to skip).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from debiaskit.data.attribute_labels import CELEBA_ATTRIBUTES, load_celeba_attributes
from debiaskit.data.base import DatasetSplits
from debiaskit.data.filesplits import (
    IMAGENET_NORM,
    cache_options,
    check_files_exist,
    file_split,
    majority_aligned_cells,
)
from debiaskit.data.registry import register_dataset
from debiaskit.errors import DataMissingError, DebiaskitError
from debiaskit.paths import resolve_data_dir, verify_file

__all__ = ["build_celeba", "find_celeba_root"]

_NEEDED = ("img_align_celeba", "list_attr_celeba.txt", "list_eval_partition.txt")
#: md5 of the canonical annotation files (torchvision's ``CelebA.file_list``)
ANNOTATION_MD5 = {
    "list_attr_celeba.txt": "75e246fa4810816ffd6ee81facbd244c",
    "list_eval_partition.txt": "d32c9cbf5e040fd4025c592c306e6668",
}


def find_celeba_root(data_dir: str | None) -> Path:
    """The folder holding ``img_align_celeba/`` and the two annotation files (itself or ``<data_dir>/celeba``)."""
    base = resolve_data_dir(data_dir)
    if base is None:
        raise DataMissingError(
            "celeba: no data directory given; pass data_dir=... (CLI --data-dir) or set DEBIASKIT_DATA to the folder "
            "holding celeba/img_align_celeba/, celeba/list_attr_celeba.txt and celeba/list_eval_partition.txt"
        )
    cands = [base / "celeba", base] if (base / "celeba").is_dir() else [base]
    best, best_missing = cands[0], list(_NEEDED)
    for c in cands:
        missing = [n for n in _NEEDED if not (c / n).exists()]
        if not missing:
            return c
        if len(missing) < len(best_missing):
            best, best_missing = c, missing
    raise DataMissingError(
        f"celeba: missing {', '.join(best_missing)} in {best} (torchvision layout: img_align_celeba/ with the "
        "aligned JPEGs, list_attr_celeba.txt, list_eval_partition.txt)"
    )


def _check_attribute(name: str, what: str) -> None:
    if name not in CELEBA_ATTRIBUTES:
        import difflib

        close = difflib.get_close_matches(name, CELEBA_ATTRIBUTES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise DebiaskitError(
            f"celeba: unknown {what} attribute {name!r}{hint}; valid: {', '.join(CELEBA_ATTRIBUTES)}"
        )


@register_dataset("celeba")
def build_celeba(
    *,
    data_dir: str | None = None,
    target: str = "Blond_Hair",
    protected: str = "Male",
    resolution: int = 224,
    crop: str = "none",
    limit: int | None = None,
    verify_annotations: bool = True,
    on_error: str = "fail",
    progress: bool = True,
    num_workers: int | None = None,
) -> DatasetSplits:
    """Build CelebA ``train`` / ``val`` / ``test`` (official partition) for ``target`` vs ``protected``.

    Args:
        data_dir: the ``celeba`` folder or its parent (default ``$DEBIASKIT_DATA``).
        target: attribute to predict (any of the 40; default LfF's ``Blond_Hair``).
        protected: bias / protected attribute (default ``Male``); must differ from ``target``.
        resolution, crop, on_error, progress, num_workers: image-cache options.
        limit: keep only the first ``limit`` images of each split (None = all).
        verify_annotations: check the md5 of both annotation files against the canonical release
            (``ChecksumError`` on mismatch); pass False for an edited or subset annotation file.
    """
    _check_attribute(target, "target")
    _check_attribute(protected, "protected")
    if target == protected:
        raise DebiaskitError(f"celeba: target and protected attribute are both {target!r}; choose two different ones")
    if limit is not None and int(limit) < 1:
        raise DebiaskitError(f"celeba: limit must be a positive number of images, got {limit!r}")
    cache = cache_options(resolution=resolution, crop=crop, on_error=on_error, progress=progress,
                          num_workers=num_workers)
    root = find_celeba_root(data_dir)
    img_dir = root / "img_align_celeba"
    if verify_annotations:
        for fname, md5 in ANNOTATION_MD5.items():
            verify_file(root / fname, md5)
    others = [a for a in CELEBA_ATTRIBUTES if a != protected]
    tables = {s: load_celeba_attributes(root, protected=protected, split=s, labels=others) for s in ("train", "val", "test")}
    if limit is not None:
        tables = {s: t.subset(np.arange(min(int(limit), len(t)))) for s, t in tables.items()}
    for s, t in tables.items():
        check_files_exist([img_dir / f for f in t.ids or []], dataset="celeba", where=img_dir)
    col = others.index(target)
    # all 40 attributes in the canonical order, 0/1
    order = [others.index(a) if a != protected else -1 for a in CELEBA_ATTRIBUTES]

    def attrs40(t) -> np.ndarray:
        full = np.empty((len(t), len(CELEBA_ATTRIBUTES)), np.uint8)
        for j, o in enumerate(order):
            full[:, j] = t.protected if o < 0 else t.labels[:, o]
        return full

    train_t = torch.as_tensor(tables["train"].labels[:, col].astype(np.int64))
    aligned = majority_aligned_cells(train_t, torch.as_tensor(tables["train"].protected), 2, 2)
    info = {
        "root": str(root), "target": target, "protected": protected, "attr_names": list(CELEBA_ATTRIBUTES),
        "train_augment": {"flip": True}, "normalize": IMAGENET_NORM,
    }
    out = {}
    for s, t in tables.items():
        out[s] = file_split(
            [img_dir / f for f in t.ids or []], t.labels[:, col].astype(np.int64), t.protected,
            dataset="celeba", split=s, num_classes=2, num_bias=2, aligned_cells=aligned, cache=cache,
            class_names=[f"not {target}", target], bias_names=[f"not {protected}", protected],
            meta={"attrs": attrs40(t)}, info=dict(info),
        )
    return DatasetSplits(out, info={"name": "celeba", "root": str(root), "target": target, "protected": protected})
