"""Sweeps: a grid of independent training runs in deterministic, content-addressed run directories.

A sweep file (YAML)::

    name: cmnist                      # optional label
    datasets:                         # a list of names, or a mapping name -> dataset options
      colored_mnist: {severity: 4}
    ratios: [0.005, 0.01, 0.02, 0.05] # optional; sets dataset.ratio (omit for datasets without a ratio)
    methods:                          # a list of names, or a mapping name -> {hparams: {...}, train: {...}}
      vanilla: {hparams: {model: mlp_disent, lr: 0.01, steps: 50000}}
      lff: {}
      disent: {}
    seeds: [0, 1, 2]
    base:                             # optional: a run config merged under every run (hparams/train/device)
      train: {selection: [last, best_val_accuracy, oracle_test]}

Every grid cell becomes one resolved run config (:func:`debiaskit.experiments.config.resolve_config`). Its run
directory is ``<out>/runs/<method>-<dataset>[-r<ratio>]-s<seed>-<hash>``, where ``hash`` is the first 12 hex
digits of the SHA-256 of the resolved config (progress display excluded) — the same config always maps to
the same directory, and a changed hparam gives a new one. Re-running a sweep skips runs whose
``result.json`` exists and resumes interrupted ones from their checkpoint.

``disent`` gets the official ratio-specific settings (:func:`debiaskit.methods.disent.ratio_overrides`,
e.g. Corrupted CIFAR-10 0.5 %: lr 5e-4, λ 1) unless the sweep sets those keys itself.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import multiprocessing as mp
import os
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from debiaskit.errors import DebiaskitError
from debiaskit.experiments.config import load_config_file, resolve_config
from debiaskit.io import to_json, write_json

log = logging.getLogger(__name__)

SWEEP_KEYS = ("name", "datasets", "ratios", "methods", "seeds", "base")


@dataclass(frozen=True)
class SweepRun:
    """One cell of the grid: its resolved config and run directory."""

    key: str
    config: dict[str, Any]
    run_dir: Path

    @property
    def done(self) -> bool:
        return (self.run_dir / "result.json").exists()


def config_hash(cfg: dict[str, Any]) -> str:
    """First 12 hex digits of the SHA-256 of the resolved config (``train.progress`` excluded)."""
    c = {**cfg, "train": {k: v for k, v in cfg["train"].items() if k != "progress"}}
    return hashlib.sha256(to_json(c, indent=None).encode()).hexdigest()[:12]


def _as_mapping(value: Any, what: str) -> dict[str, dict[str, Any]]:
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list):
        if not value or not all(isinstance(v, str) for v in value):
            raise DebiaskitError(f"sweep {what} must be a non-empty list of names or a mapping")
        return {v: {} for v in value}
    if isinstance(value, dict) and value:
        out = {}
        for k, v in value.items():
            if v is not None and not isinstance(v, dict):
                raise DebiaskitError(f"sweep {what}.{k} must be a mapping of options")
            out[str(k)] = dict(v or {})
        return out
    raise DebiaskitError(f"sweep {what} must be a non-empty list of names or a mapping")


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(a)
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _method_ratio_defaults(method: str, dataset: str, ratio: float | None) -> dict[str, Any]:
    if method == "disent":
        from debiaskit.methods.disent import ratio_overrides

        return ratio_overrides(dataset, ratio)
    return {}


def expand_sweep(
    spec: dict[str, Any], out: str | Path, *, ratios: list[float] | None = None, seeds: list[int] | None = None,
    methods: list[str] | None = None,
) -> list[SweepRun]:
    """Resolve every grid cell of a sweep spec (optionally restricted to some ratios/seeds/methods)."""
    if not isinstance(spec, dict):
        raise DebiaskitError("a sweep file must hold a mapping at the top level")
    unknown = sorted(set(spec) - set(SWEEP_KEYS))
    if unknown:
        raise DebiaskitError(f"unknown sweep key(s) {', '.join(unknown)}; valid: {', '.join(SWEEP_KEYS)}")
    for k in ("datasets", "methods"):
        if k not in spec:
            raise DebiaskitError(f"the sweep file needs {k!r}")
    datasets = _as_mapping(spec["datasets"], "datasets")
    meths = _as_mapping(spec["methods"], "methods")
    for name, opts in meths.items():
        bad = sorted(set(opts) - {"hparams", "train"})
        if bad:
            raise DebiaskitError(f"sweep methods.{name}: unknown key(s) {', '.join(bad)}; valid: hparams, train")
    grid_ratios = spec.get("ratios")
    if grid_ratios is not None and (not isinstance(grid_ratios, list) or not grid_ratios):
        raise DebiaskitError("sweep ratios must be a non-empty list")
    grid_seeds = spec.get("seeds", [0])
    if not isinstance(grid_seeds, list) or not grid_seeds or not all(isinstance(s, int) and s >= 0 for s in grid_seeds):
        raise DebiaskitError("sweep seeds must be a non-empty list of non-negative integers")
    base = spec.get("base") or {}
    if not isinstance(base, dict):
        raise DebiaskitError("sweep base must be a mapping")

    def _pick(sel: list | None, grid: list | None, what: str) -> list | None:
        if sel is None:
            return grid
        if grid is None:
            raise DebiaskitError(f"--{what} given but the sweep file has no {what}")
        missing = [v for v in sel if not any(_same(v, g) for g in grid)]
        if missing:
            raise DebiaskitError(f"{what} {missing} not in the sweep grid {grid}")
        return [g for g in grid if any(_same(v, g) for v in sel)]

    use_ratios = _pick(ratios, grid_ratios, "ratios")
    use_seeds = _pick(seeds, grid_seeds, "seeds")
    if methods is not None:
        missing = [m for m in methods if m not in meths]
        if missing:
            raise DebiaskitError(f"methods {missing} not in the sweep grid {list(meths)}")
        meths = {m: meths[m] for m in meths if m in methods}

    out = Path(out)
    runs: list[SweepRun] = []
    for ds_name, ds_opts in datasets.items():
        for ratio in use_ratios if use_ratios is not None else [None]:
            for m, mopts in meths.items():
                for seed in use_seeds:
                    user = _merge(base, {"dataset": {"name": ds_name, **ds_opts}, "method": m, "seed": seed})
                    if ratio is not None:
                        user["dataset"]["ratio"] = ratio
                    auto = _method_ratio_defaults(m, ds_name, ratio)
                    given = {**(base.get("hparams") or {}), **(mopts.get("hparams") or {})}
                    user = _merge(user, {"hparams": {k: v for k, v in auto.items() if k not in given}})
                    user = _merge(user, {k: v for k, v in mopts.items()})
                    user.setdefault("train", {})["progress"] = False
                    cfg = resolve_config(user)
                    tag = f"{m}-{ds_name}" + (f"-r{ratio:g}" if ratio is not None else "") + f"-s{seed}"
                    run_dir = out / "runs" / f"{tag}-{config_hash(cfg)}"
                    if not run_dir.exists():
                        run_dir = _compatible_dir(out / "runs", tag, cfg) or run_dir
                    runs.append(SweepRun(tag, cfg, run_dir))
    keys = [r.run_dir for r in runs]
    if len(set(keys)) != len(keys):
        raise DebiaskitError("the sweep grid has duplicate cells")
    return runs


def _missing_paths(old: dict[str, Any], new: dict[str, Any], prefix: tuple = ()) -> list[tuple] | None:
    """Key paths of ``new`` absent from ``old``; ``None`` when a key present in both differs."""
    missing: list[tuple] = []
    for k, v in new.items():
        if k not in old:
            missing.append((*prefix, k))
        elif isinstance(v, dict) and isinstance(old[k], dict):
            sub = _missing_paths(old[k], v, (*prefix, k))
            if sub is None:
                return None
            missing += sub
        elif to_json(old[k], indent=None) != to_json(v, indent=None):
            return None
    if set(old) - set(new):
        return None
    return missing


def _get(d: dict[str, Any], path: tuple) -> Any:
    for k in path:
        d = d[k]
    return d


def _compatible_dir(runs_root: Path, tag: str, cfg: dict[str, Any]) -> Path | None:
    """A run directory of ``tag`` written by an older debiaskit whose config lacks only keys added later.

    Accepted only when every key missing from the stored config has its *default* value in ``cfg`` (so the
    old run did what the new config asks); the directory is then reused instead of starting over.
    """
    import yaml

    if not runs_root.is_dir():
        return None
    comparable = {**cfg, "train": {k: v for k, v in cfg["train"].items() if k != "progress"}}
    defaults = None
    for cand in sorted(runs_root.glob(f"{tag}-*")):
        if not (cand / "config.yaml").is_file() or cand.name.rsplit("-", 1)[0] != tag:
            continue
        old = yaml.safe_load((cand / "config.yaml").read_text()) or {}
        old = {**old, "train": {k: v for k, v in (old.get("train") or {}).items() if k != "progress"}}
        missing = _missing_paths(old, comparable)
        if not missing:
            continue  # None: a real difference; []: identical (would have had the same hash)
        if defaults is None:
            defaults = resolve_config({"dataset": {"name": cfg["dataset"]["name"]}, "method": cfg["method"]})
        try:
            if all(to_json(_get(comparable, p), indent=None) == to_json(_get(defaults, p), indent=None) for p in missing):
                return cand
        except KeyError:
            continue
    return None


def _same(a: Any, b: Any) -> bool:
    try:
        return abs(float(a) - float(b)) < 1e-12
    except (TypeError, ValueError):
        return a == b


def load_sweep(path: str | Path) -> dict[str, Any]:
    return load_config_file(path)


def _run_one(cfg: dict[str, Any], run_dir: str, threads: int) -> tuple[str, str | None, float]:
    """Worker: train one run; returns (run_dir, error or None, seconds)."""
    import torch

    torch.set_num_threads(max(1, threads))
    from debiaskit.train.trainer import run_training

    t0 = time.perf_counter()
    try:
        _upgrade_config_file(cfg, Path(run_dir))
        run_training(cfg, run_dir)
    except DebiaskitError as e:
        return run_dir, str(e), time.perf_counter() - t0
    except Exception:  # a failing run must not stop the other cells of the grid
        return run_dir, traceback.format_exc(limit=5), time.perf_counter() - t0
    return run_dir, None, time.perf_counter() - t0


def run_sweep(runs: list[SweepRun], out: str | Path, *, jobs: int = 1, threads: int | None = None,
              echo: Any = print) -> dict[str, Any]:
    """Run the pending cells (``jobs`` processes in parallel); returns and writes ``<out>/sweep.json``."""
    if jobs < 1:
        raise DebiaskitError(f"--jobs must be >= 1, got {jobs}")
    out = Path(out)
    if threads is None:
        env = os.environ.get("DEBIASKIT_NUM_THREADS")
        threads = int(env) if env else max(1, (os.cpu_count() or 1) // jobs)
    pending = [r for r in runs if not r.done]
    echo(f"{len(runs)} runs, {len(runs) - len(pending)} already finished, {len(pending)} to run ({jobs} job(s))")
    manifest = {"runs": [{"key": r.key, "run_dir": str(r.run_dir), "config_hash": r.run_dir.name.rsplit('-', 1)[1]}
                         for r in runs]}
    status: dict[str, dict[str, Any]] = {str(r.run_dir): {"status": "done (skipped)"} for r in runs if r.done}
    if pending:
        out.mkdir(parents=True, exist_ok=True)
    if jobs == 1 or len(pending) <= 1:
        results = (_run_one(r.config, str(r.run_dir), threads) for r in pending)
        _drain(results, status, echo)
    else:
        ctx = mp.get_context("spawn")
        with ctx.Pool(processes=min(jobs, len(pending)), maxtasksperchild=1) as pool:
            it = pool.imap_unordered(_star_run_one, [(r.config, str(r.run_dir), threads) for r in pending])
            _drain(it, status, echo)
    for entry in manifest["runs"]:
        entry.update(status.get(entry["run_dir"], {"status": "pending"}))
    failed = [e for e in manifest["runs"] if e["status"] == "failed"]
    manifest["n_failed"] = len(failed)
    if pending or (out / "sweep.json").exists():
        write_json(out / "sweep.json", manifest)
    return manifest


def _upgrade_config_file(cfg: dict[str, Any], run_dir: Path) -> None:
    """Rewrite an older run's config.yaml with the keys added since (at their defaults) before resuming it."""
    f = run_dir / "config.yaml"
    if not f.is_file() or run_dir.name.endswith(config_hash(cfg)):
        return
    if _compatible_dir(run_dir.parent, run_dir.name.rsplit("-", 1)[0], cfg) == run_dir:
        from debiaskit.io import write_yaml
        from debiaskit.train.trainer import _comparable

        write_yaml(f, _comparable(cfg))


def _star_run_one(args: tuple[dict[str, Any], str, int]) -> tuple[str, str | None, float]:
    return _run_one(*args)


def _drain(results: Any, status: dict[str, dict[str, Any]], echo: Any) -> None:
    for run_dir, err, secs in results:
        name = Path(run_dir).name
        if err is None:
            status[run_dir] = {"status": "done", "seconds": round(secs, 1)}
            echo(f"done   {name} ({secs:.0f} s)")
        else:
            status[run_dir] = {"status": "failed", "error": err.strip().splitlines()[-1]}
            echo(f"FAILED {name}: {err.strip().splitlines()[-1]}")
