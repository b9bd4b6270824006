"""The corrupted_cifar10 builder: LfF assignment counts, splits, info/transforms, cache reuse and invalidation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from debiaskit.data.augment import make_batch_transform
from debiaskit.data.corruptions import TYPE0, TYPE1
from debiaskit.data.registry import get_splits, list_datasets
from debiaskit.errors import DataMissingError, DebiaskitError

# 20 images per class, ratio 0.1 (rho = 0.9): cumulative quotas 18, 18.22, 18.44, 18.67, 18.89, 19.11, 19.33,
# 19.56, 19.78, 20 rounded half up -> blocks, in bias order, starting from the class's own index for the
# aligned block. For class 0: bias 0 x18, then the conflicting blocks at rounded cumulative counts.
HAND_CLASS0 = [18, 0, 0, 1, 0, 0, 0, 1, 0, 0]


def _build(root, **kw):
    kw.setdefault("type", 1)
    kw.setdefault("progress", False)
    return get_splits("corrupted_cifar10", data_dir=str(root), **kw)


def test_registered():
    assert "corrupted_cifar10" in list_datasets()


def test_lff_assignment_counts_and_order(tmp_path, isolated_cache, make_jpeg_tree):
    make_jpeg_tree(tmp_path)
    s = _build(tmp_path, ratio=0.1, val_fraction=0.0)
    assert list(s) == ["train", "test"]
    tr = s["train"]
    assert len(tr) == 200 and tr.images.shape == (200, 3, 32, 32) and tr.images.dtype == torch.uint8
    counts = tr.group_counts().numpy()
    np.testing.assert_array_equal(counts[0], HAND_CLASS0)
    assert counts.trace() == 10 * 18 and counts.sum() == 200
    # deterministic by order: within class 0 the samples get bias 0 x18, then 3, then 7
    b0 = tr.bias[tr.targets == 0].numpy()
    np.testing.assert_array_equal(b0, np.repeat(np.arange(10), HAND_CLASS0))
    # test: 10 per class, uniform (rho = 0.1) -> exactly one image per (class, corruption) cell
    te = s["test"]
    np.testing.assert_array_equal(te.group_counts().numpy(), np.ones((10, 10), int))
    assert te.conflict_ratio == pytest.approx(0.9)
    assert tr.bias_names == list(TYPE1) and tr.class_names[0] == "airplane"


def test_images_carry_their_corruption(tmp_path, isolated_cache, make_jpeg_tree):
    make_jpeg_tree(tmp_path)
    s = _build(tmp_path, ratio=0.1, val_fraction=0.0, severity=5)
    from debiaskit.data.cifar10_source import load_cifar10

    clean = torch.from_numpy(load_cifar10(tmp_path, progress=False).train_images).permute(0, 3, 1, 2)
    tr = s["train"]
    diff = (tr.images.float() - clean.float()).abs().mean(dim=(1, 2, 3))
    original = tr.bias == TYPE1.index("Original")
    assert original.any() and torch.all(diff[original] == 0)
    assert torch.all(diff[~original] > 0.5)


def test_biased_val_split_keeps_the_ratio(tmp_path, isolated_cache, make_jpeg_tree):
    make_jpeg_tree(tmp_path, per_class_train=40)
    s = _build(tmp_path, ratio=0.1, val_fraction=0.25)
    tr, va = s["train"], s["val"]
    assert len(tr) + len(va) == 400
    # 40 per class, rho 0.9: 36 aligned + 4 conflicting per class -> 40 conflicting, 360 aligned in all
    assert int(va.conflicting.sum()) == 10 and int(va.aligned.sum()) == 90
    assert va.conflict_ratio == pytest.approx(0.1) and tr.conflict_ratio == pytest.approx(0.1)


def test_info_and_batch_transform(tmp_path, isolated_cache, make_jpeg_tree):
    make_jpeg_tree(tmp_path)
    s = _build(tmp_path, seed=3)
    info = s["train"].info
    assert info["train_augment"] == {"crop": 32, "padding": 4, "flip": True}
    assert info["normalize"] == {"mean": [0.4914, 0.4822, 0.4465], "std": [0.2023, 0.1994, 0.2010]}
    assert info["cifar_source"] == "jpeg_tar" and info["cifar_lossy"] is True
    assert info["severity"] == 5 and info["lff_severity_name"] == "severity4"
    assert info["corruptions"] == list(TYPE1) and info["seed"] == 3
    x = s["train"].images[:16]
    out = make_batch_transform(info, train=True)(x, torch.Generator().manual_seed(0))
    assert out.shape == (16, 3, 32, 32) and out.dtype == torch.float32
    ev = make_batch_transform(info, train=False)(x)
    mean = torch.tensor(info["normalize"]["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(info["normalize"]["std"]).view(1, 3, 1, 1)
    torch.testing.assert_close(ev, (x.float() / 255 - mean) / std)


def test_cache_reuse_and_invalidation(tmp_path, isolated_cache, make_jpeg_tree):
    make_jpeg_tree(tmp_path, seed=0)
    a = _build(tmp_path)
    assert a["train"].info["cache"] == "miss"
    files = list(isolated_cache.rglob("*.npz"))
    assert len(files) == 1
    b = _build(tmp_path)
    assert b["train"].info["cache"] == "hit"
    for k in a:
        assert torch.equal(a[k].images, b[k].images) and torch.equal(a[k].bias, b[k].bias)
        assert a[k].fingerprint == b[k].fingerprint
    # another option -> another cache entry
    assert _build(tmp_path, seed=1)["train"].info["cache"] == "miss"
    # a changed source (new tar) invalidates it
    make_jpeg_tree(tmp_path, seed=5)
    c = _build(tmp_path)
    assert c["train"].info["cache"] == "miss"
    assert not torch.equal(c["train"].images, a["train"].images)
    # use_cache=False never writes
    n = len(list(isolated_cache.rglob("*.npz")))
    assert _build(tmp_path, ratio=0.2, use_cache=False)["train"].info["cache"] == "off"
    assert len(list(isolated_cache.rglob("*.npz"))) == n


def test_deterministic_without_cache(tmp_path, isolated_cache, make_jpeg_tree):
    make_jpeg_tree(tmp_path)
    a = _build(tmp_path, use_cache=False, seed=4)
    b = _build(tmp_path, use_cache=False, seed=4)
    c = _build(tmp_path, use_cache=False, seed=5)
    assert a.fingerprint == b.fingerprint != c.fingerprint


def test_type0_needs_frost_textures(tmp_path, isolated_cache, make_jpeg_tree, frost_textures):
    root = frost_textures.parent  # tmp_path/data with lff/ inside
    make_jpeg_tree(root)
    s = _build(root, type=0)
    assert s["train"].bias_names == list(TYPE0) and s["train"].info["frost_dir"] == str(frost_textures)
    other = tmp_path / "other"
    make_jpeg_tree(other)
    with pytest.raises(DataMissingError, match="frost textures missing in .*lff.*frost1.png"):
        _build(other, type=0)
    # an explicit frost_dir works for any data dir
    assert len(_build(other, type=0, frost_dir=str(frost_textures))["train"]) == 180


def test_bad_options(tmp_path, isolated_cache, make_jpeg_tree):
    make_jpeg_tree(tmp_path)
    for kw, msg in [({"type": 2}, "type must be 0 or 1"), ({"ratio": 0.0}, "ratio"), ({"ratio": 1.0}, "ratio"),
                    ({"severity": 0}, "severity"), ({"severity": 6}, "severity"), ({"val_fraction": 1.0}, "val_fraction"),
                    ({"source": "ftp"}, "unknown CIFAR-10 source"), ({"colour": 1}, "no option")]:
        with pytest.raises(DebiaskitError, match=msg):
            _build(tmp_path, **kw)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataMissingError, match="cifar-10-batches-py"):
        _build(tmp_path / "empty")


def test_shared_lossless5k_build(shared_data, isolated_cache):
    s = get_splits("corrupted_cifar10", type=1, data_dir=str(shared_data), source="lossless5k", progress=False)
    assert [len(s[k]) for k in ("train", "val", "test")] == [3600, 400, 1000]
    assert s["train"].info["cifar_source"] == "lossless5k" and s["train"].info["cifar_lossy"] is False
    assert s["val"].conflict_ratio == pytest.approx(0.01)
    assert s["test"].conflict_ratio == pytest.approx(0.9)
    again = get_splits("corrupted_cifar10", type=1, data_dir=str(shared_data), source="lossless5k", progress=False)
    assert again["train"].info["cache"] == "hit" and again.fingerprint == s.fingerprint
