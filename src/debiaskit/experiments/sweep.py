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
    n_hparams: 1                      # optional: 1 = the registry defaults only; K > 1 adds K - 1 random draws
    base:                             # optional: a run config merged under every run (hparams/train/device)
      train: {selection: [last, best_val_accuracy, oracle_test]}

Every grid cell becomes one resolved run config (:func:`debiaskit.experiments.config.resolve_config`), with
its hyper-parameters from the one registry (:func:`debiaskit.experiments.hparams.resolve_hparams`, per-ratio
official values included) — exactly what ``debiaskit train`` resolves for the same cell. Its run directory is
``<out>/runs/<run name>`` (:func:`debiaskit.runkey.run_name`, ending in the run key). Re-running a
sweep skips runs whose ``result.json`` exists — or, with ``records``, whose record exists with the same run
key — and resumes interrupted ones from their checkpoint.

With ``n_hparams: K`` each (dataset, ratio, method) cell gets settings ``hparams_seed = 0 .. K-1``: 0 is the
registry default, the others are random draws from the method's search space (DomainBed style), identical on
every machine; ``debiaskit collect`` then selects among them per rule (sweep-level selection).
"""

from __future__ import annotations

import copy
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
from debiaskit.experiments.hparams import same_ratio
from debiaskit.experiments.records import export_record, find_record
from debiaskit.runkey import run_key, run_name
from debiaskit.io import write_json
from debiaskit.lock import RunLockedError

log = logging.getLogger(__name__)

#: prefix of the message of a run skipped because another process holds its lock
LOCKED = "locked: "

SWEEP_KEYS = ("name", "datasets", "ratios", "methods", "seeds", "n_hparams", "base")


@dataclass(frozen=True)
class SweepRun:
    """One cell of the grid: its resolved config and run directory."""

    key: str
    config: dict[str, Any]
    run_dir: Path
    records_dir: Path | None = None

    @property
    def run_key(self) -> str:
        return run_key(self.config)

    @property
    def record(self) -> Path | None:
        return find_record(self.records_dir, self.run_key) if self.records_dir is not None else None

    @property
    def done(self) -> bool:
        return (self.run_dir / "result.json").exists() or self.record is not None


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


def expand_sweep(
    spec: dict[str, Any], out: str | Path, *, ratios: list[float] | None = None, seeds: list[int] | None = None,
    methods: list[str] | None = None, records: str | Path | None = None, data_dir: str | None = None,
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
    if grid_ratios is not None:
        from debiaskit.experiments.config import parse_value

        grid_ratios = [parse_value(r) if isinstance(r, str) else r for r in grid_ratios]
        bad = [r for r in grid_ratios if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 < r < 1]
        if bad:
            raise DebiaskitError(f"sweep ratios must be numbers in (0, 1), got {bad}")
    n_hparams = spec.get("n_hparams", 1)
    if isinstance(n_hparams, bool) or not isinstance(n_hparams, int) or n_hparams < 1:
        raise DebiaskitError(f"sweep n_hparams must be a positive integer, got {n_hparams!r}")
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
    records_dir = Path(records) if records is not None else None
    runs: list[SweepRun] = []
    for ds_name, ds_opts in datasets.items():
        for ratio in use_ratios if use_ratios is not None else [None]:
            for m, mopts in meths.items():
                for h in range(n_hparams):
                    for seed in use_seeds:
                        user = _merge(base, {"dataset": {"name": ds_name, **ds_opts}, "method": m, "seed": seed,
                                             "hparams_seed": h})
                        if ratio is not None:
                            user["dataset"]["ratio"] = ratio
                        if data_dir is not None:
                            user["dataset"]["data_dir"] = data_dir
                        user = _merge(user, {k: v for k, v in mopts.items()})
                        user.setdefault("train", {}).setdefault("progress", False)
                        cfg = resolve_config(user)
                        name = run_name(cfg)
                        runs.append(SweepRun(name.rsplit("-", 1)[0], cfg, out / "runs" / name, records_dir))
    keys = [r.run_dir for r in runs]
    if len(set(keys)) != len(keys):
        raise DebiaskitError("the sweep grid has duplicate cells")
    return runs


def _same(a: Any, b: Any) -> bool:
    return same_ratio(a, b) if not isinstance(a, str) else a == b


def load_sweep(path: str | Path) -> dict[str, Any]:
    return load_config_file(path)


def run_one(cfg: dict[str, Any], run_dir: str, *, jobs: int = 1, threads: int | None = None,
            records_dir: str | None = None) -> tuple[str, str | None, float]:
    """Train one sweep cell (in a worker process or task); returns (run_dir, error or None, seconds).

    Sweeps never fall back to a toy-sized data source (``DEBIASKIT_STRICT_DATA=1``). With ``records_dir`` the
    finished run's record is exported there.
    """
    old_strict = os.environ.get("DEBIASKIT_STRICT_DATA")
    os.environ["DEBIASKIT_STRICT_DATA"] = "1"
    try:
        return _run_one(cfg, run_dir, jobs=jobs, threads=threads, records_dir=records_dir)
    finally:  # in-process runs must not change the caller's environment
        if old_strict is None:
            os.environ.pop("DEBIASKIT_STRICT_DATA", None)
        else:
            os.environ["DEBIASKIT_STRICT_DATA"] = old_strict


def _run_one(cfg: dict[str, Any], run_dir: str, *, jobs: int, threads: int | None,
             records_dir: str | None) -> tuple[str, str | None, float]:
    if threads is not None:
        cfg = {**cfg, "train": {**cfg["train"], "threads": int(threads)}}
    from debiaskit.train.trainer import run_training

    t0 = time.perf_counter()
    try:
        run_training(cfg, run_dir, jobs=jobs)
        if records_dir is not None:
            export_record(run_dir, records_dir)
    except RunLockedError as e:  # another sweep/trainer owns this run: leave it to them
        return run_dir, f"{LOCKED}{e}", time.perf_counter() - t0
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
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise DebiaskitError(f"--threads must be a positive integer, got {threads!r}")
    out = Path(out)
    # a finished run directory whose record is missing: export it (no training needed)
    for r in runs:
        if r.records_dir is not None and (r.run_dir / "result.json").exists() and r.record is None:
            export_record(r.run_dir, r.records_dir)
    pending = [r for r in runs if not r.done]
    echo(f"{len(runs)} runs, {len(runs) - len(pending)} already finished, {len(pending)} to run ({jobs} job(s))")
    manifest: dict[str, Any] = {"runs": [{"key": r.key, "run_dir": str(r.run_dir), "run_key": r.run_key} for r in runs]}
    status: dict[str, dict[str, Any]] = {str(r.run_dir): {"status": "done (skipped)"} for r in runs if r.done}
    if pending:
        out.mkdir(parents=True, exist_ok=True)
    rec = lambda r: str(r.records_dir) if r.records_dir is not None else None  # noqa: E731
    progress = _Progress(len(pending), echo)
    if jobs == 1 or len(pending) <= 1:
        results = (run_one(r.config, str(r.run_dir), jobs=1, threads=threads, records_dir=rec(r)) for r in pending)
        _drain(results, status, progress)
    else:
        ctx = mp.get_context("spawn")
        with ctx.Pool(processes=min(jobs, len(pending)), maxtasksperchild=1) as pool:
            it = pool.imap_unordered(_star_run_one, [(r.config, str(r.run_dir), jobs, threads, rec(r)) for r in pending])
            _drain(it, status, progress)
    for entry in manifest["runs"]:
        entry.update(status.get(entry["run_dir"], {"status": "pending"}))
    failed = [e for e in manifest["runs"] if e["status"] == "failed"]
    manifest["n_failed"] = len(failed)
    if pending or (out / "sweep.json").exists():
        write_json(out / "sweep.json", manifest)
    return manifest


def _star_run_one(args: tuple[dict[str, Any], str, int, int | None, str | None]) -> tuple[str, str | None, float]:
    cfg, run_dir, jobs, threads, records_dir = args
    return run_one(cfg, run_dir, jobs=jobs, threads=threads, records_dir=records_dir)


class _Progress:
    """One aggregate line per finished run: done / failed / left, ETA from the mean run time so far."""

    def __init__(self, total: int, echo: Any) -> None:
        self.total, self.echo = total, echo
        self.done = self.failed = 0
        self.t0 = time.perf_counter()

    def finished(self, name: str, err: str | None, secs: float) -> None:
        if err is None:
            self.done += 1
        else:
            self.failed += 1
        n = self.done + self.failed
        left = self.total - n
        rate = (time.perf_counter() - self.t0) / n if n else float("nan")
        eta = f", ETA {rate * left / 60:.0f} min" if left else ""
        head = f"done   {name} ({secs:.0f} s)" if err is None else f"FAILED {name}: {err.strip().splitlines()[-1]}"
        self.echo(f"{head}  [{self.done} done, {self.failed} failed, {left} left{eta}]")


def _drain(results: Any, status: dict[str, dict[str, Any]], progress: _Progress) -> None:
    for run_dir, err, secs in results:
        name = Path(run_dir).name
        if err is None:
            status[run_dir] = {"status": "done", "seconds": round(secs, 1)}
        elif err.startswith(LOCKED):
            status[run_dir] = {"status": "skipped (locked by another process)", "owner": err[len(LOCKED):]}
            progress.echo(f"skip   {name}: {err[len(LOCKED):]}")
            continue
        else:
            status[run_dir] = {"status": "failed", "error": err.strip().splitlines()[-1]}
        progress.finished(name, err, secs)
