"""Trainer performance options: ms/step of ``vanilla`` for ``train.amp`` (none | bf16) × ``train.channels_last``.

Times the trainer's hot path exactly as :func:`debiaskit.train.trainer.run_training` runs it — the method
built by :func:`debiaskit.train.trainer.build_method` (models converted to channels-last when asked),
``images.index_select`` of the in-memory uint8 batch, the train batch transform (crop 32 + pad 4, flip,
normalise), the NHWC conversion of the batch, ``method.update`` under ``torch.autocast(bfloat16)`` when
``amp=bf16``, and ``on_step_end`` — on Corrupted CIFAR-10 at batch 256 (default model ``resnet20``, LfF's
network), on the CPU and, when one is available, on the GPU (data on the device, as the trainer does).

The four combinations are interleaved (each repeat times every combination once) so that a load change on a
shared machine hits them all alike; the reported figure is the median over repeats of the mean ms/step of the
timed steps (after warm-up steps that are not timed). On the CPU the process CPU time per step is recorded as
well: with one thread on a busy machine it estimates the step cost on an idle core better than the wall time.

The images' content does not change the step cost, so by default the dataset is built from the small bit-exact
``lossless5k`` source (4,000 training images, seconds to build); ``--source auto`` uses the full set.

    DEBIASKIT_DATA=../shared/data python benchmarks/perf_options.py --steps 5 --repeats 3
    # -> benchmarks/results/perf_options.json
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from _machine import cpu_model

HERE = Path(__file__).resolve().parent
COMBOS = [("none", False), ("none", True), ("bf16", False), ("bf16", True)]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _Case:
    """One (amp, channels_last) combination with its own method, sampler and generator."""

    def __init__(self, splits: Any, *, device: torch.device, amp: str, channels_last: bool, model: str,
                 batch_size: int, seed: int) -> None:
        from debiaskit.data.augment import make_batch_transform
        from debiaskit.experiments.config import resolve_config
        from debiaskit.train.sampler import EpochSampler
        from debiaskit.train.trainer import build_method

        cfg = resolve_config({"dataset": {"name": "corrupted_cifar10"}, "method": "vanilla", "seed": seed,
                              "device": str(device), "hparams": {"model": model, "batch_size": batch_size},
                              "train": {"amp": amp, "channels_last": channels_last, "progress": False}})
        self.device = device
        self.generator = torch.Generator(device=device).manual_seed(seed)
        torch.manual_seed(seed)
        self.method = build_method(cfg, splits, device, self.generator)
        train = splits["train"]
        self.images = train.images.to(device)
        self.targets, self.bias = train.targets.to(device), train.bias.to(device)
        self.transform = make_batch_transform(train.info, train=True)
        self.sampler = EpochSampler(len(train), batch_size, generator=self.generator, device=device)
        self.autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp == "bf16")
        self.channels_last = channels_last
        self.step = 0
        self.last_loss = float("nan")

    def run(self, n: int) -> tuple[float, float]:
        """``n`` training steps; returns (wall seconds, process CPU seconds)."""
        from debiaskit.methods.base import Batch

        _sync(self.device)
        w0, c0 = time.perf_counter(), time.process_time()
        for _ in range(n):
            self.step += 1
            idx = self.sampler.next()
            x = self.transform(self.images.index_select(0, idx), self.generator)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with self.autocast:
                logs = self.method.update(Batch(idx=idx, x=x, y=self.targets[idx], b=self.bias[idx]), self.step)
            self.method.on_step_end(self.step)
        _sync(self.device)
        self.last_loss = float(logs["loss"])
        return time.perf_counter() - w0, time.process_time() - c0


def measure(splits: Any, *, device: torch.device, model: str, batch_size: int, steps: int, warmup: int,
            repeats: int, seed: int) -> dict[str, Any]:
    cases = {f"amp={a},channels_last={c}": _Case(splits, device=device, amp=a, channels_last=c, model=model,
                                                  batch_size=batch_size, seed=seed) for a, c in COMBOS}
    for case in cases.values():
        case.run(warmup)
    wall: dict[str, list[float]] = {k: [] for k in cases}
    cpu: dict[str, list[float]] = {k: [] for k in cases}
    for r in range(repeats):
        order = list(cases) if r % 2 == 0 else list(reversed(cases))  # alternate the order between repeats
        for k in order:
            w, c = cases[k].run(steps)
            wall[k].append(1000 * w / steps)
            cpu[k].append(1000 * c / steps)
            print(f"  {device.type} repeat {r} {k}: {wall[k][-1]:.0f} ms/step wall, {cpu[k][-1]:.0f} ms CPU",
                  flush=True)
    out: dict[str, Any] = {}
    base = statistics.median(wall["amp=none,channels_last=False"])
    base_cpu = statistics.median(cpu["amp=none,channels_last=False"])
    for (a, c), k in zip(COMBOS, cases):
        med = statistics.median(wall[k])
        row = {"amp": a, "channels_last": c, "ms_per_step_wall": med, "wall_repeats": wall[k],
               "images_per_s": 1000 * batch_size / med, "speedup_vs_default_wall": base / med,
               "final_loss": cases[k].last_loss}
        if device.type == "cpu":
            medc = statistics.median(cpu[k])
            row.update({"ms_per_step_cpu_time": medc, "cpu_time_repeats": cpu[k],
                        "speedup_vs_default_cpu_time": base_cpu / medc})
        out[k] = row
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=os.environ.get("DEBIASKIT_DATA"), help="directory with cifar10/ and lff/")
    ap.add_argument("--source", default="lossless5k", help="CIFAR-10 source of the dataset build (default lossless5k)")
    ap.add_argument("--model", default="resnet20")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per combination and repeat")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("DEBIASKIT_NUM_THREADS", "1")))
    ap.add_argument("--devices", default="cpu,cuda", help="cuda is skipped when unavailable")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(HERE / "results" / "perf_options.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from debiaskit import __version__
    from debiaskit.data.registry import get_splits
    from debiaskit.errors import DebiaskitError
    from debiaskit.io import write_json

    try:
        if not args.data_dir:
            raise DebiaskitError("set DEBIASKIT_DATA or --data-dir to the directory with cifar10/ and lff/")
        for v, name in ((args.steps, "--steps"), (args.repeats, "--repeats"), (args.batch_size, "--batch-size")):
            if v < 1:
                raise DebiaskitError(f"{name} must be >= 1, got {v}")
        t = time.perf_counter()
        splits = get_splits("corrupted_cifar10", type=0, ratio=0.01, data_dir=args.data_dir, source=args.source,
                            progress=False)
        build_s = time.perf_counter() - t
        devices = []
        for d in args.devices.split(","):
            d = d.strip()
            if d == "cuda" and not torch.cuda.is_available():
                print("cuda: not available, skipped")
                continue
            devices.append(torch.device(d))
        load0 = os.getloadavg()
        results = {}
        for dev in devices:
            print(f"{dev}: {args.model}, batch {args.batch_size}, {args.steps} steps × {args.repeats} repeats",
                  flush=True)
            results[dev.type] = measure(splits, device=dev, model=args.model, batch_size=args.batch_size,
                                        steps=args.steps, warmup=args.warmup, repeats=args.repeats, seed=args.seed)
        payload = {
            "benchmark": "perf_options",
            "debiaskit_version": __version__,
            "what": "vanilla training step (trainer hot path) on corrupted_cifar10, ms/step, per train.amp × "
                    "train.channels_last; median over interleaved repeats",
            "config": {k: v for k, v in vars(args).items()},
            "data": {"fingerprint": splits.fingerprint, "n_train": len(splits["train"]),
                     "cifar_source": splits["train"].info.get("cifar_source"), "build_s": build_s},
            "machine": {"platform": platform.platform(), "cpu_model": cpu_model(), "cpu_count": os.cpu_count(),
                        "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                        "loadavg_start": list(load0), "loadavg_end": list(os.getloadavg())},
            "results": results,
            "notes": "GPU not measured" if "cuda" not in results else "",
        }
        write_json(Path(args.out), payload)
    except DebiaskitError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for dev, rows in results.items():
        for k, r in rows.items():
            extra = f", {r['ms_per_step_cpu_time']:.0f} ms CPU" if "ms_per_step_cpu_time" in r else ""
            print(f"{dev} {k}: {r['ms_per_step_wall']:.0f} ms/step{extra} (×{r['speedup_vs_default_wall']:.2f})")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
