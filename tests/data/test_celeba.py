"""CelebA (torchvision layout) on a tiny fixture with real-format annotation files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from debiaskit.data.attribute_labels import CELEBA_ATTRIBUTES
from debiaskit.data.registry import get_splits
from debiaskit.errors import ChecksumError, DataMissingError, DebiaskitError

pytestmark = pytest.mark.usefixtures("own_cache")  # each test gets its own empty image cache

N = 12
PARTITION = [0] * 6 + [1] * 3 + [2] * 3


@pytest.fixture
def celeba_root(tmp_path, img):
    root = tmp_path / "data" / "celeba"
    rng = np.random.default_rng(0)
    attrs = rng.choice([-1, 1], size=(N, 40))
    blond, male = CELEBA_ATTRIBUTES.index("Blond_Hair"), CELEBA_ATTRIBUTES.index("Male")
    # train: blond mostly female, non-blond mostly male
    attrs[:6, blond] = [1, 1, 1, -1, -1, -1]
    attrs[:6, male] = [-1, -1, 1, 1, 1, -1]
    names = [f"{i + 1:06d}.jpg" for i in range(N)]
    for i, n in enumerate(names):
        img(root / "img_align_celeba" / n, seed=i, size=(18, 22))
    lines = [str(N), " ".join(CELEBA_ATTRIBUTES) + " "]
    lines += [n + " " + " ".join(f"{v:2d}" for v in row) for n, row in zip(names, attrs)]
    (root / "list_attr_celeba.txt").write_text("\r\n".join(lines) + "\r\n")
    (root / "list_eval_partition.txt").write_text("".join(f"{n} {p}\n" for n, p in zip(names, PARTITION)))
    return root, attrs


def test_official_partition_target_and_protected(celeba_root):
    root, attrs = celeba_root
    s = get_splits("celeba", data_dir=str(root.parent), resolution=(11, 9), progress=False, verify_annotations=False)
    assert [len(s[k]) for k in ("train", "val", "test")] == [6, 3, 3]
    tr = s["train"]
    assert tuple(tr.images.shape) == (6, 3, 11, 9)
    blond, male = CELEBA_ATTRIBUTES.index("Blond_Hair"), CELEBA_ATTRIBUTES.index("Male")
    assert tr.targets.tolist() == (attrs[:6, blond] > 0).astype(int).tolist()
    assert tr.bias.tolist() == (attrs[:6, male] > 0).astype(int).tolist()
    assert s["test"].targets.tolist() == (attrs[9:, blond] > 0).astype(int).tolist()
    # majority protected value per target class in train: non-blond -> male, blond -> female
    assert tr.aligned_cells.tolist() == [[False, True], [True, False]]
    assert torch.equal(s["val"].aligned_cells, tr.aligned_cells)
    assert torch.equal(tr.meta["attrs"], torch.as_tensor((attrs[:6] > 0).astype(np.uint8)))
    assert tr.info["attr_names"] == list(CELEBA_ATTRIBUTES)


def test_any_target_and_protected(celeba_root):
    root, attrs = celeba_root
    s = get_splits("celeba", data_dir=str(root), verify_annotations=False, target="Smiling", protected="Young",
                   resolution=8, progress=False)
    sm, yo = CELEBA_ATTRIBUTES.index("Smiling"), CELEBA_ATTRIBUTES.index("Young")
    assert s["val"].targets.tolist() == (attrs[6:9, sm] > 0).astype(int).tolist()
    assert s["val"].bias.tolist() == (attrs[6:9, yo] > 0).astype(int).tolist()
    assert s["train"].bias_names == ["not Young", "Young"]


def test_limit(celeba_root):
    root, _ = celeba_root
    s = get_splits("celeba", data_dir=str(root), verify_annotations=False, resolution=8, progress=False, limit=2)
    assert [len(s[k]) for k in ("train", "val", "test")] == [2, 2, 2]


def test_unknown_attribute_lists_valid_ones(celeba_root):
    root, _ = celeba_root
    with pytest.raises(DebiaskitError, match=r"unknown target attribute 'Blonde_Hair'.*Blond_Hair.*Wavy_Hair"):
        get_splits("celeba", data_dir=str(root), target="Blonde_Hair")
    with pytest.raises(DebiaskitError, match=r"unknown protected attribute 'Gender'.*valid: 5_o_Clock_Shadow"):
        get_splits("celeba", data_dir=str(root), protected="Gender")
    with pytest.raises(DebiaskitError, match="both 'Male'"):
        get_splits("celeba", data_dir=str(root), target="Male")


def test_missing_files_named(celeba_root):
    root, _ = celeba_root
    (root / "img_align_celeba" / "000004.jpg").unlink()
    with pytest.raises(DataMissingError, match=r"000004\.jpg"):
        get_splits("celeba", data_dir=str(root), resolution=8, progress=False, verify_annotations=False)
    (root / "list_eval_partition.txt").unlink()
    with pytest.raises(DataMissingError, match=r"missing list_eval_partition\.txt in .*celeba"):
        get_splits("celeba", data_dir=str(root.parent), resolution=8)


def test_tiny_end_to_end_training(celeba_root, train_tiny):
    root, _ = celeba_root
    s = get_splits("celeba", data_dir=str(root), verify_annotations=False, resolution=16, progress=False)
    first, last = train_tiny(s["train"], "cnn64", width=8)
    assert last < 0.5 * first


def test_real_annotation_files_official_partition(shared_data, tmp_path, img):
    """The real list_attr_celeba.txt / list_eval_partition.txt with images for the first 2 of each split."""
    root = tmp_path / "celeba"
    root.mkdir()
    for f in ("list_attr_celeba.txt", "list_eval_partition.txt"):
        (root / f).symlink_to(shared_data / "celeba" / f)
    for i in (1, 2, 162771, 162772, 182638, 182639):
        img(root / "img_align_celeba" / f"{i:06d}.jpg", seed=i)
    s = get_splits("celeba", data_dir=str(root), limit=2, resolution=8, progress=False)
    assert [len(s[k]) for k in ("train", "val", "test")] == [2, 2, 2]
    # 000001.jpg: Blond_Hair -1, Male -1; 000002.jpg: Blond_Hair -1, Male -1 (first rows of the canonical file)
    assert s["train"].targets.tolist() == [0, 0] and s["train"].bias.tolist() == [0, 0]
    assert s["train"].meta["attrs"].shape == (2, 40)


def test_annotation_checksum(celeba_root):
    root, _ = celeba_root
    with pytest.raises(ChecksumError, match=r"list_attr_celeba\.txt"):
        get_splits("celeba", data_dir=str(root), resolution=8, progress=False)
