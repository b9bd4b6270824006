"""celeba64_mini: real CelebA 64×64 file, deterministic split, labels and error messages."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from debiaskit.data.celeba64_mini import build_celeba64_mini
from debiaskit.errors import DebiaskitError


def test_splits_labels_and_meta(shared_data):
    s = build_celeba64_mini(target="Smiling", protected="Male", data_dir=shared_data)
    assert [len(s[k]) for k in ("train", "val", "test")] == [2400, 800, 800]
    rows = torch.cat([s[k].meta["row"] for k in ("train", "val", "test")])
    assert sorted(rows.tolist()) == list(range(4000))  # disjoint and complete
    tr = s["train"]
    assert tr.images.dtype == torch.uint8 and tr.image_shape == (3, 64, 64)
    names = tr.info["attr_names"]
    raw = np.load(shared_data / "celeba" / "celeba_testcrops_64x64_first4000.npz")
    r = tr.meta["row"].numpy()
    assert np.array_equal(tr.meta["attrs"].numpy(), (raw["attrs"][r] > 0).astype(np.uint8))
    assert np.array_equal(tr.targets.numpy(), (raw["attrs"][r, names.index("Smiling")] > 0))
    assert np.array_equal(tr.bias.numpy(), (raw["attrs"][r, names.index("Male")] > 0))
    assert np.array_equal(tr.images[5].permute(1, 2, 0).numpy(), raw["images"][r[5]])
    # aligned cell = majority protected value per target class in train
    c = tr.group_counts()
    for y in range(2):
        assert bool(tr.aligned_cells[y, int(c[y, 1] >= c[y, 0])])
    # same split regardless of target; different split_seed → different split
    s2 = build_celeba64_mini(target="Young", data_dir=shared_data)
    assert torch.equal(s2["val"].meta["row"], s["val"].meta["row"])
    s3 = build_celeba64_mini(target="Young", data_dir=shared_data, split_seed=1)
    assert not torch.equal(s3["val"].meta["row"], s["val"].meta["row"])


def test_registered(shared_data):
    from debiaskit.data.registry import DATASETS

    import debiaskit.data.celeba64_mini  # noqa: F401

    assert "celeba64_mini" in DATASETS


def test_errors(tmp_path, shared_data):
    with pytest.raises(DebiaskitError, match="celeba_testcrops_64x64_first4000.npz"):
        build_celeba64_mini(data_dir=tmp_path)
    with pytest.raises(DebiaskitError, match="unknown target attribute 'Smile'"):
        build_celeba64_mini(target="Smile", data_dir=shared_data)
    (tmp_path / "celeba").mkdir()
    (tmp_path / "celeba" / "celeba_testcrops_64x64_first4000.npz").write_bytes(b"not the file")
    with pytest.raises(DebiaskitError, match="checksum mismatch"):
        build_celeba64_mini(data_dir=tmp_path)


def test_size_option(shared_data):
    s = build_celeba64_mini(target="Smiling", data_dir=shared_data, size=32)
    assert s["test"].image_shape == (3, 32, 32) and s["test"].images.dtype == torch.uint8
    full = build_celeba64_mini(target="Smiling", data_dir=shared_data)
    ref = full["test"].images[:4].float().reshape(4, 3, 32, 2, 32, 2).mean((3, 5)).round()
    assert torch.allclose(s["test"].images[:4].float(), ref, atol=1.0)
    with pytest.raises(DebiaskitError, match="size"):
        build_celeba64_mini(data_dir=shared_data, size=100)
