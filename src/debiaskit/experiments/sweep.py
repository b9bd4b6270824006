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

import contextlib
import copy
import logging
import multiprocessing as mp
import multiprocessing.connection
import os
import signal
import threading
import time
import traceback
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from debiaskit.errors import DebiaskitError
from debiaskit.experiments.config import load_config_file, parse_value, resolve_config
from debiaskit.experiments.hparams import same_ratio
from debiaskit.experiments.records import export_record, find_record
from debiaskit.io import write_json
from debiaskit.lock import RunLockedError
from debiaskit.runkey import run_key, run_name
from debiaskit.train.provenance import check_provenance, run_provenance
from debiaskit.train.trainer import RunInterrupted, run_training

log = logging.getLogger(__name__)

#: prefix of the message of a run skipped because another process holds its lock
LOCKED = "locked: "
#: prefix of the message of a run stopped by SIGTERM / SIGINT (it checkpointed; the same command resumes it)
INTERRUPTED = "interrupted: "
#: seconds a sweep waits for its workers to checkpoint and exit after forwarding a signal, before killing them
STOP_GRACE_S = 120.0
_POLL_S = 0.2

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
            records_dir: str | None = None, wait_lock: float | None = None) -> tuple[str, str | None, float]:
    """Train one sweep cell (in a worker process or task); returns (run_dir, error or None, seconds).

    Sweeps never fall back to a toy-sized data source (``DEBIASKIT_STRICT_DATA=1``). With ``records_dir`` the
    finished run's record is exported there. ``wait_lock``: wait that many seconds (``math.inf``: no limit)
    for a run another process holds (see :func:`debiaskit.train.trainer.run_training`). The error of a run
    another process holds starts with :data:`LOCKED`, that of a run stopped by SIGTERM / SIGINT (checkpointed)
    with :data:`INTERRUPTED`.
    """
    old_strict = os.environ.get("DEBIASKIT_STRICT_DATA")
    os.environ["DEBIASKIT_STRICT_DATA"] = "1"
    try:
        return _run_one(cfg, run_dir, jobs=jobs, threads=threads, records_dir=records_dir, wait_lock=wait_lock)
    finally:  # in-process runs must not change the caller's environment
        if old_strict is None:
            os.environ.pop("DEBIASKIT_STRICT_DATA", None)
        else:
            os.environ["DEBIASKIT_STRICT_DATA"] = old_strict


def _run_one(cfg: dict[str, Any], run_dir: str, *, jobs: int, threads: int | None, records_dir: str | None,
             wait_lock: float | None) -> tuple[str, str | None, float]:
    if threads is not None:
        cfg = {**cfg, "train": {**cfg["train"], "threads": int(threads)}}

    t0 = time.perf_counter()
    try:
        run_training(cfg, run_dir, jobs=jobs, wait_lock=wait_lock)
        if records_dir is not None:
            export_record(run_dir, records_dir)
    except RunLockedError as e:  # another sweep/trainer owns this run: leave it to them
        return run_dir, f"{LOCKED}{e}", time.perf_counter() - t0
    except RunInterrupted as e:  # SIGTERM / SIGINT: checkpointed; the sweep stops
        return run_dir, f"{INTERRUPTED}{e}", time.perf_counter() - t0
    except DebiaskitError as e:
        return run_dir, str(e), time.perf_counter() - t0
    except Exception:  # a failing run must not stop the other cells of the grid
        return run_dir, traceback.format_exc(limit=5), time.perf_counter() - t0
    return run_dir, None, time.perf_counter() - t0


class SweepInterrupted(DebiaskitError):
    """SIGTERM / SIGINT stopped a sweep: its running runs checkpointed and exited; the same command resumes it."""


class _SignalStop(BaseException):
    """Raised by the in-process sweep's signal handler between runs (not an ``Exception``: nothing swallows it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class _Signals:
    """SIGTERM / SIGINT handling of a sweep's parent process (main thread only; elsewhere a no-op).

    ``raise_now``: the handler raises :class:`_SignalStop` (in-process runs: while a run trains, the trainer's
    own handler replaces this one and checkpoints). Otherwise it only records the signal (``signum``, ``count``)
    and the parent's loop forwards SIGTERM to its workers.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, *, raise_now: bool) -> None:
        self.raise_now = raise_now
        self.signum: int | None = None
        self.count = 0
        self._old: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        self.count += 1
        if self.signum is None:
            self.signum = signum
        if self.raise_now:
            raise _SignalStop(signum)

    def __enter__(self) -> _Signals:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}


