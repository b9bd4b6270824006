"""Generic loaders for users' own data: image_folder and csv."""

from __future__ import annotations

import pytest
import torch

from debiaskit.data.registry import get_splits
from debiaskit.errors import DataMissingError, DebiaskitError

pytestmark = pytest.mark.usefixtures("own_cache")  # each test gets its own empty image cache


def _tree(root, img, layout):
    """layout: {relative dir: number of images}."""
    k = 0
    for d, n in layout.items():
        for _ in range(n):
            img(root / d / f"f{k}.png", seed=k, size=(9, 7))
            k += 1


def test_image_folder_bias_subfolders_seeded_split(tmp_path, img):
    root = tmp_path / "mine"
    _tree(root, img, {"cat/indoor": 6, "cat/outdoor": 2, "dog/indoor": 1, "dog/outdoor": 11})
    kw = dict(data_dir=str(root), resolution=6, progress=False, val_fraction=0.2, test_fraction=0.2)
    s = get_splits("image_folder", seed=3, **kw)
    assert [len(s[k]) for k in ("train", "val", "test")] == [12, 4, 4]
    tr = s["train"]
    assert tr.class_names == ["cat", "dog"] and tr.bias_names == ["indoor", "outdoor"]
    total = sum(s[k].group_counts() for k in ("train", "val", "test"))
    assert total.tolist() == [[6, 2], [1, 11]]
    # aligned = majority bias per class in train
    counts = tr.group_counts()
    assert tr.aligned_cells.tolist() == [[bool(counts[c].argmax() == j) for j in range(2)] for c in range(2)]
    # same seed, same split; another seed, another split
    again = get_splits("image_folder", seed=3, **kw)
    assert torch.equal(again["val"].images, s["val"].images) and again.fingerprint == s.fingerprint
    other = get_splits("image_folder", seed=4, **kw)
    assert other.fingerprint != s.fingerprint


def test_image_folder_split_folders_csv_bias_and_none(tmp_path, img):
    root = tmp_path / "mine"
    _tree(root, img, {"train/a": 3, "train/b": 2, "test/a": 1, "test/b": 1})
    s = get_splits("image_folder", data_dir=str(root), bias_from="none", resolution=5, progress=False)
    assert sorted(s) == ["test", "train"] and len(s["train"]) == 5 and s["train"].num_bias == 1
    assert s["train"].aligned_cells.tolist() == [[True], [True]]
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))
    csv = tmp_path / "bias.csv"
    csv.write_text("path,bias\n" + "".join(f"{f},{'red' if i % 2 else 'blue'}\n" for i, f in enumerate(files)))
    s = get_splits("image_folder", data_dir=str(root), bias_from="csv", bias_csv=str(csv), resolution=5, progress=False)
    assert s["train"].bias_names == ["blue", "red"] and s["train"].num_bias == 2
    assert s["train"].bias.tolist() == [0, 1, 0, 1, 0]  # test/... sort before train/... in the csv
    csv.write_text("path,bias\n" + "".join(f"{f},x\n" for f in files[1:]))
    with pytest.raises(DebiaskitError, match=f"1 image.*no row.*{files[0]}"):
        get_splits("image_folder", data_dir=str(root), bias_from="csv", bias_csv=str(csv), resolution=5)


@pytest.mark.parametrize(
    "layout, message",
    [
        ({"train/a/x": 1, "train/b/x": 1, "val/c/x": 1}, r"class folder\(s\) c in val/ do not exist in train/"),
        ({"a/x": 2, "b": 1, "b/y": 1}, r"class folder b mixes image files"),
        ({"a/x": 2, "b": 2}, r"class folder b has no bias sub-folders"),
        ({"train/a/x": 1, "extra/a/x": 1}, r"mixes split folders \(train\) with other folders \(extra\)"),
        ({"a": 2}, r"class folder a has no bias sub-folders"),
    ],
)
def test_image_folder_inconsistent_trees(tmp_path, img, layout, message):
    root = tmp_path / "bad"
    _tree(root, img, layout)
    with pytest.raises(DebiaskitError, match=message):
        get_splits("image_folder", data_dir=str(root), resolution=4, progress=False)


