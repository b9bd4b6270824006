"""The memory-mapped image cache: decoding, reuse, invalidation, bad files."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import torch

from debiaskit.data.filecache import build_image_cache, decode_image
from debiaskit.errors import DataMissingError, DebiaskitError

pytestmark = pytest.mark.usefixtures("own_cache")  # each test gets its own empty image cache


@pytest.fixture
def files(tmp_path, img):
    out = []
    for i in range(5):
        ext = ".png" if i % 2 else ".jpg"
        out.append(img(tmp_path / "src" / f"im{i}{ext}", seed=i, size=(12 + i, 10)))
    return out


def test_build_shape_dtype_and_values(files):
    c = build_image_cache(files, resolution=8, progress=False)
    assert c.images.dtype == torch.uint8 and tuple(c.images.shape) == (5, 3, 8, 8)
    assert not c.hit and c.skipped == [] and c.kept.tolist() == [0, 1, 2, 3, 4]
    for i, f in enumerate(files):  # row i is file i, decoded by decode_image
        assert np.array_equal(c.images[i].numpy(), decode_image(f, size=(8, 8)))
    # the tensor shares memory with the .npy on disk
    on_disk = np.load(c.path, mmap_mode="r")
    assert on_disk.shape == (5, 3, 8, 8) and np.array_equal(on_disk, c.images.numpy())


def test_rectangular_resolution_grayscale_and_center_crop(files):
    c = build_image_cache(files, resolution=(6, 9), channels=1, crop="center", progress=False)
    assert tuple(c.images.shape) == (5, 1, 6, 9)


def test_center_crop_keeps_the_middle(tmp_path):
    from PIL import Image

    a = np.zeros((10, 30, 3), np.uint8)
    a[:, 10:20] = 255  # white middle third of a wide image
    p = tmp_path / "wide.png"
    Image.fromarray(a).save(p)
    crop = decode_image(p, size=(10, 10), crop="center")
    stretch = decode_image(p, size=(10, 10), crop="none")
    assert crop.min() == 255  # only the white middle is left
    assert stretch[:, :, 0].max() < 50 and stretch[:, :, 5].min() > 200


def test_second_build_hits_cache_and_change_invalidates(files, tmp_path, img):
    c1 = build_image_cache(files, resolution=8, progress=False)
    c2 = build_image_cache(files, resolution=8, progress=False)
    assert c2.hit and c2.path == c1.path and c2.digest == c1.digest
    assert torch.equal(c1.images, c2.images)
    # other options are other caches
    assert not build_image_cache(files, resolution=6, progress=False).hit
    # rewriting one source file (new content and mtime) invalidates the cache
    time.sleep(0.01)
    img(files[2], seed=99, size=(12 + 2, 10))
    os.utime(files[2], ns=(time.time_ns(), time.time_ns() + 10**9))
    c3 = build_image_cache(files, resolution=8, progress=False)
    assert not c3.hit and c3.path != c1.path
    assert not torch.equal(c3.images[2], c1.images[2]) and torch.equal(c3.images[0], c1.images[0])
    # a removed file too
    c4 = build_image_cache(files[:4], resolution=8, progress=False)
    assert not c4.hit and c4.images.shape[0] == 4


def test_writes_to_tensor_never_reach_the_file(files):
    c = build_image_cache(files, resolution=8, progress=False)
    before = np.load(c.path).copy()
    c.images[0].fill_(7)
    assert np.array_equal(np.load(c.path), before)
    assert torch.equal(build_image_cache(files, resolution=8, progress=False).images, torch.from_numpy(before))


def test_truncated_jpeg_fail_names_the_file(tmp_path, files, img, trunc):
    bad = trunc(img(tmp_path / "src" / "broken.jpg", seed=5, size=(64, 64)), 0.6)
    with pytest.raises(DebiaskitError, match="broken.jpg") as e:
        build_image_cache([*files, bad], resolution=8, progress=False)
    assert "on_error='skip'" in str(e.value)
    # nothing half-written is left in the cache folder
    cache = tmp_path / "cache" / "images"
    assert not [p for p in cache.iterdir() if p.suffix in (".tmp", ".npy")]


def test_truncated_jpeg_skip_records_it(tmp_path, files, img, trunc):
    bad = trunc(img(tmp_path / "src" / "broken.jpg", seed=5, size=(64, 64)), 0.6)
    order = [files[0], bad, *files[1:]]
    c = build_image_cache(order, resolution=8, on_error="skip", progress=False)
    assert c.images.shape[0] == 5 and c.kept.tolist() == [0, 2, 3, 4, 5]
    assert len(c.skipped) == 1 and c.skipped[0]["path"] == str(bad.absolute())
    assert "truncated" in c.skipped[0]["error"]
    again = build_image_cache(order, resolution=8, on_error="skip", progress=False)
    assert again.hit and again.skipped == c.skipped and again.kept.tolist() == c.kept.tolist()
    assert torch.equal(again.images, c.images)


def test_not_an_image_and_missing_file(tmp_path, files):
    junk = tmp_path / "src" / "notes.png"
    junk.write_text("not an image")
    with pytest.raises(DebiaskitError, match="notes.png"):
        build_image_cache([*files, junk], resolution=8, progress=False)
    with pytest.raises(DataMissingError, match="gone.jpg"):
        build_image_cache([*files, tmp_path / "gone.jpg"], resolution=8, progress=False)


def test_bad_options(files):
    with pytest.raises(DebiaskitError, match="on_error"):
        build_image_cache(files, resolution=8, on_error="ignore")
    with pytest.raises(DebiaskitError, match="resolution"):
        build_image_cache(files, resolution=(8,))
    with pytest.raises(DebiaskitError, match="crop"):
        build_image_cache(files, resolution=8, crop="random")
    with pytest.raises(DebiaskitError, match="no image files"):
        build_image_cache([], resolution=8)


def test_not_enough_disk_space_is_a_clear_error(files, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(1 << 30, 1 << 30, 1 << 20))
    with pytest.raises(DebiaskitError, match=r"needs 0\.00 GiB but only 0\.00 GiB are free.*smaller resolution"):
        build_image_cache(files, resolution=8, progress=False)
