"""BFFHQ on a tiny tree with the DisEnt release layout."""

from __future__ import annotations

import pytest
import torch

from debiaskit.data.registry import get_splits
from debiaskit.errors import DataMissingError, DebiaskitError

pytestmark = pytest.mark.usefixtures("own_cache")  # each test gets its own empty image cache


@pytest.fixture
def bffhq_root(tmp_path, img):
    root = tmp_path / "data" / "bffhq"
    k = 0
    # train: align/<class>/ (target == bias), conflict/<class>/ (target != bias)
    for t in (0, 1):
        for j in range(3):
            img(root / "0.5pct" / "align" / str(t) / f"{k}_{t}_{t}.png", seed=k); k += 1
    img(root / "0.5pct" / "conflict" / "0" / f"{k}_0_1.png", seed=k); k += 1
    img(root / "valid" / f"{k}_1_1.png", seed=k); k += 1
    img(root / "valid" / f"{k}_0_1.png", seed=k); k += 1
    for t, b in [(0, 0), (1, 1), (0, 1), (1, 0), (1, 0)]:
        img(root / "test" / f"{k}_{t}_{b}.jpg", seed=k); k += 1
    return root


def test_layout_labels_and_conflicting_test(bffhq_root):
    s = get_splits("bffhq", data_dir=str(bffhq_root.parent), resolution=16, progress=False)
    tr, va, te = s["train"], s["val"], s["test"]
    assert tuple(tr.images.shape) == (7, 3, 16, 16) and tr.images.dtype == torch.uint8
    assert tr.group_counts().tolist() == [[3, 1], [0, 3]]
    assert tr.conflicting.sum() == 1 and tr.info["folder_label_mismatch"] == 0
    assert len(va) == 2 and va.targets.tolist() == [1, 0] and va.bias.tolist() == [1, 1]
    # paper protocol: test keeps only target != bias
    assert len(te) == 3 and bool(te.conflicting.all()) and te.info["test_set"] == "conflicting"
    # CIFAR-10 statistics, as DisEnt (docs/methods_lff_disent.md detail 11)
    assert tr.info["normalize"]["mean"][0] == pytest.approx(0.4914)
    assert tr.info["train_augment"] == {"padding": 4, "flip": True}
    assert tr.class_names == ["young", "old"] and tr.num_classes == tr.num_bias == 2


def test_full_test_set_and_dataset_folder_itself(bffhq_root):
    s = get_splits("bffhq", data_dir=str(bffhq_root), resolution=8, progress=False, test_set="full")
    te = s["test"]
    assert len(te) == 5 and te.aligned.sum() == 2
    assert te.group_counts().tolist() == [[1, 1], [2, 1]]


def test_rebuild_hits_cache_and_same_fingerprint(bffhq_root):
    a = get_splits("bffhq", data_dir=str(bffhq_root), resolution=8, progress=False)
    b = get_splits("bffhq", data_dir=str(bffhq_root), resolution=8, progress=False)
    assert not a["train"].info["cache_hit"] and b["train"].info["cache_hit"]
    assert a.fingerprint == b.fingerprint
    assert torch.equal(a["test"].images, b["test"].images)


def test_missing_pct_lists_available(bffhq_root):
    with pytest.raises(DataMissingError, match=r"1pct.*0\.5pct"):
        get_splits("bffhq", data_dir=str(bffhq_root), pct="1pct", resolution=8, progress=False)


def test_missing_root_and_bad_names(bffhq_root, tmp_path, img):
    with pytest.raises(DataMissingError, match="valid/, test/"):
        get_splits("bffhq", data_dir=str(tmp_path / "nowhere"), resolution=8)
    img(bffhq_root / "valid" / "oops.png")
    with pytest.raises(DebiaskitError, match="oops.png"):
        get_splits("bffhq", data_dir=str(bffhq_root), resolution=8, progress=False)


def test_bad_test_set_option(bffhq_root):
    with pytest.raises(DebiaskitError, match="test_set"):
        get_splits("bffhq", data_dir=str(bffhq_root), test_set="aligned")


def test_truncated_image_skip_drops_its_labels(bffhq_root, img, trunc):
    bad = trunc(img(bffhq_root / "0.5pct" / "conflict" / "1" / "99_1_0.jpg", seed=3, size=(64, 64)), 0.6)
    with pytest.raises(DebiaskitError, match="99_1_0.jpg"):
        get_splits("bffhq", data_dir=str(bffhq_root), resolution=8, progress=False)
    s = get_splits("bffhq", data_dir=str(bffhq_root), resolution=8, progress=False, on_error="skip")
    tr = s["train"]
    assert len(tr) == 7 and tr.info["source_files"] == 8
    assert [d["path"] for d in tr.info["skipped"]] == [str(bad)]
    assert tr.group_counts().tolist() == [[3, 1], [0, 3]]


def test_tiny_end_to_end_training(bffhq_root, train_tiny):
    s = get_splits("bffhq", data_dir=str(bffhq_root), resolution=16, progress=False)
    first, last = train_tiny(s["train"], "cnn64", width=8)
    assert last < 0.5 * first