@contextlib.contextmanager
def sigterm_as_keyboard_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises ``KeyboardInterrupt`` like Ctrl-C (main thread only; else a no-op).

    For drivers whose clean-up already runs on Ctrl-C (the Ray backend cancels its tasks and writes
    ``sweep.json``): a scheduler's SIGTERM then does the same instead of killing the driver outright.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


@dataclass
class _Task:
    run: SweepRun
    waiting: bool = False  # retried with --wait-lock after it was found locked

    @property
    def run_dir(self) -> str:
        return str(self.run.run_dir)

    @property
    def records_dir(self) -> str | None:
        return str(self.run.records_dir) if self.run.records_dir is not None else None


def run_sweep(runs: list[SweepRun], out: str | Path, *, jobs: int = 1, threads: int | None = None,
              echo: Any = print, wait_lock: float | None = None) -> dict[str, Any]:
    """Run the pending cells (``jobs`` processes in parallel); returns and writes ``<out>/sweep.json``.

    ``wait_lock``: a cell another process is training (its run lock is held) is not skipped but retried after
    the other cells, waiting up to ``wait_lock`` seconds (``math.inf``: no limit) for that process; a run it
    finished is then done. SIGTERM / SIGINT: the running runs checkpoint and exit (with ``jobs > 1`` the
    signal is forwarded to the worker processes, which are waited for up to :data:`STOP_GRACE_S` seconds and
    then killed; a second signal kills them at once), ``sweep.json`` is written and :class:`SweepInterrupted`
    is raised; the same call resumes. A worker whose parent dies stops the same way.
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise DebiaskitError(f"--jobs must be >= 1, got {jobs}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise DebiaskitError(f"--threads must be a positive integer, got {threads!r}")
    if wait_lock is not None and (isinstance(wait_lock, bool) or not isinstance(wait_lock, (int, float))
                                  or not wait_lock > 0):
        raise DebiaskitError(f"--wait-lock must be a positive number of seconds, got {wait_lock!r}")
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
    ctl = _Control(status, _Progress(len(pending), echo), echo, wait_lock=wait_lock, jobs=jobs, threads=threads)
    tasks = [_Task(r) for r in pending]
    try:
        if jobs == 1 or len(pending) <= 1:
            ctl.in_process(tasks)
        else:
            ctl.in_workers(tasks, min(jobs, len(pending)))
    finally:  # written on an interruption too: the next run of the sweep starts from it
        for entry in manifest["runs"]:
            entry.update(status.get(entry["run_dir"], {"status": "pending"}))
        failed = [e for e in manifest["runs"] if e["status"] == "failed"]
        manifest["n_failed"] = len(failed)
        if pending or (out / "sweep.json").exists():
            write_json(out / "sweep.json", manifest)
    return manifest


class _Control:
    """Runs a sweep's tasks in this process or in spawned workers and records each outcome in ``status``."""

    def __init__(self, status: dict[str, dict[str, Any]], progress: _Progress, echo: Any, *,
                 wait_lock: float | None, jobs: int, threads: int | None) -> None:
        self.status, self.progress, self.echo = status, progress, echo
        self.wait_lock, self.jobs, self.threads = wait_lock, jobs, threads

    # -- outcomes -----------------------------------------------------------------------------------------
    def record(self, task: _Task, err: str | None, secs: float, queue: deque[_Task]) -> None:
        name = Path(task.run_dir).name
        if err is None:
            self.status[task.run_dir] = {"status": "done", "seconds": round(secs, 1)}
        elif err.startswith(LOCKED):
            owner = err[len(LOCKED):]
            if self.wait_lock is not None and not task.waiting:
                queue.append(_Task(task.run, waiting=True))
                self.status[task.run_dir] = {"status": "waiting (locked by another process)", "owner": owner}
                self.echo(f"busy   {name}: {owner.split(';')[0]}; retried after the other runs (--wait-lock)")
                return
            self.status[task.run_dir] = {"status": "skipped (locked by another process)", "owner": owner}
            self.echo(f"skip   {name}: {owner}")
            return
        elif err.startswith(INTERRUPTED):
            self.status[task.run_dir] = {"status": "interrupted", "error": err[len(INTERRUPTED):].strip()}
            return
        else:
            self.status[task.run_dir] = {"status": "failed", "error": err.strip().splitlines()[-1]}
        self.progress.finished(name, err, secs)

    def _args(self, task: _Task) -> tuple[Any, ...]:
        return (task.run.config, task.run_dir, self.jobs, self.threads, task.records_dir,
                self.wait_lock if task.waiting else None)

    @staticmethod
    def _stopped(signum: int, running: int, killed: int, not_started: int) -> SweepInterrupted:
        name = signal.Signals(signum).name
        bits = [f"{running - killed} running run(s) checkpointed"]
        if killed:
            bits.append(f"{killed} killed after {STOP_GRACE_S:.0f} s or a second signal (they resume from their "
                        "last regular checkpoint)")
        if not_started:
            bits.append(f"{not_started} not started")
        return SweepInterrupted(f"{name}: sweep stopped; {', '.join(bits)}; run the same command to resume")

    # -- in this process ----------------------------------------------------------------------------------
    def in_process(self, tasks: list[_Task]) -> None:
        queue = deque(tasks)
        current: _Task | None = None
        with _Signals(raise_now=True):
            try:
                while queue:
                    current = queue.popleft()
                    _, err, secs = run_one(current.run.config, current.run_dir, jobs=1, threads=self.threads,
                                           records_dir=current.records_dir,
                                           wait_lock=self.wait_lock if current.waiting else None)
                    self.record(current, err, secs, queue)
                    if err is not None and err.startswith(INTERRUPTED):
                        signum = signal.SIGINT if "SIGINT" in err else signal.SIGTERM
                        raise self._stopped(signum, 1, 0, len(queue))
                    current = None
            except _SignalStop as e:  # between runs, or before a run's training loop started
                if current is not None:
                    self.status[current.run_dir] = {"status": "interrupted"}
                raise self._stopped(e.signum, int(current is not None), 0, len(queue)) from None

    # -- in spawned worker processes ------------------------------------------------------------------------
    def in_workers(self, tasks: list[_Task], n: int) -> None:
        ctx = mp.get_context("spawn")
        queue = deque(tasks)
        workers: list[_Worker] = []
        with _Signals(raise_now=False) as sig:
            try:
                while queue or workers:
                    while queue and len(workers) < n and sig.signum is None:
                        workers.append(_Worker(ctx, queue.popleft(), self._args))
                    if sig.signum is not None:
                        break
                    mp.connection.wait([w.conn for w in workers] + [w.proc.sentinel for w in workers],
                                       timeout=_POLL_S)
                    for w in list(workers):
                        if w.finished():
                            workers.remove(w)
                            self.record(w.task, *w.outcome(), queue)
                if sig.signum is not None and (workers or queue):
                    running = len(workers)
                    killed = _stop_workers(workers, sig, self.echo)
                    for w in workers:
                        if w.result is None:  # killed, or stopped by the signal before its training loop began
                            self.status[w.task.run_dir] = {"status": "interrupted (killed)" if w.killed else
                                                           "interrupted"}
                        else:
                            self.record(w.task, *w.outcome(), deque())
                    raise self._stopped(sig.signum, running, killed, len(queue))
            finally:
                for w in workers:  # never leave a worker behind (an unexpected error in this loop)
                    w.close()


