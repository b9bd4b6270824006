"""Waterbirds (metadata.csv layout) on a tiny fixture."""

from __future__ import annotations

import pytest

from debiaskit.data.registry import get_splits
from debiaskit.errors import DataMissingError, DebiaskitError

pytestmark = pytest.mark.usefixtures("own_cache")  # each test gets its own empty image cache

ROWS = [  # img_filename, y, place, split
    ("001.Albatross/a1.jpg", 1, 1, 0), ("001.Albatross/a2.jpg", 1, 1, 0), ("001.Albatross/a3.jpg", 1, 0, 0),
    ("002.Sparrow/s1.jpg", 0, 0, 0), ("002.Sparrow/s2.jpg", 0, 0, 0),
    ("002.Sparrow/s3.jpg", 0, 1, 1), ("001.Albatross/a4.jpg", 1, 0, 1),
    ("002.Sparrow/s4.jpg", 0, 0, 2), ("001.Albatross/a5.jpg", 1, 1, 2), ("002.Sparrow/s5.jpg", 0, 1, 2),
]


@pytest.fixture
def wb_root(tmp_path, img):
    root = tmp_path / "data" / "waterbird_complete95_forest2water2"
    lines = ["img_id,img_filename,y,split,place,place_filename"]
    for i, (f, y, place, split) in enumerate(ROWS):
        img(root / f, seed=i, size=(20, 16))
        lines.append(f"{i + 1},{f},{y},{split},{place},/x/{i}.jpg")
    (root / "metadata.csv").write_text("\n".join(lines) + "\n")
    return root


def test_splits_and_labels(wb_root):
    s = get_splits("waterbirds", data_dir=str(wb_root.parent), resolution=12, progress=False)
    tr, va, te = s["train"], s["val"], s["test"]
    assert [len(tr), len(va), len(te)] == [5, 2, 3]
    assert tr.targets.tolist() == [1, 1, 1, 0, 0] and tr.bias.tolist() == [1, 1, 0, 0, 0]
    assert tr.group_counts().tolist() == [[2, 0], [1, 2]]
    assert tr.conflicting.sum() == 1 and te.conflicting.tolist() == [False, False, True]
    assert tuple(te.images.shape) == (3, 3, 12, 12) and tr.class_names == ["landbird", "waterbird"]


def test_missing_image_and_column(wb_root):
    (wb_root / "002.Sparrow" / "s2.jpg").unlink()
    with pytest.raises(DataMissingError, match=r"1 of 10 .*002\.Sparrow/s2\.jpg"):
        get_splits("waterbirds", data_dir=str(wb_root), resolution=8)
    (wb_root / "metadata.csv").write_text("img_filename,y,split\na.jpg,0,0\n")
    with pytest.raises(DebiaskitError, match="lacks column.*place"):
        get_splits("waterbirds", data_dir=str(wb_root), resolution=8)


def test_no_metadata(tmp_path):
    with pytest.raises(DataMissingError, match="metadata.csv"):
        get_splits("waterbirds", data_dir=str(tmp_path))


def test_tiny_end_to_end_training(wb_root, train_tiny):
    s = get_splits("waterbirds", data_dir=str(wb_root), resolution=32, progress=False)
    first, last = train_tiny(s["train"], "resnet20")
    assert last < 0.5 * first
