"""CIFAR-10 source resolution: JPEG tar read in place, extracted tree, pickles (md5), archive, errors."""

from __future__ import annotations

import io
import pickle
import tarfile

import numpy as np
import pytest

from debiaskit.data import cifar10_source as S
from debiaskit.errors import ChecksumError, DataMissingError, DebiaskitError


def test_jpeg_tar_is_read_in_place_in_canonical_order(tmp_path, isolated_cache, make_jpeg_tree):
    ref = make_jpeg_tree(tmp_path)
    loc = S.locate_cifar10(tmp_path)
    assert loc.source == "jpeg_tar" and loc.lossy and loc.path.name == "cifar10_images.tar"
    a = S.read_cifar10(loc, progress=False)
    assert a.train_images.shape == (200, 32, 32, 3) and a.train_images.dtype == np.uint8
    np.testing.assert_array_equal(a.train_labels, ref["train_y"])  # canonical order from the CSV
    # JPEG (q95, 4:2:0) of random-colour images: close, and each decoded image is nearest to its own original
    assert np.abs(a.train_images.astype(float) - ref["train_x"]).mean() < 12
    dist = np.abs(a.train_images.reshape(200, 1, -1).astype(np.int16) - ref["train_x"].reshape(1, 200, -1)).mean(-1)
    np.testing.assert_array_equal(dist.argmin(1), np.arange(200))
    # test split: by class (label order) then file number
    np.testing.assert_array_equal(a.test_labels, np.repeat(np.arange(10), 10))
    dist = np.abs(a.test_images.reshape(100, 1, -1).astype(np.int16) - ref["test_x"].reshape(1, 100, -1)).mean(-1)
    np.testing.assert_array_equal(dist.argmin(1), np.arange(100))
    assert not list(tmp_path.rglob("*.jpg")), "nothing is extracted"


def test_extracted_tree_equals_tar(tmp_path, isolated_cache, make_jpeg_tree):
    make_jpeg_tree(tmp_path / "a", seed=3)
    make_jpeg_tree(tmp_path / "b", seed=3, as_tar=False)
    a = S.load_cifar10(tmp_path / "a", progress=False)
    loc_b = S.locate_cifar10(tmp_path / "b")
    assert loc_b.source == "jpeg_dir"
    b = S.read_cifar10(loc_b, progress=False)
    for k in ("train_images", "train_labels", "test_images", "test_labels"):
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k))


def test_pickles_are_md5_checked_and_read_bit_exact(tmp_path, isolated_cache, make_pickles):
    ref = make_pickles(tmp_path / "cifar10")
    loc = S.locate_cifar10(tmp_path)
    assert loc.source == "pickles" and not loc.lossy
    with pytest.raises(ChecksumError, match="data_batch_1.*md5"):
        S.read_cifar10(loc)  # fixture content is not the canonical release
    a = S.read_cifar10(loc, verify=False)
    np.testing.assert_array_equal(a.train_images, ref["train_x"])  # (R, G, B planes) -> HWC
    np.testing.assert_array_equal(a.train_labels, ref["train_y"])
    np.testing.assert_array_equal(a.test_images, ref["test_x"])
    np.testing.assert_array_equal(a.test_labels, ref["test_y"])


def test_pickles_take_precedence_over_jpeg(tmp_path, isolated_cache, make_jpeg_tree, make_pickles):
    make_jpeg_tree(tmp_path)
    make_pickles(tmp_path / "cifar10")
    assert S.locate_cifar10(tmp_path).source == "pickles"
    assert S.locate_cifar10(tmp_path, source="jpeg_tar").source == "jpeg_tar"


def test_release_archive_read_in_place(tmp_path, isolated_cache, make_pickles):
    ref = make_pickles(tmp_path, archive=True)
    loc = S.locate_cifar10(tmp_path)
    assert loc.source == "pickles_archive"
    with pytest.raises(ChecksumError, match="cifar-10-python.tar.gz"):
        S.read_cifar10(loc)
    a = S.read_cifar10(loc, verify=False)
    np.testing.assert_array_equal(a.train_images, ref["train_x"])


def test_malicious_pickle_is_refused(tmp_path, isolated_cache, make_pickles):
    make_pickles(tmp_path)

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, ("echo pwned",))

    (tmp_path / "cifar-10-batches-py" / "data_batch_1").write_bytes(pickle.dumps({"data": Evil()}, protocol=2))
    with pytest.raises(DebiaskitError, match="refusing to unpickle global (posix|os).system"):
        S.read_cifar10(S.locate_cifar10(tmp_path), verify=False)


