"""Training-step speed of vanilla, LfF and DisEnt on Colored-MNIST-shaped data (batch 256).

Measures the trainer's hot path per step — index the in-memory uint8 images, uint8 → float transform,
``method.update`` (forward, losses, EMA + class-max over the whole table, backward, optimiser steps) and
``on_step_end`` — on CPU for each thread count in ``--threads`` and on the GPU when one is available.
DisEnt is timed *after* the curriculum (feature swapping on: two encoders and four head evaluations).
``--threads`` accepts ``default`` (what a run picks with no option: :func:`debiaskit.threads.choose_threads`)
next to explicit counts; ``--load idle,busy`` times every case once on a quiet machine and once with one
competing busy process (a single-threaded matrix-product loop), so the thread-policy ratios
(default / best thread count, per case and load) are measured in one run.
The EMA tables have 54,000 entries, the size of our Colored MNIST training split.

Writes ``benchmarks/results/train_speed.json`` with wall ms/step, images/s, the process CPU time per step,
the DisEnt/vanilla ratio and a machine description (CPU model, cores, load average before/after). On a busy
shared machine the wall time mostly measures the scheduler; with one thread the process CPU time per step is
the better estimate of the step cost on an idle core.

    python benchmarks/train_speed.py --threads default,1,2 --load idle,busy --steps 200
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from _machine import cpu_model

HERE = Path(__file__).resolve().parent

CASES: dict[str, dict[str, Any]] = {
    # DisEnt's vanilla baseline (16-d MLP): the reference for "vanilla >= 3x faster than DisEnt"
    "vanilla": {"method": "vanilla", "hparams": {"model": "mlp_disent", "lr": 0.01}},
    "vanilla_mlp_lff": {"method": "vanilla", "hparams": {"model": "mlp_lff", "lr": 1e-3}},
    "lff": {"method": "lff", "hparams": {}},
    "disent": {"method": "disent", "hparams": {"curr_step": 0}},  # timed with swapping on
}


def machine() -> dict[str, Any]:
    info = {
        "platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
        "cpu_model": cpu_model(), "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


_BUSY = ("import torch\ntorch.set_num_threads(1)\na = torch.randn(512, 512)\n"
         "while True:\n    a = torch.tanh(a @ a)\n")


def start_competitor() -> subprocess.Popen:
    """One competing busy process (single-threaded matmul loop), as a second job on the machine would be."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-c", _BUSY], env=env)
    time.sleep(2.0)  # let it get going
    return proc


def resolve_threads(spec: str, name: str) -> tuple[int, str]:
    """``default`` -> what the trainer's policy picks for this case's model; else the explicit count."""
    if spec != "default":
        return int(spec), "explicit"
    from debiaskit.experiments.hparams import resolve_hparams
    from debiaskit.models.registry import create_model
    from debiaskit.threads import choose_threads

    hp = resolve_hparams(CASES[name]["method"], "colored_mnist", warn=False)
    hp.update(CASES[name]["hparams"])
    model = create_model(hp["model"], num_classes=10, in_shape=(3, 28, 28))
    n_params = sum(p.numel() for p in model.parameters())
    choice = choose_threads("auto", n_params=n_params, env={})
    return choice.threads, choice.reason


