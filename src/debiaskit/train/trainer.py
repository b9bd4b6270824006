"""The step-based trainer.

``run_training(config, out_dir)`` trains one method on one dataset build and writes the run directory:

* ``config.yaml`` — the full resolved config;
* ``metrics.jsonl`` — one line per (evaluation step, split): all metrics, wall time, steps/s, peak memory;
* ``checkpoint.pt`` — everything needed to resume (weights, optimisers, schedulers, sampler and RNG state,
  selection state), written atomically every ``train.checkpoint_every`` steps;
* ``model_<rule>.pt`` — the method's weights selected by each model-selection rule;
* ``result.json`` — final and selected metrics, selection rules, seed, data fingerprints, library version,
  which labels the method consumed, wall time.

Batches are drawn on the device from the in-memory uint8 tensors (no DataLoader, no per-image PIL). Re-running
the same command on an interrupted run directory resumes from the last checkpoint and produces the same final
weights as an uninterrupted run (on CPU, for a given seed).
"""

from __future__ import annotations

import logging
import platform
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from debiaskit import __version__
from debiaskit.data.augment import make_batch_transform
from debiaskit.data.base import DatasetSplits
from debiaskit.data.registry import get_splits
from debiaskit.errors import DebiaskitError
from debiaskit.io import append_jsonl, read_jsonl, to_json, torch_save, write_json, write_text, write_yaml
from debiaskit.methods.base import Batch, Method, TrainContext
from debiaskit.methods.registry import get_method
from debiaskit.train.evaluate import predict_logits, split_metrics
from debiaskit.train.sampler import EpochSampler
from debiaskit.train.seed import resolve_device, rng_state, seed_everything, set_rng_state
from debiaskit.train.selection import SELECTION_RULES, SelectionTracker, default_rules, validate_rules

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    out_dir: Path
    result: dict[str, Any]
    resumed_from: int = 0
    already_done: bool = False


def build_data(cfg: dict[str, Any]) -> DatasetSplits:
    """Build the dataset splits of a resolved config, then let the method adapt them."""
    ds_opts = {k: v for k, v in cfg["dataset"].items() if k != "name"}
    splits = get_splits(cfg["dataset"]["name"], **ds_opts)
    if "train" not in splits:
        raise DebiaskitError(f"dataset {cfg['dataset']['name']!r} has no train split")
    return get_method(cfg["method"]).prepare_splits(splits, cfg["hparams"])


def build_method(cfg: dict[str, Any], splits: DatasetSplits, device: torch.device, generator: torch.Generator) -> Method:
    train = splits["train"]
    channels_last = bool(cfg["train"].get("channels_last", False))
    ctx = TrainContext(
        dataset=cfg["dataset"]["name"],
        num_classes=train.num_classes,
        num_bias=train.num_bias,
        in_shape=train.image_shape,
        n_train=len(train),
        train_targets=train.targets.to(device),
        train_bias=train.bias.to(device),
        device=device,
        generator=generator,
        multilabel=train.multilabel,
        dataset_info=dict(train.info),
        channels_last=channels_last,
    )
    return get_method(cfg["method"])(ctx, cfg["hparams"]).to(device)


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024 if platform.system() != "Darwin" else rss / 2**20