def _stop_workers(workers: list[_Worker], sig: _Signals, echo: Any) -> int:
    """Forward SIGTERM to the running workers, wait for them (bounded), kill the rest; returns how many were killed."""
    if workers:
        echo(f"{signal.Signals(sig.signum or signal.SIGTERM).name}: stopping {len(workers)} running run(s); each "
             f"checkpoints and exits (a second signal stops them at once)")
    for w in workers:
        w.terminate()
    deadline = time.monotonic() + STOP_GRACE_S
    killed = 0
    while True:
        alive = [w for w in workers if not w.finished()]
        if not alive:
            return killed
        if sig.count > 1 or time.monotonic() >= deadline:
            for w in alive:
                w.kill()
                killed += 1
            for w in alive:
                w.proc.join(10)
            return killed
        mp.connection.wait([w.conn for w in alive] + [w.proc.sentinel for w in alive], timeout=_POLL_S)


class _Worker:
    """One spawned process training one run; reports ``(run_dir, error, seconds)`` through a pipe.

    It also holds the read end of a *lifeline* pipe whose write end only this parent holds: when the parent
    exits in any way (``kill -9`` included) the worker reads end-of-file and sends itself SIGTERM, so its
    trainer checkpoints and exits instead of training on as an orphan that keeps the run lock.
    """

    def __init__(self, ctx: Any, task: _Task, make_args: Any) -> None:
        self.task = task
        self.result: tuple[str, str | None, float] | None = None
        self.killed = False
        self.conn, child_conn = ctx.Pipe(duplex=False)
        life_r, self._life_w = ctx.Pipe(duplex=False)
        provenance = run_provenance(task.run.config)
        self.proc = ctx.Process(target=_worker_main, args=(make_args(task), provenance, child_conn, life_r),
                                name=f"debiaskit-sweep-{Path(task.run_dir).name}", daemon=True)
        self.proc.start()
        child_conn.close()  # the parent keeps only its own ends: a dead worker then reads as end-of-file
        life_r.close()

    def _poll(self) -> None:
        if self.result is None:
            try:
                if self.conn.poll():
                    self.result = self.conn.recv()
            except (EOFError, OSError):
                pass

    def finished(self) -> bool:
        self._poll()
        if self.proc.exitcode is None:
            return False
        self.proc.join()
        self._poll()
        return True

    def outcome(self) -> tuple[str | None, float]:
        if self.result is not None:
            return self.result[1], self.result[2]
        code = self.proc.exitcode
        why = f"killed by {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit status {code}"
        return f"the worker process died ({why}) before reporting; run the sweep again to resume the run", 0.0

    def terminate(self) -> None:
        if self.proc.exitcode is None:
            self.proc.terminate()  # SIGTERM: the trainer checkpoints and exits

    def kill(self) -> None:
        if self.proc.exitcode is None:
            self.killed = True
            self.proc.kill()

    def close(self) -> None:
        if self.proc.exitcode is None:
            self.kill()
            self.proc.join(10)
        for c in (self.conn, self._life_w):
            try:
                c.close()
            except OSError:  # pragma: no cover
                pass


