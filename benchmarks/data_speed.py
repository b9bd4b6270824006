"""Benchmark: images/s of the in-memory batch path vs a torchvision ``DataLoader`` + per-image transform baseline.

For each dataset (Colored MNIST 28 px, Corrupted CIFAR-10 32 px), in the same run and on the same uint8 data:

* ``debiaskit``: the training data path of the library — a shuffled index batch,
  ``images.index_select(0, idx)`` (uint8 tensor gather, as the trainer does), then :func:`debiaskit.data.augment.make_batch_transform` (CIFAR: random crop 32 with
  padding 4 + flip + normalise, vectorised per batch; CMNIST: scale to [0, 1]). On a GPU the whole uint8 set
  lives on the device and the transform runs there.
* ``dataloader_pil``: LfF's pipeline (official ``data/attr_dataset.py`` + torchvision transforms) — a
  ``torch.utils.data.Dataset`` over the same numpy HWC array with a per-sample torchvision transform
  (CIFAR: ``ToPILImage -> RandomCrop(32, 4) -> RandomHorizontalFlip -> ToTensor -> Normalize``; CMNIST: ``ToTensor``), ``DataLoader(batch_size, shuffle=True)`` with 0 and with
  ``--workers`` worker processes (on a GPU: ``pin_memory`` + ``.to(device, non_blocking=True)``).

The first batch of every path is a warm-up and is not timed; the paths are run ``--repeats`` times interleaved
and the best rate of each is used for the speed-ups (other jobs on a shared machine only slow a run down). Optionally (``--build``) the full 50,000-image
Corrupted CIFAR-10 build (types 0 and 1, default options, JPEG-tar source) is timed in a fresh cache directory,
followed by the cached reload.

Writes ``benchmarks/results/data_speed.json`` with a machine description (CPU count, load average before and
after — the numbers depend on what else runs on the machine). Usage::

    python benchmarks/data_speed.py [--data-dir ../shared/data] [--batches 30] [--batch-size 256]
                                    [--workers 2] [--threads 1] [--build] [--cifar-source lossless5k]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from debiaskit import __version__
from debiaskit.data.augment import make_batch_transform
from debiaskit.data.registry import get_splits
from debiaskit.io import write_json

OUT = Path(__file__).resolve().parent / "results"
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


class _NumpyDataset(torch.utils.data.Dataset):
    """LfF-style in-memory dataset: numpy HWC uint8 images + a per-sample torchvision transform."""

    def __init__(self, images_hwc: np.ndarray, targets: np.ndarray, transform) -> None:
        self.images, self.targets, self.transform = images_hwc, targets, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.transform(self.images[i]), int(self.targets[i])


def _baseline_transform(name: str, info: dict):
    import torchvision.transforms as T

    if name == "corrupted_cifar10":
        norm = info["normalize"]
        return T.Compose([T.ToPILImage(), T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                          T.Normalize(norm["mean"], norm["std"])])
    return T.Compose([T.ToTensor()])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_ours(ds, device: torch.device, batches: int, batch_size: int, seed: int, transform=None,
              index_select: bool = False) -> float:
    """images/s of index gather + batch transform (the dataset is moved to ``device`` first, untimed).

    ``index_select=True`` gathers with ``images.index_select(0, idx)`` instead of ``images[idx]``.
    """
    images, targets = ds.images.to(device), ds.targets.to(device)
    tf = transform or make_batch_transform(ds.info, train=True)
    gen = torch.Generator(device=device).manual_seed(seed)
    n = len(images)
    perm = torch.randperm(n, generator=gen, device=device)

    def step(k: int):
        idx = perm[(k * batch_size) % (n - batch_size) : (k * batch_size) % (n - batch_size) + batch_size]
        x = tf(images.index_select(0, idx) if index_select else images[idx], gen)
        return x, targets[idx]

    step(0)
    _sync(device)
    t0 = time.perf_counter()
    for k in range(1, batches + 1):
        x, y = step(k)
    _sync(device)
    return batches * batch_size / (time.perf_counter() - t0)


def time_baseline(ds, name: str, device: torch.device, batches: int, batch_size: int, workers: int,
                  seed: int) -> float:
    """images/s of a shuffled DataLoader with the per-sample PIL/ToTensor transform."""
    hwc = ds.images.permute(0, 2, 3, 1).contiguous().numpy()
    data = _NumpyDataset(hwc, ds.targets.numpy(), _baseline_transform(name, ds.info))
    loader = torch.utils.data.DataLoader(
        data, batch_size=batch_size, shuffle=True, num_workers=workers, pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(seed), persistent_workers=False,
    )
    it = iter(loader)
    x, y = next(it)  # warm-up (also starts the workers)
    x.to(device, non_blocking=True)
    _sync(device)
    t0 = time.perf_counter()
    done = 0
    for _ in range(batches):
        try:
            x, y = next(it)
        except StopIteration:
            it = iter(loader)
            x, y = next(it)
        x = x.to(device, non_blocking=True)
        done += len(x)
    _sync(device)
    return done / (time.perf_counter() - t0)


def machine() -> dict:
    d = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "loadavg_start": list(os.getloadavg()),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                d["cpu_model"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return d


def build_times(data_dir: str) -> dict:
    """Full 50k Corrupted CIFAR-10 builds (type 0 and 1) in a fresh cache, then the cached reloads."""
    out = {}
    with tempfile.TemporaryDirectory(prefix="dk-build-bench-") as cache:
        old = os.environ.get("DEBIASKIT_CACHE")
        os.environ["DEBIASKIT_CACHE"] = cache
        try:
            for t in (0, 1):
                load0 = os.getloadavg()[0]
                t0 = time.perf_counter()
                s = get_splits("corrupted_cifar10", type=t, data_dir=data_dir, progress=False)
                build = time.perf_counter() - t0
                t0 = time.perf_counter()
                s2 = get_splits("corrupted_cifar10", type=t, data_dir=data_dir, progress=False)
                reload = time.perf_counter() - t0
                assert s2["train"].info["cache"] == "hit"
                out[f"type{t}"] = {
                    "build_s": round(build, 2), "reload_s": round(reload, 2),
                    "train": len(s["train"]), "val": len(s["val"]), "test": len(s["test"]),
                    "source": s["train"].info["cifar_source"], "workers": min(2, os.cpu_count() or 1),
                    "fingerprint": s.fingerprint, "loadavg_1min_before": round(load0, 2),
                }
                print(f"build type {t}: {build:.1f} s, cached reload {reload:.2f} s", flush=True)
        finally:
            if old is None:
                os.environ.pop("DEBIASKIT_CACHE", None)
            else:
                os.environ["DEBIASKIT_CACHE"] = old
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", default=os.environ.get("DEBIASKIT_DATA") or str(DEFAULT_DATA))
    ap.add_argument("--batches", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers of the second baseline")
    ap.add_argument("--cifar-source", default="lossless5k", help="CIFAR source for the speed runs")
    ap.add_argument("--build", action="store_true", help="also time the full 50k Corrupted CIFAR-10 builds")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads for the debiaskit path (1: no oversubscription on a shared CPU)")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved repetitions; the best is reported")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(OUT / "data_speed.json"))
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    info = machine()
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    datasets = {
        "colored_mnist": dict(data_dir=args.data_dir),
        "corrupted_cifar10": dict(data_dir=args.data_dir, source=args.cifar_source, type=0, progress=False),
    }
    paths = {
        "debiaskit": lambda ds, dev: time_ours(ds, dev, args.batches, args.batch_size, args.seed, index_select=True),
        "dataloader_pil_0w": lambda ds, dev: time_baseline(ds, name, dev, args.batches, args.batch_size, 0, args.seed),
        f"dataloader_pil_{args.workers}w": lambda ds, dev: time_baseline(ds, name, dev, args.batches,
                                                                        args.batch_size, args.workers, args.seed),
    }
    results, speedups = [], {}
    for name, kw in datasets.items():
        ds = get_splits(name, **kw)["train"]
        meta = {"dataset": name, "image_shape": list(ds.image_shape), "n_images": len(ds),
                "fingerprint": ds.fingerprint, "batch_size": args.batch_size, "batches": args.batches}
        for dev in devices:
            runs: dict[str, list[float]] = {p: [] for p in paths}
            for _ in range(args.repeats):  # interleaved, so load changes hit every path alike
                for p, fn in paths.items():
                    runs[p].append(fn(ds, dev))
            best = {p: max(v) for p, v in runs.items()}
            for p, v in runs.items():
                results.append({**meta, "device": dev.type, "path": p, "images_per_s_best": round(best[p], 1),
                                "images_per_s_median": round(float(np.median(v)), 1),
                                "images_per_s_all": [round(x, 1) for x in v]})
                print(f"{name} {dev.type} {p:20s} best {best[p]:10,.0f} img/s  (runs: "
                      f"{', '.join(f'{x:,.0f}' for x in v)})", flush=True)
            for ours in ("debiaskit",):
                for base in (p for p in paths if p.startswith("dataloader")):
                    speedups[f"{name}/{dev.type}/{ours}_vs_{base}"] = round(best[ours] / best[base], 1)
    out = {
        "benchmark": "data_speed",
        "debiaskit_version": __version__,
        "machine": info,
        "config": vars(args),
        "baseline_transform": {
            "corrupted_cifar10": "ToPILImage, RandomCrop(32, padding=4), RandomHorizontalFlip, ToTensor, Normalize",
            "colored_mnist": "ToTensor (LfF)",
        },
        "notes": "path 'debiaskit' = uint8 gather images.index_select(0, idx) + augment.make_batch_transform "
                 "(the library path, as in the trainer; crop via an as_strided window view); "
                 "'dataloader_pil_Kw' = LfF-style per-sample transform in a DataLoader with K workers. "
                 "Speed-ups use the best of the interleaved repeats (the machine is shared: see loadavg).",
        "results": results,
        "speedup": speedups,
    }
    if args.build:
        out["corrupted_cifar10_build"] = build_times(args.data_dir)
    out["machine"]["loadavg_end"] = list(os.getloadavg())
    write_json(args.out, out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
