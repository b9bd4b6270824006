"""imSitu and COCO gender label splits of Wang et al., "Balanced Datasets Are Not Enough" (ICCV 2019).

Layout (as in the authors' repository, ``uvavision/Balanced-Datasets-Are-Not-Enough``)::

    ROOT/verb_classification/data/{train,val,test}.data   list of {image_name, verb 0..210, gender 0 man/1 woman}
    ROOT/verb_classification/data/{split}_ratio_{1,2,3}.ids   pickled *list* of indices (α-balanced subsets)
    ROOT/verb_classification/data/verb_id.map   {id2verb, verb2id}
    ROOT/object_multilabel/data/{train,val,test}.data   list of {file_name, image_id, objects 79-hot, gender [man, woman]}
    ROOT/object_multilabel/data/{split}_ratio_{1,2,3}.ids   pickled *set* of indices
    ROOT/object_multilabel/data/object_id.map   {id2object, object2id}

``ROOT`` may be the ``wang2019`` folder, its parent (a data root), or the task folder itself. All files
are Python-2 pickles read with :mod:`debiaskit.data.unpickle` (only ``set`` allowed, latin1). The loaders
return label arrays only; image datasets can be built on top of them (file names are returned).
Gender coding everywhere: 0 = man, 1 = woman.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from debiaskit.data.label_table import LabelTable
from debiaskit.data.unpickle import restricted_load
from debiaskit.errors import DebiaskitError

__all__ = [
    "GENDER_NAMES",
    "load_imsitu_labels",
    "load_coco_labels",
    "load_ratio_ids",
    "imsitu_verb_names",
    "coco_object_names",
    "imsitu_label_table",
    "coco_label_table",
]

GENDER_NAMES = ["man", "woman"]
_TASK_DIR = {"imsitu": "verb_classification", "coco": "object_multilabel"}


def _task_dir(root: str | os.PathLike, task: str) -> Path:
    root = Path(root)
    sub = _TASK_DIR[task]
    for cand in (root / "wang2019" / sub / "data", root / sub / "data", root / "data", root):
        if (cand / ("verb_id.map" if task == "imsitu" else "object_id.map")).is_file() or any(
            (cand / f"{s}.data").is_file() for s in ("train", "val", "test")
        ):
            if cand == root / "data" or cand == root:
                # make sure a bare folder really is this task's folder
                if task == "imsitu" and (cand / "object_id.map").is_file():
                    continue
                if task == "coco" and (cand / "verb_id.map").is_file():
                    continue
            return cand
    raise DebiaskitError(
        f"no Wang et al. 2019 {task} label files under {root} "
        f"(expected {sub}/data/{{train,val,test}}.data, e.g. in a 'wang2019' folder)"
    )


def _split_file(root: str | os.PathLike, task: str, split: str) -> Path:
    if split not in ("train", "val", "test"):
        raise DebiaskitError(f"unknown split {split!r}; valid: train, val, test")
    p = _task_dir(root, task) / f"{split}.data"
    if not p.is_file():
        extra = " (the COCO train split of Wang et al. is not publicly available)" if task == "coco" else ""
        raise DebiaskitError(f"{task} split {split!r} not found: {p}{extra}")
    return p


def _records(path: Path, keys: tuple[str, ...]) -> list[dict[str, Any]]:
    recs = restricted_load(path)
    if not isinstance(recs, list) or (recs and not isinstance(recs[0], dict)):
        raise DebiaskitError(f"{path}: expected a list of dicts, got {type(recs).__name__}")
    if recs:
        missing = [k for k in keys if k not in recs[0]]
        if missing:
            raise DebiaskitError(f"{path}: records lack key(s) {', '.join(missing)}")
    return recs


def load_imsitu_labels(root: str | os.PathLike, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """imSitu verbs, gender and image names of one split.

    Returns ``(verbs (N,) int64 in [0, 211), gender (N,) int64 0 man / 1 woman, image_names)``.
    """
    path = _split_file(root, "imsitu", split)
    recs = _records(path, ("image_name", "verb", "gender"))
    verbs = np.fromiter((r["verb"] for r in recs), np.int64, len(recs))
    gender = np.fromiter((r["gender"] for r in recs), np.int64, len(recs))
    if len(recs) and (gender.min() < 0 or gender.max() > 1):
        raise DebiaskitError(f"{path}: gender values must be 0 or 1")
    return verbs, gender, [str(r["image_name"]) for r in recs]


def load_coco_labels(root: str | os.PathLike, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """COCO objects (79-d multi-hot, COCO's 80 minus person), gender and file names of one split.

    Returns ``(objects (N, 79) uint8, gender (N,) int64 0 man / 1 woman, file_names)``; the pickles store
    gender as a ``[man, woman]`` one-hot pair.
    """
    path = _split_file(root, "coco", split)
    recs = _records(path, ("file_name", "objects", "gender"))
    widths = {len(r["objects"]) for r in recs}
    if len(widths) > 1:
        raise DebiaskitError(f"{path}: object vectors of inconsistent widths {sorted(widths)}")
    objects = np.asarray([r["objects"] for r in recs], dtype=np.uint8).reshape(len(recs), -1)
    gpair = np.asarray([r["gender"] for r in recs], dtype=np.int64).reshape(len(recs), -1)
    if gpair.shape[1] != 2 or (len(recs) and not (gpair.sum(1) == 1).all()):
        raise DebiaskitError(f"{path}: gender must be a [man, woman] one-hot pair per image")
    return objects, gpair.argmax(1).astype(np.int64), [str(r["file_name"]) for r in recs]


def load_ratio_ids(root: str | os.PathLike, task: str, split: str, alpha: int) -> np.ndarray:
    """The shipped α-balanced index list ``{split}_ratio_{alpha}.ids`` of ``task`` (``imsitu``/``coco``).

    Returns sorted unique int64 indices into the split's ``.data`` list.
    """
    if task not in _TASK_DIR:
        raise DebiaskitError(f"unknown task {task!r}; valid: {', '.join(_TASK_DIR)}")
    p = _task_dir(root, task) / f"{split}_ratio_{int(alpha)}.ids"
    if not p.is_file():
        raise DebiaskitError(f"shipped α-split not found: {p}")
    ids = restricted_load(p)
    if not isinstance(ids, (list, set)):
        raise DebiaskitError(f"{p}: expected a list or set of indices, got {type(ids).__name__}")
    return np.unique(np.fromiter(ids, np.int64, len(ids)))


def _id_map(root: str | os.PathLike, task: str) -> list[str]:
    fname, key = ("verb_id.map", "id2verb") if task == "imsitu" else ("object_id.map", "id2object")
    p = _task_dir(root, task) / fname
    m = restricted_load(p)
    if not isinstance(m, dict) or key not in m:
        raise DebiaskitError(f"{p}: expected a dict with key {key!r}")
    ids = m[key]
    return [str(ids[i]) for i in range(len(ids))]


def imsitu_verb_names(root: str | os.PathLike) -> list[str]:
    """The 211 imSitu verb names, indexed by verb id."""
    return _id_map(root, "imsitu")


def coco_object_names(root: str | os.PathLike) -> list[str]:
    """The 79 COCO object names, indexed by column of the multi-hot vector."""
    return _id_map(root, "coco")


def imsitu_label_table(root: str | os.PathLike, split: str) -> LabelTable:
    """imSitu split as a :class:`LabelTable` (single-label, 211 verbs, protected = gender)."""
    verbs, gender, names = load_imsitu_labels(root, split)
    return LabelTable(labels=verbs, protected=gender, label_names=imsitu_verb_names(root),
                      protected_names=list(GENDER_NAMES), multilabel=False, name="imsitu", split=split,
                      ids=names, info={"source": str(_split_file(root, "imsitu", split))})


def coco_label_table(root: str | os.PathLike, split: str) -> LabelTable:
    """COCO gender split as a :class:`LabelTable` (79-d multi-hot, protected = gender)."""
    objects, gender, names = load_coco_labels(root, split)
    return LabelTable(labels=objects, protected=gender, label_names=coco_object_names(root),
                      protected_names=list(GENDER_NAMES), multilabel=True, name="coco_gender", split=split,
                      ids=names, info={"source": str(_split_file(root, "coco", split))})