def _worker_main(args: tuple[Any, ...], provenance: dict[str, Any], conn: Any, lifeline: Any) -> None:
    """Body of a sweep worker process (spawned): train one run, send ``(run_dir, error, seconds)`` back."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C reaches the parent, which forwards SIGTERM
    _stop_when_parent_exits(lifeline)
    cfg, run_dir, jobs, threads, records_dir, wait_lock = args
    try:
        try:  # entries registered at run time by an importable module (a user script's dataset, ...)
            check_provenance({"provenance": provenance}, cfg, where=f"sweep run {Path(run_dir).name}")
        except DebiaskitError as e:
            result: tuple[str, str | None, float] = (run_dir, str(e), 0.0)
        else:
            result = run_one(cfg, run_dir, jobs=jobs, threads=threads, records_dir=records_dir, wait_lock=wait_lock)
    except KeyboardInterrupt:  # a second Ctrl-C during training: the trainer stops at once
        result = (run_dir, f"{INTERRUPTED}stopped at once by a second SIGINT", 0.0)
    try:
        conn.send(result)
    except OSError:  # the parent is gone
        pass


def _stop_when_parent_exits(lifeline: Any) -> None:
    """Send this process SIGTERM when the parent's end of ``lifeline`` closes (the parent exited)."""

    def watch() -> None:
        try:
            lifeline.recv()  # the parent never sends: this returns only by end-of-file
        except (EOFError, OSError):
            pass
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="debiaskit-parent-watch", daemon=True).start()


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
