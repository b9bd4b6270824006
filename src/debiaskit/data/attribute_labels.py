"""Label-only datasets: CelebA attributes, a generic CSV loader and a small registry of label sets.

The leakage tools (Wang et al. ICCV 2019; ``docs/leakage.md``) need label vectors and a protected attribute only, no
images; the loaders here return a :class:`~debiaskit.data.label_table.LabelTable` (its own module, re-exported
here). :func:`load_label_dataset` is the registry used by ``debiaskit audit labels --dataset NAME``.

CelebA: ``list_attr_celeba.txt`` (202,599 rows x 40 attributes in {-1, 1}) and ``list_eval_partition.txt``
(0/1/2 = train/val/test, 162,770 / 19,867 / 19,962 — the official partition). The protected attribute is selectable
(default ``Male``); the other 39 attributes are the multi-hot label vector.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from debiaskit.data.label_table import LabelTable
from debiaskit.data.wang2019 import coco_label_table, imsitu_label_table
from debiaskit.errors import DebiaskitError
from debiaskit.paths import resolve_data_dir

__all__ = [
    "CELEBA_ATTRIBUTES",
    "LabelTable",
    "load_celeba_attributes",
    "load_label_csv",
    "LABEL_DATASETS",
    "load_label_dataset",
]

CELEBA_ATTRIBUTES: tuple[str, ...] = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips",
    "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby",
    "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male",
    "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose",
    "Receding_Hairline", "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair",
    "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)

_CELEBA_SPLITS = {"train": 0, "val": 1, "valid": 1, "test": 2}


def _read_celeba_attr(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    import pandas as pd

    if not path.is_file():
        raise DebiaskitError(f"CelebA attribute file not found: {path}")
    with open(path, encoding="utf-8") as f:
        f.readline()
        names = f.readline().split()
    df = pd.read_csv(path, sep=r"\s+", skiprows=2, header=None, engine="c")
    if df.shape[1] != len(names) + 1:
        raise DebiaskitError(f"{path}: expected {len(names) + 1} columns per row, got {df.shape[1]}")
    files = df.iloc[:, 0].astype(str).tolist()
    attrs = df.iloc[:, 1:].to_numpy(np.int8)
    return names, files, attrs


def load_celeba_attributes(
    root: str | os.PathLike, *, protected: str = "Male", split: str | None = None,
    labels: list[str] | None = None,
) -> LabelTable:
    """CelebA attribute labels with one attribute as the protected attribute (default ``Male``).

    Args:
        root: folder with ``list_attr_celeba.txt`` (and ``list_eval_partition.txt`` when ``split`` is given).
        protected: attribute used as the protected attribute (value 1 = attribute present).
        split: ``train`` / ``val`` / ``test`` (official partition) or ``None`` for all 202,599 rows.
        labels: attribute names to use as labels (default: the other 39).
    """
    root = Path(root)
    if protected not in CELEBA_ATTRIBUTES:
        raise DebiaskitError(f"unknown CelebA attribute {protected!r}; valid: {', '.join(CELEBA_ATTRIBUTES)}")
    label_names = list(labels) if labels is not None else [a for a in CELEBA_ATTRIBUTES if a != protected]
    bad = [a for a in label_names if a not in CELEBA_ATTRIBUTES or a == protected]
    if bad:
        raise DebiaskitError(
            f"invalid CelebA label attribute(s) {', '.join(bad)} (the protected attribute cannot be a label); "
            f"valid: {', '.join(CELEBA_ATTRIBUTES)}"
        )
    names, files, attrs = _read_celeba_attr(root / "list_attr_celeba.txt")
    col = {n: i for i, n in enumerate(names)}
    rows = np.arange(len(files))
    if split is not None:
        if split not in _CELEBA_SPLITS:
            raise DebiaskitError(f"unknown CelebA split {split!r}; valid: train, val, test")
        import pandas as pd

        part_path = root / "list_eval_partition.txt"
        if not part_path.is_file():
            raise DebiaskitError(f"CelebA partition file not found: {part_path}")
        part = pd.read_csv(part_path, sep=r"\s+", header=None, engine="c")
        if len(part) != len(files) or part.iloc[:, 0].astype(str).tolist() != files:
            raise DebiaskitError(f"{part_path} does not list the same images as list_attr_celeba.txt")
        rows = np.flatnonzero(part.iloc[:, 1].to_numpy() == _CELEBA_SPLITS[split])
    y = (attrs[rows][:, [col[a] for a in label_names]] > 0).astype(np.uint8)
    g = (attrs[rows, col[protected]] > 0).astype(np.int64)
    return LabelTable(
        labels=y, protected=g, label_names=label_names, protected_names=[f"not {protected}", protected],
        multilabel=True, name="celeba", split=split or "all", ids=[files[i] for i in rows],
        info={"source": str(root / "list_attr_celeba.txt"), "protected": protected},
    )


def load_label_csv(
    path: str | os.PathLike, *, protected: str, label_columns: list[str] | None = None,
    single_label: str | None = None,
) -> LabelTable:
    """A CSV file of label columns plus one protected column.

    Multi-label form: every column except ``protected`` (or ``label_columns``) is a 0/1 label column
    (values in {-1, 1} are accepted: > 0 means present). Single-label form: ``single_label`` names one
    column of class names / ids. The protected column may hold any two or more distinct values (sorted).
    """
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise DebiaskitError(f"label file not found: {p}")
    try:
        df = pd.read_csv(p)
    except Exception as e:
        raise DebiaskitError(f"{p}: not a readable CSV ({e})") from None
    if protected not in df.columns:
        raise DebiaskitError(f"{p}: no protected column {protected!r}; columns: {', '.join(map(str, df.columns))}")
    if df[protected].isna().any():
        raise DebiaskitError(f"{p}: protected column {protected!r} has missing values")
    pvals, g = np.unique(df[protected].astype(str).to_numpy(), return_inverse=True)
    if single_label is not None:
        if single_label not in df.columns:
            raise DebiaskitError(f"{p}: no label column {single_label!r}")
        names, y = np.unique(df[single_label].astype(str).to_numpy(), return_inverse=True)
        return LabelTable(labels=y, protected=g, label_names=[str(n) for n in names],
                          protected_names=[str(v) for v in pvals], multilabel=False, name=p.stem,
                          info={"source": str(p), "protected": protected})
    cols = label_columns or [c for c in df.columns if c != protected]
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise DebiaskitError(f"{p}: label column(s) not found: {', '.join(missing)}")
    if not cols:
        raise DebiaskitError(f"{p}: no label columns besides the protected column {protected!r}")
    sub = df[cols]
    nonnum = [c for c in cols if not pd.api.types.is_numeric_dtype(sub[c])]  # pandas string dtypes included
    if nonnum:
        shown = ", ".join(map(str, nonnum))
        raise DebiaskitError(f"{p}: label columns must be numeric 0/1 (or -1/1); not numeric: {shown}")
    if sub.isna().any().any():
        raise DebiaskitError(f"{p}: label columns have missing values (inconsistent row widths?)")
    y = (sub.to_numpy() > 0).astype(np.uint8)
    return LabelTable(labels=y, protected=g, label_names=[str(c) for c in cols],
                      protected_names=[str(v) for v in pvals], multilabel=True, name=p.stem,
                      info={"source": str(p), "protected": protected})


def _celeba(root: Path, *, split: str | None, protected: str | None) -> LabelTable:
    d = root / "celeba" if (root / "celeba").is_dir() else root
    return load_celeba_attributes(d, protected=protected or "Male", split=split)


def _imsitu(root: Path, *, split: str | None, protected: str | None) -> LabelTable:
    _only_gender(protected, "imsitu")
    return imsitu_label_table(root, split or "train")


def _coco(root: Path, *, split: str | None, protected: str | None) -> LabelTable:
    _only_gender(protected, "coco_gender")
    return coco_label_table(root, split or "val")


def _only_gender(protected: str | None, name: str) -> None:
    if protected not in (None, "gender"):
        raise DebiaskitError(f"dataset {name!r} has one protected attribute, 'gender'; got {protected!r}")


#: label-only datasets for ``audit labels --dataset NAME``: name -> (loader, splits, default split)
LABEL_DATASETS: dict[str, tuple[Any, tuple[str, ...], str]] = {
    "celeba": (_celeba, ("train", "val", "test"), "train"),
    "imsitu": (_imsitu, ("train", "val", "test"), "train"),
    "coco_gender": (_coco, ("val", "test"), "val"),
}


def load_label_dataset(
    name: str, *, data_dir: str | os.PathLike | None = None, split: str | None = None,
    protected: str | None = None,
) -> LabelTable:
    """Load a registered label-only dataset (``celeba``, ``imsitu``, ``coco_gender``) from ``data_dir``.

    ``data_dir`` (else ``$DEBIASKIT_DATA``) is the data root holding ``celeba/`` and ``wang2019/``.
    """
    if name not in LABEL_DATASETS:
        raise DebiaskitError(f"unknown label dataset {name!r}; available: {', '.join(LABEL_DATASETS)}")
    loader, splits, default = LABEL_DATASETS[name]
    split = split or default
    if split not in splits:
        raise DebiaskitError(f"label dataset {name!r} has splits {', '.join(splits)}; got {split!r}")
    root = resolve_data_dir(data_dir)
    if root is None:
        raise DebiaskitError(f"no data directory for {name!r}: pass --data-dir or set DEBIASKIT_DATA")
    return loader(Path(root), split=split, protected=protected)
