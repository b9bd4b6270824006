"""Memory-mapped uint8 image cache for file-backed datasets (BFFHQ, CelebA, Waterbirds, COCO, imSitu, ...).

Each image file is decoded **once** (PIL), converted to RGB (or L), resized to the chosen resolution and
stored in a ``(N, C, H, W)`` uint8 ``.npy`` written with :func:`numpy.lib.format.open_memmap` under
``debiaskit.paths.cache_dir("images")``. Later builds memory-map that file, and
``torch.from_numpy(memmap)`` is the ``BiasedDataset.images`` tensor, so training epochs index a uint8
array instead of decoding JPEGs (the DisEnt loaders, ``data/util.py`` of the official code, open every
file with PIL on every access).

Cache key
    SHA-256 over a format version, the *ordered* file list (absolute paths; row ``i`` of the cache is file
    ``i``, so builders pass a deterministic, sorted list), each file's size and ``st_mtime_ns``, the
    resolution and every decoding option. A changed, added, removed or touched source file therefore
    gives a new key and a rebuild; identical sources hit the cache.

Atomicity
    The array is written to a temporary name in the cache folder and renamed into place only once it is
    complete and flushed; a sidecar ``<key>.json`` (written atomically, after the rename) records the files
    that were skipped and a SHA-256 of the image bytes. A cache entry counts only when both files exist, so
    an interrupted build is never reused.

Bad files
    A file PIL cannot decode (truncated JPEG, not an image, ...) is reported with its path. With
    ``on_error="fail"`` (default) the build stops with a :class:`~debiaskit.errors.DebiaskitError`; with
    ``on_error="skip"`` the file is left out, and ``ImageCache.skipped`` (also ``info["skipped"]`` of the
    datasets) lists ``{"path", "error"}`` for each. ``ImageCache.kept`` maps cache rows to input positions.
    PIL's global ``ImageFile.LOAD_TRUNCATED_IMAGES`` is honoured as set by the caller (default ``False``:
    truncated files are errors).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from debiaskit.errors import DataMissingError, DebiaskitError
from debiaskit.io import write_json
from debiaskit.paths import cache_dir

__all__ = ["ImageCache", "build_image_cache", "decode_image", "IMAGE_EXTENSIONS", "normalize_resolution"]

#: File name endings treated as images by the folder-scanning loaders.
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")

_FORMAT_VERSION = 1
_CROPS = ("none", "center")


@dataclass
class ImageCache:
    """A built (or re-opened) image cache.

    Attributes:
        images: uint8 tensor ``(N_kept, C, H, W)`` sharing memory with the memory-mapped file
            (copy-on-write: in-place edits never reach the file).
        kept: int64 array ``(N_kept,)``: input position of each cache row (``arange(N)`` without skips).
        skipped: ``[{"path": str, "error": str}, ...]`` for files left out with ``on_error="skip"``.
        path: the ``.npy`` file; key: the cache key; hit: True when the build reused an existing file.
        digest: SHA-256 (16 hex digits) of the kept image bytes, used in dataset fingerprints.
    """

    images: torch.Tensor
    kept: np.ndarray
    skipped: list[dict[str, str]]
    path: Path
    key: str
    hit: bool
    digest: str
    options: dict[str, Any] = field(default_factory=dict)


def normalize_resolution(resolution: int | Sequence[int]) -> tuple[int, int]:
    """``64`` → ``(64, 64)``; ``(h, w)`` stays; anything else is a :class:`DebiaskitError`."""
    if isinstance(resolution, (int, np.integer)) and not isinstance(resolution, bool):
        hw = (int(resolution), int(resolution))
    elif isinstance(resolution, (list, tuple)) and len(resolution) == 2:
        hw = (int(resolution[0]), int(resolution[1]))
    else:
        raise DebiaskitError(f"resolution must be an int or (height, width), got {resolution!r}")
    if min(hw) < 1 or max(hw) > 4096:
        raise DebiaskitError(f"resolution must be between 1 and 4096 pixels, got {resolution!r}")
    return hw


def decode_image(path: str | os.PathLike, *, size: tuple[int, int], channels: int = 3, crop: str = "none") -> np.ndarray:
    """Decode one image file to a uint8 ``(C, H, W)`` array of ``size = (H, W)``.

    ``crop="none"`` resizes the whole image to ``(H, W)`` (torchvision ``Resize((H, W))``, as the LfF and
    DisEnt CelebA/BFFHQ pipelines); ``crop="center"`` resizes the shorter side and centre-crops
    (``Resize(min) + CenterCrop``). Resampling is PIL bilinear (antialiased when shrinking). For JPEGs,
    PIL's ``draft`` mode first lets the decoder shrink by a power of two while staying at least twice
    the target size, which makes decoding several times faster and changes values only marginally.
    Raises the underlying PIL/OS error for undecodable files.
    """
    from PIL import Image

    h, w = size
    with Image.open(path) as im:
        if im.format == "JPEG":
            im.draft("RGB" if channels == 3 else "L", (2 * w, 2 * h))
        im.load()
        im = im.convert("RGB" if channels == 3 else "L")
        if crop == "center":
            iw, ih = im.size
            scale = max(w / iw, h / ih)
            nw, nh = max(w, round(iw * scale)), max(h, round(ih * scale))
            im = im.resize((nw, nh), Image.BILINEAR)
            left, top = (nw - w) // 2, (nh - h) // 2
            im = im.crop((left, top, left + w, top + h))
        elif im.size != (w, h):
            im = im.resize((w, h), Image.BILINEAR)
        arr = np.asarray(im, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def _cache_key(files: Sequence[Path], size: tuple[int, int], options: dict[str, Any]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"v": _FORMAT_VERSION, "size": list(size), "options": options}, sort_keys=True).encode())
    for p in files:
        st = p.stat()
        h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def _check_exist(files: Sequence[Path], what: str) -> None:
    missing = [p for p in files if not p.is_file()]
    if missing:
        shown = ", ".join(str(p) for p in missing[:10])
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise DataMissingError(f"{what}: {len(missing)} image file(s) missing: {shown}{more}")


def _open(path: Path) -> np.ndarray:
    arr = np.load(path, mmap_mode="c")  # copy-on-write: writable for torch, never written back
    return arr


def build_image_cache(
    files: Sequence[str | os.PathLike],
    *,
    resolution: int | Sequence[int],
    channels: int = 3,
    crop: str = "none",
    on_error: str = "fail",
    name: str = "images",
    progress: bool = True,
    num_workers: int | None = None,
) -> ImageCache:
    """Decode ``files`` once into a memory-mapped uint8 cache, or re-open the cache built before.

    Args:
        files: image paths; row ``i`` of the result is ``files[kept[i]]``.
        resolution: ``int`` (square) or ``(height, width)``.
        channels: 3 (RGB) or 1 (grayscale).
        crop: ``"none"`` (resize whole image) or ``"center"`` (resize shorter side + centre crop).
        on_error: ``"fail"`` (default) raises on the first undecodable file, naming it; ``"skip"``
            leaves such files out and lists them in ``skipped``.
        name: a label for the cache file name and messages (e.g. ``"bffhq-train"``).
        progress: show a tqdm bar while decoding (only on a terminal, as the trainer).
        num_workers: decoding threads (PIL releases the GIL while decoding); default ``min(4, cpu_count)``.
    """
    if on_error not in ("fail", "skip"):
        raise DebiaskitError(f"on_error must be 'fail' or 'skip', got {on_error!r}")
    if channels not in (1, 3):
        raise DebiaskitError(f"channels must be 1 or 3, got {channels!r}")
    if crop not in _CROPS:
        raise DebiaskitError(f"crop must be one of {', '.join(_CROPS)}, got {crop!r}")
    size = normalize_resolution(resolution)
    paths = [Path(f).expanduser().absolute() for f in files]
    if not paths:
        raise DebiaskitError(f"{name}: no image files to cache")
    _check_exist(paths, name)
    options = {"channels": channels, "crop": crop, "on_error": on_error, "resample": "bilinear", "draft": True}
    key = _cache_key(paths, size, options)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    folder = cache_dir("images")
    npy = folder / f"{safe}-{size[0]}x{size[1]}-{key}.npy"
    meta_path = npy.with_suffix(".json")
    if npy.is_file() and meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
            arr = _open(npy)
            n_kept = int(meta["n_kept"])
            if arr.shape[1:] == (channels, *size) and arr.shape[0] >= n_kept and int(meta["n_files"]) == len(paths):
                return ImageCache(
                    images=torch.from_numpy(arr[:n_kept]),
                    kept=np.asarray(meta["kept"], dtype=np.int64),
                    skipped=list(meta["skipped"]),
                    path=npy,
                    key=key,
                    hit=True,
                    digest=str(meta["digest"]),
                    options=options,
                )
        except (OSError, ValueError, KeyError):
            pass  # unreadable entry: rebuild it below
    return _build(paths, size=size, channels=channels, crop=crop, on_error=on_error, name=name, npy=npy,
                  meta_path=meta_path, key=key, options=options, progress=progress, num_workers=num_workers)


def _build(
    paths: list[Path],
    *,
    size: tuple[int, int],
    channels: int,
    crop: str,
    on_error: str,
    name: str,
    npy: Path,
    meta_path: Path,
    key: str,
    options: dict[str, Any],
    progress: bool,
    num_workers: int | None,
) -> ImageCache:
    from numpy.lib.format import open_memmap
    from tqdm.auto import tqdm

    n = len(paths)
    workers = max(1, int(num_workers or min(4, os.cpu_count() or 1)))
    need = n * channels * size[0] * size[1]
    free = shutil.disk_usage(npy.parent).free
    if need + (64 << 20) > free:
        raise DebiaskitError(
            f"{name}: the {size[0]}x{size[1]} image cache needs {need / 2**30:.2f} GiB but only {free / 2**30:.2f} GiB "
            f"are free in {npy.parent}; free space, point DEBIASKIT_CACHE elsewhere, or choose a smaller resolution"
        )
    fd, tmp_name = tempfile.mkstemp(prefix=f".{npy.name}.", suffix=".tmp", dir=npy.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    h = hashlib.sha256()
    kept: list[int] = []
    skipped: list[dict[str, str]] = []

    def work(i: int) -> tuple[int, np.ndarray | None, str | None]:
        try:
            return i, decode_image(paths[i], size=size, channels=channels, crop=crop), None
        except Exception as e:  # noqa: BLE001 - any decoder failure is reported with its path
            return i, None, f"{type(e).__name__}: {e}"

    try:
        mm = open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, channels, *size))
        row = 0
        chunk = 256
        bar = tqdm(total=n, desc=f"caching {name} {size[0]}x{size[1]}", unit="img",
                   disable=None if progress else True, leave=False)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for start in range(0, n, chunk):
                for i, arr, err in pool.map(work, range(start, min(n, start + chunk))):
                    if err is not None:
                        if on_error == "fail":
                            raise DebiaskitError(
                                f"{name}: cannot decode image {paths[i]} ({err}); fix or remove the file, "
                                "or pass on_error='skip' to leave undecodable images out"
                            )
                        skipped.append({"path": str(paths[i]), "error": err})
                    else:
                        mm[row] = arr
                        h.update(arr.tobytes())
                        kept.append(i)
                        row += 1
                    bar.update(1)
        bar.close()
        if row == 0:
            raise DebiaskitError(f"{name}: none of the {n} image files could be decoded (first: {skipped[0]})")
        mm.flush()
        del mm
        os.replace(tmp, npy)
    except BaseException:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        raise
    digest = h.hexdigest()[:16]
    write_json(meta_path, {
        "version": _FORMAT_VERSION, "name": name, "n_files": n, "n_kept": row, "kept": kept, "skipped": skipped,
        "size": list(size), "options": options, "digest": digest,
    })
    arr = _open(npy)
    return ImageCache(images=torch.from_numpy(arr[:row]), kept=np.asarray(kept, dtype=np.int64), skipped=skipped,
                      path=npy, key=key, hit=False, digest=digest, options=options)