def time_case(name: str, *, device: torch.device, threads: int, steps: int, warmup: int, n_train: int,
              batch: int = 256, amp: str = "none", impl: str = "auto", float_cache: str = "auto") -> dict[str, Any]:
    from debiaskit.data.augment import make_batch_transform, prescale_images, use_float_cache
    from debiaskit.methods.base import Batch, TrainContext
    from debiaskit.experiments.hparams import resolve_hparams
    from debiaskit.methods.registry import get_method

    torch.set_num_threads(threads)
    case = CASES[name]
    hp = resolve_hparams(case["method"], "colored_mnist", warn=False)
    hp.update(case["hparams"], batch_size=batch)
    g = torch.Generator(device=device).manual_seed(0)
    gen_cpu = torch.Generator().manual_seed(0)
    targets = torch.randint(0, 10, (n_train,), generator=gen_cpu)
    images = torch.randint(0, 256, (n_train, 3, 28, 28), generator=gen_cpu, dtype=torch.uint8).to(device)
    targets = targets.to(device)
    ctx = TrainContext(dataset="colored_mnist", num_classes=10, num_bias=10, in_shape=(3, 28, 28), n_train=n_train,
                       train_targets=targets, train_bias=targets, device=device, generator=g, optimizer_impl=impl)
    method = get_method(case["method"])(ctx, hp).to(device)
    cached = use_float_cache(float_cache, images, device)  # what the trainer does (train.float_cache)
    if cached:
        images = prescale_images(images)
    transform = make_batch_transform({}, train=True, prescaled=cached)
    # the swap is on from update curr_step + 2 (DisEnt); start the clock well after that
    first = int(hp.get("curr_step", 0)) + 2

    def one(step: int) -> None:
        idx = torch.randperm(n_train, generator=g, device=device)[:batch]
        x = transform(images[idx], g)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp == "bf16"):
            method.update(Batch(idx=idx, x=x, y=targets[idx], b=targets[idx]), step)
        method.on_step_end(step)

    for s in range(first, first + warmup):
        one(s)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0, c0 = time.perf_counter(), time.process_time()
    for s in range(first + warmup, first + warmup + steps):
        one(s)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    dt = (time.perf_counter() - t0) / steps
    cpu = (time.process_time() - c0) / steps
    return {"case": name, "method": case["method"], "model": hp["model"], "device": str(device), "threads": threads,
            "amp": amp, "optimizer_impl": impl, "float_cache": float_cache, "float_cache_used": cached,
            "batch_size": batch, "steps_timed": steps, "ms_per_step": 1000 * dt, "images_per_s": batch / dt,
            "cpu_ms_per_step": 1000 * cpu}