def prepare_out_dir(out_dir: Path, cfg: dict[str, Any]) -> str:
    """Check the run directory; returns ``new``, ``resume`` or ``done``. Creates nothing."""
    if out_dir.exists() and not out_dir.is_dir():
        raise DebiaskitError(f"output path {out_dir} exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        cfg_file = out_dir / "config.yaml"
        if not cfg_file.exists():
            raise DebiaskitError(f"output directory {out_dir} is not empty and holds no debiaskit run")
        old = yaml.safe_load(cfg_file.read_text())
        if to_json(old) != to_json(_comparable(cfg)):
            raise DebiaskitError(
                f"output directory {out_dir} holds a run with a different config; choose another --out"
            )
        if (out_dir / "result.json").exists():
            return "done"
        return "resume" if (out_dir / "checkpoint.pt").exists() else "new"
    # the parent must be creatable/writable: test without leaving anything behind
    parent = out_dir.parent
    while not parent.exists():
        parent = parent.parent
    import os

    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise DebiaskitError(f"cannot write the output directory {out_dir}: {parent} is not writable")
    return "new"


def _comparable(cfg: dict[str, Any]) -> dict[str, Any]:
    """The config as stored (progress display does not change the run)."""
    c = {**cfg, "train": {k: v for k, v in cfg["train"].items() if k != "progress"}}
    return yaml.safe_load(yaml.safe_dump(c, sort_keys=False))


def run_training(cfg: dict[str, Any], out_dir: str | Path, *, splits: DatasetSplits | None = None) -> RunResult:
    """Train according to a *resolved* config (see :func:`debiaskit.experiments.config.resolve_config`)."""
    out_dir = Path(out_dir)
    device = resolve_device(cfg["device"])
    hp, tr = cfg["hparams"], cfg["train"]
    state = prepare_out_dir(out_dir, cfg)
    if state == "done":
        import json

        return RunResult(out_dir, json.loads((out_dir / "result.json").read_text()), already_done=True)

    splits = splits if splits is not None else build_data(cfg)
    train = splits["train"]
    multilabel = train.multilabel
    split_names = list(splits)
    rules = validate_rules(tr["selection"] or default_rules(split_names, multilabel=multilabel), split_names)
    report_rule = tr["report"] or next((r for r in rules if r not in ("last", "oracle_test")), "last")
    if report_rule not in rules:
        raise DebiaskitError(f"train.report {report_rule!r} is not among the selection rules {rules}")
    eval_splits = tr["eval_splits"] or [s for s in split_names if s != "train"]
    if tr["eval_train"] and "train" not in eval_splits:
        eval_splits = ["train", *eval_splits]
    for s in eval_splits:
        splits[s]  # raises a clear error for unknown split names

    seed_everything(cfg["seed"])
    generator = torch.Generator(device=device)
    generator.manual_seed(cfg["seed"])
    method = build_method(cfg, splits, device, generator)  # validates model/optimizer names
    method.run_dir = out_dir

    on_device = tr["data_on_device"] and device.type == "cuda"
    images = train.images.to(device) if on_device else train.images
    targets, bias = train.targets.to(device), train.bias.to(device)
    transform = make_batch_transform(train.info, train=True)
    sampler = EpochSampler(len(train), hp["batch_size"], generator=generator, device=images.device)
    tracker = SelectionTracker(rules)

    out_dir.mkdir(parents=True, exist_ok=True)
    start_step, elapsed_prev = 0, 0.0
    if state == "resume":
        ckpt = torch.load(out_dir / "checkpoint.pt", map_location=device, weights_only=False)
        method.load_state_dict(ckpt["method"])
        for k, o in method.optimizers.items():
            o.load_state_dict(ckpt["optimizers"][k])
        for k, s in method.schedulers.items():
            s.load_state_dict(ckpt["schedulers"][k])
        sampler.load_state_dict(ckpt["sampler"])
        generator.set_state(ckpt["generator"].to(generator.device) if device.type == "cuda" else ckpt["generator"])
        set_rng_state(ckpt["rng"])
        tracker.load_state_dict(ckpt["tracker"])
        start_step, elapsed_prev = int(ckpt["step"]), float(ckpt["elapsed"])
        kept = [r for r in read_jsonl(out_dir / "metrics.jsonl") if r.get("step", 0) <= start_step]
        write_text(out_dir / "metrics.jsonl", "".join(to_json(r, indent=None) + "\n" for r in kept))
        log.info("resuming %s from step %d", out_dir, start_step)
    else:
        write_yaml(out_dir / "config.yaml", _comparable(cfg))
        write_text(out_dir / "metrics.jsonl", "")

    steps = int(hp["steps"])
    t0 = time.perf_counter()
    train_time, train_steps = 0.0, 0
    accum: dict[str, torch.Tensor] = {}
    n_accum = 0
    bar = None
    if tr["progress"] and sys.stderr.isatty():
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, initial=start_step, desc=f"{cfg['method']}", unit="step", leave=False, dynamic_ncols=True)

    def evaluate(step: int) -> dict[str, dict[str, float]]:
        nonlocal accum, n_accum
        results: dict[str, dict[str, float]] = {}
        wall = elapsed_prev + time.perf_counter() - t0
        sps = train_steps / train_time if train_time > 0 else float("nan")
        train_logs = {k: float(v) / max(n_accum, 1) for k, v in accum.items()}
        accum, n_accum = {}, 0
        for s in eval_splits:
            with autocast:
                logits = predict_logits(method, splits[s], device=device, batch_size=tr["eval_batch_size"])
            results[s] = split_metrics(logits, splits[s])
            append_jsonl(
                out_dir / "metrics.jsonl",
                {"step": step, "split": s, **results[s], "train_logs": train_logs, "wall_time_s": wall,
                 "steps_per_s": sps, "peak_memory_mb": _peak_memory_mb(device)},
            )
        for rule in tracker.update(step, results):
            if rule != "last":
                torch_save(out_dir / f"model_{rule}.pt", method.state_dict())
        return results

    stopped_at: int | None = None

    def checkpoint(step: int) -> None:
        torch_save(
            out_dir / "checkpoint.pt",
            {
                "step": step,
                "method": method.state_dict(),
                "optimizers": {k: o.state_dict() for k, o in method.optimizers.items()},
                "schedulers": {k: s.state_dict() for k, s in method.schedulers.items()},
                "sampler": sampler.state_dict(),
                "generator": generator.get_state(),
                "rng": rng_state(),
                "tracker": tracker.state_dict(),
                "elapsed": elapsed_prev + time.perf_counter() - t0,
            },
        )

    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=tr.get("amp") == "bf16")
    memory_format = torch.channels_last if tr.get("channels_last") else torch.contiguous_format
    last_results: dict[str, dict[str, float]] = {}
    for step in range(start_step + 1, steps + 1):
        ts = time.perf_counter()
        idx = method.sample_indices(step)
        if idx is None:
            idx = sampler.next()
        idx_d = idx.to(images.device)
        x = transform(images.index_select(0, idx_d).to(device, non_blocking=True), generator if images.device == device else None)
        if memory_format is torch.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=memory_format)
        idx = idx.to(device)
        with autocast:
            logs = method.update(Batch(idx=idx, x=x, y=targets[idx], b=bias[idx]), step)
        method.on_step_end(step)
        for k, v in logs.items():
            v = v.detach() if isinstance(v, torch.Tensor) else torch.tensor(float(v))
            accum[k] = accum[k] + v if k in accum else v.clone()
        n_accum += 1
        train_time += time.perf_counter() - ts
        train_steps += 1
        if bar is not None:
            bar.update(1)
        if step % tr["eval_every"] == 0 or step == steps:
            last_results = evaluate(step)
            if bar is not None and last_results:
                first = next(iter(last_results.values()))
                bar.set_postfix({k: f"{v:.3f}" for k, v in first.items() if k in ("accuracy", "unbiased_accuracy", "mAP")})
            if method.on_eval(step, last_results, out_dir) and step < steps:
                stopped_at = step
        if step % tr["checkpoint_every"] == 0 or step == steps or stopped_at is not None:
            checkpoint(step)
        if stopped_at is not None:
            log.info("%s asked to stop early at step %d", cfg["method"], step)
            break
    if bar is not None:
        bar.close()

    torch_save(out_dir / "model_last.pt", method.state_dict())
    wall = elapsed_prev + time.perf_counter() - t0
    summary = tracker.summary()
    result = {
        "debiaskit_version": __version__,
        "method": cfg["method"],
        "dataset": cfg["dataset"]["name"],
        "dataset_options": {k: v for k, v in cfg["dataset"].items() if k != "name"},
        "seed": cfg["seed"],
        "steps": steps,
        "early_stopped_at_step": stopped_at,
        "labels_consumed": list(type(method).labels_consumed),
        "uses_bias_labels": method.uses_bias_labels,
        "evaluated_model": type(method).evaluated_model,
        "data": {
            "fingerprint": splits.fingerprint,
            "splits": {k: v.summary() for k, v in splits.items()},
            "info": {k: v for k, v in train.info.items() if isinstance(v, (str, int, float, bool, type(None)))},
        },
        "selection_rules": rules,
        "reported_selection": report_rule,
        "reported": summary.get(report_rule, {}).get("metrics", {}),
        "selection": summary,
        "final": last_results or summary.get("last", {}).get("metrics", {}),
        "wall_time_s": wall,
        "steps_per_s": train_steps / train_time if train_time > 0 else None,
        "device": str(device),
        "torch_version": torch.__version__,
        "peak_memory_mb": _peak_memory_mb(device),
        "config": _comparable(cfg),
    }
    if "oracle_test" in summary:
        result["oracle_note"] = SELECTION_RULES["oracle_test"].label
    write_json(out_dir / "result.json", result)
    return RunResult(out_dir, result, resumed_from=start_step)
