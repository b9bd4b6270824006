"""Benchmark: building and re-opening the memory-mapped image cache (``debiaskit.data.filecache``).

Two sources of real image content (no BFFHQ/CelebA/Waterbirds image files are available offline):

* ``cifar_jpeg``: the first ``--n-cifar`` training JPEGs (32x32, quality ≈75) of
  ``<data-dir>/cifar10/yoongikim_cifar10_images.tar``, extracted to a temporary folder, cached at 32 px.
* ``celeba_like``: real CelebA faces from ``<data-dir>/celeba/celeba_testcrops_64x64_first4000.npz``, upsampled
  to CelebA's aligned size 178x218 and written as JPEG (quality 95), cached at 64 px and 224 px.

For each: cold build time (decode + resize + write, images/s), warm re-open time (cache hit), and one
"epoch" of per-image PIL decoding (open + convert + resize, the DisEnt data path) for comparison with
reading the same images from the cache (a random-order gather of the whole uint8 tensor).

Writes ``benchmarks/results/filecache_build.json``. Usage:
``python benchmarks/filecache_build.py [--data-dir ../shared/data] [--n-cifar 5000] [--n-faces 2000]``
"""

from __future__ import annotations

import argparse
import os
import platform
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from debiaskit import __version__
from debiaskit.data.filecache import build_image_cache, decode_image
from debiaskit.io import write_json

OUT = Path(__file__).resolve().parent / "results"


def _extract_cifar(tar_path: Path, dest: Path, n: int) -> list[Path]:
    out = []
    with tarfile.open(tar_path) as tf:
        for m in tf:
            if m.isfile() and m.name.startswith("train/") and m.name.endswith(".jpg"):
                p = dest / m.name
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(tf.extractfile(m).read())
                out.append(p)
                if len(out) >= n:
                    break
    return sorted(out)


def _write_faces(npz: Path, dest: Path, n: int) -> list[Path]:
    from PIL import Image

    imgs = np.load(npz)["images"][:n]
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for i, a in enumerate(imgs):
        p = dest / f"{i + 1:06d}.jpg"
        Image.fromarray(a).resize((178, 218), Image.BICUBIC).save(p, quality=95)
        out.append(p)
    return out


def _measure(files: list[Path], resolution: int, name: str) -> dict:
    t0 = time.perf_counter()
    c = build_image_cache(files, resolution=resolution, name=name, progress=False)
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    c2 = build_image_cache(files, resolution=resolution, name=name, progress=False)
    warm = time.perf_counter() - t0
    assert c2.hit and not c.hit
    n = len(files)
    # one epoch of per-image PIL decoding (single process), random order
    order = np.random.default_rng(0).permutation(n)
    t0 = time.perf_counter()
    for i in order:
        decode_image(files[i], size=(resolution, resolution))
    pil_epoch = time.perf_counter() - t0
    # one epoch read from the cache: random-order gather of uint8 batches of 256 (page cache warm; the
    # float conversion happens later, on the device, in both paths)
    idx = torch.from_numpy(order)
    t0 = time.perf_counter()
    for s in range(0, n, 256):
        _ = c2.images[idx[s : s + 256]]
    cache_epoch = time.perf_counter() - t0
    return {
        "n_images": n, "resolution": resolution, "cache_bytes": int(c.path.stat().st_size),
        "cold_build_s": round(cold, 3), "cold_build_img_per_s": round(n / cold, 1),
        "warm_open_s": round(warm, 4),
        "pil_decode_epoch_s": round(pil_epoch, 3), "pil_decode_img_per_s": round(n / pil_epoch, 1),
        "cache_epoch_s": round(cache_epoch, 4), "cache_img_per_s": round(n / cache_epoch, 1),
        "speedup_cache_vs_pil": round(pil_epoch / cache_epoch, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--n-cifar", type=int, default=5000)
    ap.add_argument("--n-faces", type=int, default=2000)
    args = ap.parse_args()
    data = Path(args.data_dir)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["DEBIASKIT_CACHE"] = str(Path(tmp) / "cache")
        results = {}
        cifar = _extract_cifar(data / "cifar10" / "yoongikim_cifar10_images.tar", Path(tmp) / "cifar", args.n_cifar)
        results["cifar_jpeg_32"] = _measure(cifar, 32, "cifar")
        faces = _write_faces(data / "celeba" / "celeba_testcrops_64x64_first4000.npz", Path(tmp) / "faces", args.n_faces)
        results["celeba_like_178x218_to_64"] = _measure(faces, 64, "faces")
        results["celeba_like_178x218_to_224"] = _measure(faces, 224, "faces")
    res = {
        "benchmark": "filecache_build", "version": __version__, "torch": torch.__version__,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores (shared with other jobs)",
        "decode_threads": min(4, os.cpu_count() or 1),
        "command": f"python benchmarks/filecache_build.py --n-cifar {args.n_cifar} --n-faces {args.n_faces}",
        "results": results,
    }
    write_json(OUT / "filecache_build.json", res)
    for k, v in results.items():
        print(k, v)


if __name__ == "__main__":
    main()