def test_image_folder_stray_files_and_missing_root(tmp_path, img):
    root = tmp_path / "bad"
    _tree(root, img, {"a/x": 1, "": 1})
    with pytest.raises(DebiaskitError, match=r"image files directly in .*bad \(f1\.png\)"):
        get_splits("image_folder", data_dir=str(root), resolution=4)
    with pytest.raises(DataMissingError, match="not a folder"):
        get_splits("image_folder", data_dir=str(tmp_path / "none"))


def test_csv_with_split_column_and_string_labels(tmp_path, img):
    rows = [("im/a.png", "cow", "grass", "train"), ("im/b.png", "camel", "sand", "train"),
            ("im/c.png", "cow", "sand", "valid"), ("im/d.png", "camel", "sand", "test"),
            ("im/e.png", "cow", "grass", "0")]
    for i, (p, *_r) in enumerate(rows):
        img(tmp_path / p, seed=i)
    csv = tmp_path / "data.csv"
    csv.write_text("path,target,bias,split\n" + "".join(",".join(r) + "\n" for r in rows))
    s = get_splits("csv", path=str(csv), resolution=4, progress=False)
    assert [len(s[k]) for k in ("train", "val", "test")] == [3, 1, 1]
    rel = get_splits("csv", path="data.csv", data_dir=str(tmp_path), resolution=4, progress=False)
    assert rel.fingerprint == s.fingerprint and rel["train"].info["cache_hit"]
    tr = s["train"]
    assert tr.class_names == ["camel", "cow"] and tr.bias_names == ["grass", "sand"]
    assert tr.targets.tolist() == [1, 0, 1] and tr.bias.tolist() == [0, 1, 0]
    assert tr.aligned_cells.tolist() == [[False, True], [True, False]]
    assert s["val"].targets.tolist() == [1] and s["val"].bias.tolist() == [1]


def test_csv_integer_labels_seeded_split_and_errors(tmp_path, img):
    lines = []
    for i in range(10):
        img(tmp_path / "x" / f"{i}.jpg", seed=i)
        lines.append(f"{i}.jpg,{i % 3},{int(i < 5)}")
    csv = tmp_path / "x" / "d.csv"
    csv.write_text("path,target,bias\n" + "\n".join(lines) + "\n")
    s = get_splits("csv", path=str(csv), resolution=4, progress=False, val_fraction=0.2, test_fraction=0.3, seed=1)
    assert [len(s[k]) for k in ("train", "val", "test")] == [5, 2, 3]
    assert s["train"].num_classes == 3 and s["train"].class_names == ["0", "1", "2"]
    all_t = torch.cat([s[k].targets for k in ("train", "val", "test")])
    assert sorted(all_t.tolist()) == sorted(i % 3 for i in range(10))
    # missing image named; bad split value named; missing column named
    csv.write_text("path,target,bias\n" + "\n".join(lines + ["gone.jpg,0,0"]) + "\n")
    with pytest.raises(DataMissingError, match=r"gone\.jpg"):
        get_splits("csv", path=str(csv), resolution=4)
    csv.write_text("path,target,bias,split\n0.jpg,0,0,training\n")
    with pytest.raises(DebiaskitError, match="unknown split value.*training"):
        get_splits("csv", path=str(csv), resolution=4)
    csv.write_text("path,label,bias\n0.jpg,0,0\n")
    with pytest.raises(DebiaskitError, match="lacks column.*target"):
        get_splits("csv", path=str(csv), resolution=4)


def test_tiny_end_to_end_training(tmp_path, img, train_tiny):
    root = tmp_path / "mine"
    _tree(root, img, {"cat/indoor": 4, "dog/outdoor": 4, "dog/indoor": 1})
    s = get_splits("image_folder", data_dir=str(root), resolution=16, progress=False, val_fraction=0, test_fraction=0)
    assert len(s["train"]) == 9 and sorted(s) == ["train"]
    first, last = train_tiny(s["train"], "cnn64", width=8)
    assert last < 0.5 * first
