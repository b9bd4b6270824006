"""Waterbirds (Sagawa et al. 2020) in its ``metadata.csv`` release layout.

Layout (``data_dir`` is the dataset folder, or a parent holding ``waterbird_complete95_forest2water2/``
or ``waterbirds/``)::

    waterbird_complete95_forest2water2/
      metadata.csv                          columns img_filename, y, place, split (others ignored)
      001.Black_footed_Albatross/Black_Footed_Albatross_0001_796111.jpg
      ...

``targets`` = ``y`` (0 landbird, 1 waterbird), ``bias`` = ``place`` (0 land, 1 water background);
``split`` 0/1/2 = train/val/test. Bias-aligned cells are the diagonal (waterbird on water, landbird on
land). ``info`` records horizontal-flip augmentation and ImageNet normalisation; images are resized once
into the memory-mapped cache (default 224x224, stretched; ``crop="center"`` for resize+centre-crop).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from debiaskit.data.base import DatasetSplits
from debiaskit.data.filesplits import IMAGENET_NORM, cache_options, check_files_exist, file_split, find_dataset_root
from debiaskit.data.registry import register_dataset
from debiaskit.errors import DebiaskitError

__all__ = ["build_waterbirds"]

_COLUMNS = ("img_filename", "y", "place", "split")
_SPLITS = {0: "train", 1: "val", 2: "test"}


def _read_metadata(path: Path) -> "object":
    import pandas as pd

    try:
        df = pd.read_csv(path)
    except Exception as e:  # noqa: BLE001
        raise DebiaskitError(f"waterbirds: {path} is not a readable CSV ({type(e).__name__}: {e})") from None
    missing = [c for c in _COLUMNS if c not in df.columns]
    if missing:
        raise DebiaskitError(
            f"waterbirds: {path} lacks column(s) {', '.join(missing)}; found: {', '.join(map(str, df.columns))}"
        )
    for c in ("y", "place", "split"):
        vals = set(pd.unique(df[c]))
        allowed = {0, 1, 2} if c == "split" else {0, 1}
        if df[c].isna().any() or not vals <= allowed:
            raise DebiaskitError(
                f"waterbirds: column {c!r} of {path} must hold only {sorted(allowed)}, found {sorted(map(str, vals))}"
            )
    return df


@register_dataset("waterbirds")
def build_waterbirds(
    *,
    data_dir: str | None = None,
    resolution: int = 224,
    crop: str = "none",
    on_error: str = "fail",
    progress: bool = True,
    num_workers: int | None = None,
) -> DatasetSplits:
    """Build Waterbirds ``train`` / ``val`` / ``test`` from ``metadata.csv`` and the image tree.

    Args:
        data_dir: the dataset folder (with ``metadata.csv``) or a parent of it (default ``$DEBIASKIT_DATA``).
        resolution, crop, on_error, progress, num_workers: image-cache options.
    """
    cache = cache_options(resolution=resolution, crop=crop, on_error=on_error, progress=progress,
                          num_workers=num_workers)
    root = find_dataset_root(
        data_dir, dataset="waterbirds", subdirs=["waterbird_complete95_forest2water2", "waterbirds"],
        is_root=lambda p: (p / "metadata.csv").is_file(),
        expected="metadata.csv (columns img_filename,y,place,split) next to the image folders",
    )
    df = _read_metadata(root / "metadata.csv")
    files = [root / str(f) for f in df["img_filename"]]
    check_files_exist(files, dataset="waterbirds", where=root)
    y = df["y"].to_numpy(np.int64)
    place = df["place"].to_numpy(np.int64)
    split = df["split"].to_numpy(np.int64)
    info = {"root": str(root), "train_augment": {"flip": True}, "normalize": IMAGENET_NORM}
    out = {}
    for code, name in _SPLITS.items():
        rows = np.flatnonzero(split == code)
        if not len(rows):
            continue
        out[name] = file_split(
            [files[i] for i in rows], y[rows], place[rows], dataset="waterbirds", split=name, num_classes=2,
            num_bias=2, aligned_cells=None, cache=cache, class_names=["landbird", "waterbird"],
            bias_names=["land", "water"], info=dict(info),
        )
    if "train" not in out:
        raise DebiaskitError(f"waterbirds: {root / 'metadata.csv'} has no training rows (split == 0)")
    return DatasetSplits(out, info={"name": "waterbirds", "root": str(root)})