def test_missing_everything_lists_files_and_places(tmp_path, isolated_cache):
    with pytest.raises(DataMissingError) as e:
        S.locate_cifar10(tmp_path)
    msg = str(e.value)
    for piece in ("cifar-10-batches-py", "data_batch_1", "test_batch", "cifar-10-python.tar.gz",
                  "yoongikim_cifar10_images.tar", "train_canonical_order.csv", f"{tmp_path}/cifar10/",
                  "DEBIASKIT_NO_DOWNLOAD", "lossless5k"):
        assert piece in msg
    with pytest.raises(DataMissingError, match="--data-dir"):
        S.locate_cifar10(None)
    with pytest.raises(DataMissingError, match="does not exist"):
        S.locate_cifar10(tmp_path / "nope")
    with pytest.raises(DataMissingError, match="cifar10_lossless_5k.npz"):
        S.locate_cifar10(tmp_path, source="lossless5k")
    with pytest.raises(DataMissingError, match="DEBIASKIT_NO_DOWNLOAD"):
        S.locate_cifar10(tmp_path, source="download")
    with pytest.raises(DebiaskitError, match="unknown CIFAR-10 source"):
        S.locate_cifar10(tmp_path, source="web")


def test_truncated_jpeg_is_reported_with_its_path(tmp_path, isolated_cache, make_jpeg_tree):
    make_jpeg_tree(tmp_path, as_tar=False)
    victim = tmp_path / "cifar10" / "cifar10_images" / "train" / "cat" / "0003.jpg"
    victim.write_bytes(victim.read_bytes()[:40])
    with pytest.raises(DebiaskitError, match="train/cat/0003.jpg.*truncated"):
        S.load_cifar10(tmp_path, progress=False)


def test_csv_and_tree_inconsistencies(tmp_path, isolated_cache, make_jpeg_tree):
    make_jpeg_tree(tmp_path)
    d = tmp_path / "cifar10"
    text = (d / "train_canonical_order.csv").read_text().splitlines()
    (d / "train_canonical_order.csv").write_text("\n".join(text[:-1]) + "\n" + text[-1].replace(".jpg", "x.jpg") + "\n")
    with pytest.raises(DataMissingError, match="lacks 1 train image"):
        S.load_cifar10(tmp_path, progress=False)
    # an unknown class folder in the test tree
    tar = d / "cifar10_images.tar"
    (d / "train_canonical_order.csv").write_text("\n".join(text) + "\n")
    with tarfile.open(tar, "a") as tf:
        ti = tarfile.TarInfo("test/unicorn/0000.jpg")
        ti.size = 3
        tf.addfile(ti, io.BytesIO(b"abc"))
    with pytest.raises(DebiaskitError, match="unknown CIFAR-10 class folder 'unicorn'"):
        S.load_cifar10(tmp_path, progress=False)


def test_known_release_name_is_checksummed(tmp_path, isolated_cache, make_jpeg_tree):
    make_jpeg_tree(tmp_path, tar_name="yoongikim_cifar10_images.tar")
    loc = S.locate_cifar10(tmp_path)
    with pytest.raises(ChecksumError, match="train_canonical_order.csv|yoongikim_cifar10_images.tar"):
        S.read_cifar10(loc, progress=False)


def test_fingerprint_changes_with_the_source(tmp_path, isolated_cache, make_jpeg_tree):
    make_jpeg_tree(tmp_path, seed=0)
    fp1 = S.locate_cifar10(tmp_path).fingerprint
    assert S.locate_cifar10(tmp_path).fingerprint == fp1
    make_jpeg_tree(tmp_path, seed=1, per_class_train=21)
    assert S.locate_cifar10(tmp_path).fingerprint != fp1


def test_shared_data_sources(shared_data, isolated_cache):
    loc = S.locate_cifar10(shared_data)
    assert loc.source == "jpeg_tar" and loc.lossy  # no pickles in ../shared/data: the JPEG tar is used
    a = S.load_cifar10(shared_data, source="lossless5k")
    assert a.train_images.shape == (4000, 32, 32, 3) and a.test_images.shape == (1000, 32, 32, 3)
    assert a.source == "lossless5k" and not a.lossy


def test_download_branch_uses_torchvision_into_the_cache(tmp_path, isolated_cache, make_pickles, monkeypatch):
    import torchvision

    calls = []

    class FakeCIFAR10:  # stands in for the network: writes the release layout where torchvision would
        def __init__(self, root, train=True, download=False):
            calls.append((root, train, download))
            if not (tmp_path / "written").exists():
                make_pickles(__import__("pathlib").Path(root))
                (tmp_path / "written").touch()

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR10)
    monkeypatch.delenv("DEBIASKIT_NO_DOWNLOAD")
    loc = S.locate_cifar10(tmp_path)  # nothing in the data dir -> download
    assert loc.source == "download" and str(isolated_cache) in str(loc.path)
    assert [c[1:] for c in calls] == [(True, True), (False, True)]
    assert S.read_cifar10(loc, verify=False).train_images.shape == (30, 32, 32, 3)
    # a previous download is reused offline, without calling torchvision again
    monkeypatch.setenv("DEBIASKIT_NO_DOWNLOAD", "1")
    assert S.locate_cifar10(tmp_path).source == "download" and len(calls) == 2