def summarise_repeats(raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per configuration: the median over its repeats (with the spread), in first-seen order."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in raw:
        key = (r["load"], r["thread_spec"], r["amp"], r["optimizer_impl"], r["float_cache"], r["case"])
        groups.setdefault(key, []).append(r)
    out = []
    for rs in groups.values():
        ms = sorted(x["ms_per_step"] for x in rs)
        cpu = sorted(x["cpu_ms_per_step"] for x in rs)
        row = {k: v for k, v in rs[0].items() if k != "repeat"}
        row.update(ms_per_step=statistics.median(ms), cpu_ms_per_step=statistics.median(cpu),
                   images_per_s=row["batch_size"] / (statistics.median(ms) / 1000), n_repeats=len(rs),
                   ms_per_step_range=[ms[0], ms[-1]])
        out.append(row)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="default,1,2",
                    help="CPU thread counts to time (comma-separated; 'default' = the trainer's policy)")
    ap.add_argument("--amp", default="none", help="none,bf16: also time bfloat16 autocast (train.amp: bf16)")
    ap.add_argument("--impl", default="auto",
                    help="auto,for_loop,...: optimiser implementations to time (train.optimizer_impl)")
    ap.add_argument("--float-cache", default="auto",
                    help="auto,off,...: the trainer's float32 image copy (train.float_cache) to time")
    ap.add_argument("--repeats", type=int, default=1,
                    help="interleaved repeats of every configuration; the summary takes the median")
    ap.add_argument("--load", default="idle", help="idle,busy: also time with one competing busy process")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--n-train", type=int, default=54000)
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--no-gpu", action="store_true")
    ap.add_argument("--out", default=str(HERE / "results" / "train_speed.json"))
    args = ap.parse_args(argv)
    cases = [c for c in args.cases.split(",") if c]
    bad = [c for c in cases if c not in CASES]
    if bad:
        print(f"error: unknown case(s) {bad}; choose from {list(CASES)}", file=sys.stderr)
        return 2
    loads = [x for x in args.load.split(",") if x]
    if any(x not in ("idle", "busy") for x in loads):
        print(f"error: --load takes idle and/or busy, got {args.load!r}", file=sys.stderr)
        return 2
    before = machine()
    raw = []
    configs = [(t, a, i, fc) for t in args.threads.split(",") if t for a in args.amp.split(",") if a
               for i in args.impl.split(",") if i for fc in args.float_cache.split(",") if fc]
    for load in loads:
        competitor = start_competitor() if load == "busy" else None
        try:
            for rep in range(args.repeats):
                for spec, amp, impl, fc in configs:
                    for c in cases:
                        threads, why = resolve_threads(spec, c)
                        r = time_case(c, device=torch.device("cpu"), threads=threads, steps=args.steps,
                                      warmup=args.warmup, n_train=args.n_train, amp=amp, impl=impl,
                                      float_cache=fc)
                        r.update(load=load, thread_spec=spec, thread_reason=why, repeat=rep)
                        raw.append(r)
                        print(f"cpu {load:4s} {spec:>7s}(x{threads}) {amp:4s} {impl:8s} cache={fc:4s} {c:16s} "
                              f"{r['ms_per_step']:8.2f} ms/step {r['images_per_s']:9.0f} img/s "
                              f"(process CPU time {r['cpu_ms_per_step']:.2f} ms/step)", flush=True)
        finally:
            if competitor is not None:
                competitor.kill()
                competitor.wait()
    rows = summarise_repeats(raw)
    if torch.cuda.is_available() and not args.no_gpu:
        for c in cases:
            r = time_case(c, device=torch.device("cuda"), threads=1, steps=args.steps, warmup=args.warmup,
                          n_train=args.n_train)
            rows.append(r)
            print(f"cuda     {c:16s} {r['ms_per_step']:8.2f} ms/step {r['images_per_s']:9.0f} img/s", flush=True)
    policy = {}
    for load in loads:
        for c in cases:
            mine = [r for r in rows if r["case"] == c and r.get("load") == load and r["amp"] == "none"
                    and r["optimizer_impl"] == configs[0][2] and r["float_cache"] == configs[0][3]]
            dflt = next((r for r in mine if r["thread_spec"] == "default"), None)
            if dflt and mine:
                best = min(mine, key=lambda r: r["ms_per_step"])
                policy[f"{c}_{load}"] = {"default_threads": dflt["threads"], "best_threads": best["threads"],
                                         "default_ms": dflt["ms_per_step"], "best_ms": best["ms_per_step"],
                                         "default_over_best": dflt["ms_per_step"] / best["ms_per_step"]}
                print(f"policy {c:16s} {load:4s} default x{dflt['threads']} {dflt['ms_per_step']:.2f} ms vs best "
                      f"x{best['threads']} {best['ms_per_step']:.2f} ms: {policy[f'{c}_{load}']['default_over_best']:.2f}x")
    impl_ratios = {}
    for r in rows:
        if r["device"] != "cpu":
            continue
        for field in ("optimizer_impl", "float_cache"):
            if r[field] == "auto":
                continue
            auto = next((v for v in rows if v["device"] == "cpu" and v[field] == "auto"
                         and all(v[k] == r[k] for k in ("case", "load", "thread_spec", "amp", "optimizer_impl",
                                                         "float_cache") if k != field)), None)
            if auto:
                key = f"{r['case']}_{r['load']}_{r['thread_spec']}_{r['amp']}_{field}={r[field]}_over_auto"
                impl_ratios[key] = {"wall": r["ms_per_step"] / auto["ms_per_step"],
                                    "cpu_time": r["cpu_ms_per_step"] / auto["cpu_ms_per_step"]}
                print(f"impl {key}: wall {impl_ratios[key]['wall']:.2f}x cpu {impl_ratios[key]['cpu_time']:.2f}x")
    ratios = {}
    for r in rows:
        if r["case"] == "disent":
            van = next((v for v in rows if v["case"] == "vanilla" and v["device"] == r["device"]
                        and v["threads"] == r["threads"] and v.get("load") == r.get("load")
                        and v["amp"] == r["amp"] and v["optimizer_impl"] == r["optimizer_impl"]
                        and v["float_cache"] == r["float_cache"]), None)
            if van:
                ratios[f"{r['device']}_x{r['threads']}_{r.get('load', 'idle')}_{r['amp']}_{r['optimizer_impl']}_cache={r['float_cache']}"] = {
                    "wall": r["ms_per_step"] / van["ms_per_step"],
                    "cpu_time": r["cpu_ms_per_step"] / van["cpu_ms_per_step"]}
    from debiaskit import __version__
    from debiaskit.io import write_json

    payload = {
        "debiaskit_version": __version__,
        "what": "one training step at batch 256 on Colored-MNIST-shaped uint8 data (index + transform + update)",
        "machine": before, "load_average_after": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "results": rows, "repeats": raw if args.repeats > 1 else None, "disent_over_vanilla": ratios,
        "optimizer_impl_over_auto": impl_ratios, "thread_policy": policy,
        "targets": {"disent_ms_per_step_1_core": 12.5, "lff_ms_per_step_1_core": 13.5,
                    "default_over_best_max": 1.2},
        "command": "python benchmarks/train_speed.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    write_json(args.out, payload)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
