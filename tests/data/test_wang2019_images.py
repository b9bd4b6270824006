"""COCO / imSitu gender splits with images: tiny pickles in the authors' layout plus an image root."""

from __future__ import annotations

import pickle

import pytest
import torch

from debiaskit.data.registry import get_splits
from debiaskit.errors import DataMissingError, DebiaskitError

pytestmark = pytest.mark.usefixtures("own_cache")  # each test gets its own empty image cache


def _dump(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj, protocol=2))


@pytest.fixture
def coco(tmp_path, img):
    lab = tmp_path / "labels" / "wang2019" / "object_multilabel" / "data"
    objs = ["tie", "handbag", "oven"]
    _dump(lab / "object_id.map", {"id2object": dict(enumerate(objs)), "object2id": {o: i for i, o in enumerate(objs)}})
    recs = {
        # (objects, [man, woman]) per image; train is absent, as in the public release
        "val": [([1, 0, 0], [1, 0]), ([1, 1, 0], [1, 0]), ([0, 1, 0], [0, 1]), ([0, 1, 1], [0, 1]), ([1, 0, 1], [1, 0])],
        "test": [([0, 0, 1], [0, 1]), ([1, 0, 0], [1, 0])],
    }
    images = tmp_path / "coco"
    k = 0
    for split, rows in recs.items():
        data = []
        for o, g in rows:
            name = f"COCO_val2014_{k:012d}.jpg"
            img(images / "val2014" / name, seed=k)
            data.append({"file_name": name, "image_id": k, "objects": o, "gender": g})
            k += 1
        _dump(lab / f"{split}.data", data)
    return tmp_path / "labels", images, recs


def test_coco_multilabel_targets_and_majority_cells(coco):
    labels, images, recs = coco
    s = get_splits("coco_gender", data_dir=str(labels), image_root=str(images), resolution=8, progress=False)
    assert sorted(s) == ["test", "val"] and s["val"].info["absent_splits"] == ["train"]
    va = s["val"]
    assert va.multilabel and tuple(va.targets.shape) == (5, 3) and va.num_classes == 3
    assert va.targets.tolist() == [o for o, _ in recs["val"]]
    assert va.bias.tolist() == [0, 0, 1, 1, 0] and va.bias_names == ["man", "woman"]
    assert va.class_names == ["tie", "handbag", "oven"]
    # majority gender per object among val images (train absent): tie men 3/3, handbag women 2/3, oven tie -> man
    assert va.aligned_cells.tolist() == [[True, False], [False, True], [True, False]]
    assert tuple(s["test"].images.shape) == (2, 3, 8, 8)


def test_coco_errors(coco, tmp_path):
    labels, images, _ = coco
    with pytest.raises(DataMissingError, match="image_root"):
        get_splits("coco_gender", data_dir=str(labels))
    with pytest.raises(DataMissingError, match="balanced_ratio needs the train split"):
        get_splits("coco_gender", data_dir=str(labels), image_root=str(images), balanced_ratio=1)
    (images / "val2014" / "COCO_val2014_000000000003.jpg").unlink()
    with pytest.raises(DataMissingError, match=r"coco_gender/val: 1 of 5 .*COCO_val2014_000000000003\.jpg"):
        get_splits("coco_gender", data_dir=str(labels), image_root=str(images), resolution=8)


@pytest.fixture
def imsitu(tmp_path, img):
    lab = tmp_path / "wang2019" / "verb_classification" / "data"
    verbs = ["cooking", "driving"]
    _dump(lab / "verb_id.map", {"id2verb": dict(enumerate(verbs)), "verb2id": {v: i for i, v in enumerate(verbs)}})
    images = tmp_path / "imsitu" / "of500_images_resized"
    rows = {"train": [(0, 1), (0, 1), (0, 0), (1, 0), (1, 0)], "val": [(0, 0), (1, 1)], "test": [(1, 1)]}
    k = 0
    for split, rr in rows.items():
        data = []
        for v, g in rr:
            name = f"{verbs[v]}_{k}.jpg"
            img(images / name, seed=k)
            data.append({"image_name": name, "verb": v, "gender": g})
            k += 1
        _dump(lab / f"{split}.data", data)
    _dump(lab / "train_ratio_1.ids", [0, 2, 3])
    return tmp_path, images.parent, rows


def test_imsitu_single_label_and_balanced_ratio(imsitu):
    data_dir, image_root, rows = imsitu
    s = get_splits("imsitu_gender", data_dir=str(data_dir), image_root=str(image_root), resolution=8, progress=False)
    tr = s["train"]
    assert not tr.multilabel and tr.num_classes == 2 and len(tr) == 5
    assert tr.targets.tolist() == [0, 0, 0, 1, 1] and tr.bias.tolist() == [1, 1, 0, 0, 0]
    assert tr.aligned_cells.tolist() == [[False, True], [True, False]]
    assert tr.group_counts().tolist() == [[1, 2], [2, 0]]
    b = get_splits("imsitu_gender", data_dir=str(data_dir), image_root=str(image_root), resolution=8,
                   progress=False, balanced_ratio=1)
    assert b["train"].targets.tolist() == [0, 0, 1] and b["train"].bias.tolist() == [1, 0, 0]
    assert torch.equal(b["train"].images[1], tr.images[2])
    assert len(b["val"]) == 2  # val/test stay the original splits
    with pytest.raises(DebiaskitError, match="balanced_ratio must be 1, 2 or 3"):
        get_splits("imsitu_gender", data_dir=str(data_dir), image_root=str(image_root), balanced_ratio=4)


def test_tiny_end_to_end_multilabel_training(coco, train_tiny):
    labels, images, _ = coco
    s = get_splits("coco_gender", data_dir=str(labels), image_root=str(images), resolution=16, progress=False)
    first, last = train_tiny(s["val"], "cnn64", width=8)
    assert last < 0.5 * first
