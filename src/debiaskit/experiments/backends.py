"""Sweep backends: where the runs of a sweep train.

``local`` (the default)
    :func:`debiaskit.experiments.sweep.run_sweep`: the runs train in this process or in ``--jobs N`` local
    processes. Ray is never imported.

``ray``
    Every pending run is one `Ray <https://docs.ray.io>`_ task, on an embedded single-machine Ray instance
    (no set-up) or on any Ray cluster given by ``address`` (``auto`` for the cluster this machine belongs to,
    ``ray://host:10001`` for the Ray client). A task

    * reserves ``cpus_per_run`` CPUs and ``gpus_per_run`` GPUs (fractions share a GPU) and trains with as
      many torch threads as CPUs it reserved (unless ``threads`` says otherwise);
    * trains with :func:`debiaskit.train.trainer.run_training`, which owns the content-addressed run directory
      through its run lock (:class:`debiaskit.lock.RunLock`) while it trains, checkpoints as usual, resumes from
      the run directory's checkpoint when there is one and returns at once when the run has finished. While
      another process holds the lock (a worker of a stopped driver that has not exited yet, another sweep), the
      task waits for it instead of failing, then finds the run finished or resumes it: a run is never trained
      by two processes at once, on one node or on several nodes sharing a file system with working locks;
    * returns the run's record (:func:`debiaskit.experiments.records.make_record`) when the sweep has a
      records folder: the *driver* writes it there, so a cluster without shared storage still yields a
      complete table.

    A task whose worker process or node is lost is retried up to ``max_retries`` times by Ray and resumes from
    its last checkpoint; a run that fails with an error is not retried (it would fail again) and is reported.
    The driver prints one aggregate progress line (done / running / failed / left / ETA) whenever it changes
    and writes ``<out>/sweep.json``. A driver that is stopped and started again skips the finished runs
    (``result.json`` or a record with the same run key) and resumes the interrupted ones from their checkpoints.

See ``docs/scaling.md`` for laptops, Ray clusters, Slurm and GPUs.
"""

from __future__ import annotations

import os
import socket
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from debiaskit.errors import DebiaskitError
from debiaskit.experiments.records import export_record, make_record, record_path
from debiaskit.experiments.sweep import SweepRun, run_sweep, sigterm_as_keyboard_interrupt
from debiaskit.io import write_json
from debiaskit.lock import RunLock, RunLockedError
from debiaskit.train.trainer import run_training

__all__ = ["BACKENDS", "DEFAULT_MAX_RETRIES", "execute_sweep", "run_sweep_ray"]

BACKENDS = ("local", "ray")
#: how many times Ray re-runs a task whose worker process or node died (each retry resumes from the checkpoint)
DEFAULT_MAX_RETRIES = 3
_POLL_S = 0.5
_LOCK_PATIENCE_S = 24 * 3600.0  # how long a task keeps retrying a run that other processes keep taking
_HEARTBEAT_S = 60.0

Echo = Callable[[str], Any]


def execute_sweep(
    runs: list[SweepRun], out: str | Path, *, backend: str = "local", jobs: int | None = None,
    threads: int | None = None, address: str | None = None, cpus_per_run: float | None = None,
    gpus_per_run: float | None = None, max_retries: int = DEFAULT_MAX_RETRIES, echo: Echo = print,
    wait_lock: float | None = None,
) -> dict[str, Any]:
    """Run the pending cells of a sweep on ``backend`` (``local`` or ``ray``); returns the ``sweep.json`` manifest.

    ``jobs``: ``local``: parallel processes (default 1); ``ray``: at most this many runs in flight (default: as
    many as the cluster's resources allow). ``address``, ``cpus_per_run`` and ``gpus_per_run`` apply to ``ray``
    only (see :func:`run_sweep_ray`). ``wait_lock`` applies to ``local`` only (Ray tasks always wait for a run
    another process holds). SIGTERM / SIGINT: ``local`` forwards them to its workers (see
    :func:`~debiaskit.experiments.sweep.run_sweep`); ``ray`` treats SIGTERM like Ctrl-C (its tasks are cancelled,
    ``sweep.json`` is written).
    """
    if backend not in BACKENDS:
        raise DebiaskitError(f"unknown sweep backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise DebiaskitError(f"--jobs must be a positive integer, got {jobs!r}")
    if backend == "local":
        given = [f for f, v in (("--address", address), ("--cpus-per-run", cpus_per_run),
                                ("--gpus-per-run", gpus_per_run)) if v is not None]
        if given:
            raise DebiaskitError(f"{', '.join(given)} only apply to --backend ray")
        return run_sweep(runs, out, jobs=jobs or 1, threads=threads, echo=echo, wait_lock=wait_lock)
    if wait_lock is not None:
        raise DebiaskitError("--wait-lock applies to --backend local (Ray tasks always wait for a locked run)")
    return run_sweep_ray(runs, out, address=address, jobs=jobs, threads=threads,
                         cpus_per_run=1.0 if cpus_per_run is None else cpus_per_run,
                         gpus_per_run=0.0 if gpus_per_run is None else gpus_per_run,
                         max_retries=max_retries, echo=echo)


def _check_resources(cpus: Any, gpus: Any, threads: Any, max_retries: Any) -> None:
    def num(v: Any) -> bool:
        return not isinstance(v, bool) and isinstance(v, (int, float)) and v == v and v != float("inf")

    if not num(cpus) or cpus <= 0:
        raise DebiaskitError(f"--cpus-per-run must be a number > 0, got {cpus!r}")
    if not num(gpus) or gpus < 0:
        raise DebiaskitError(f"--gpus-per-run must be a number >= 0, got {gpus!r}")
    if gpus > 1 and gpus != int(gpus):
        raise DebiaskitError(f"--gpus-per-run above 1 must be a whole number, got {gpus!r}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise DebiaskitError(f"--threads must be a positive integer, got {threads!r}")
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise DebiaskitError(f"max_retries must be an integer >= 0, got {max_retries!r}")


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise DebiaskitError("--backend ray needs Ray: pip install 'debiaskit[ray]' (or pip install 'ray>=2.9')") from None
    return ray


def _connect(ray: Any, address: str | None) -> bool:
    """Connect to (or start) Ray; returns whether this call started the connection (and must shut it down)."""
    if ray.is_initialized():
        return False
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 logging_level="WARNING", configure_logging=True)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as e:
        where = f"the Ray cluster at {address!r}" if address else "a local Ray instance"
        why = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        raise DebiaskitError(f"cannot connect to {where}: {why}") from None
    return True


# ---------------------------------------------------------------------------------------------------- worker side
def _train_task(key: str, cfg: dict[str, Any], run_dir: str, want_record: bool, tracker: Any) -> dict[str, Any]:
    """The body of one Ray task: wait for the run lock to be free, train (or resume, or find the run done), return
    the outcome and, with ``want_record``, the run's record."""
    import ray

    host, pid = socket.gethostname(), os.getpid()
    attempt = 1
    if tracker is not None:
        try:
            attempt = int(ray.get(tracker.started.remote(key, host, pid)))
        except Exception:  # progress reporting must never fail a run
            tracker = None
    os.environ["DEBIASKIT_STRICT_DATA"] = "1"  # as in local sweeps: never a toy-sized stand-in for real data
    try:
        node = str(ray.get_runtime_context().get_node_id())[:12]
    except Exception:  # pragma: no cover - informational only
        node = None
    out: dict[str, Any] = {"key": key, "run_dir": run_dir, "host": host, "node": node, "pid": pid, "attempt": attempt,
                           "error": None, "record": None, "resumed_from": 0, "already_done": False}
    t0 = time.perf_counter()
    try:
        while True:
            if _wait_while_locked(run_dir) and tracker is not None:
                tracker.waiting.remote(key)
            try:
                res = run_training(cfg, run_dir, jobs=1)  # takes the run lock itself while it trains
                break
            except RunLockedError as e:  # another process took the run between our check and the trainer's
                last = e
                time.sleep(0.5)
                if time.perf_counter() - t0 > _LOCK_PATIENCE_S:
                    raise last
        out["resumed_from"], out["already_done"] = int(res.resumed_from), bool(res.already_done)
        if want_record:
            out["record"] = make_record(run_dir)
    except DebiaskitError as e:
        out["error"] = str(e)
    except Exception:  # a failing run must not stop the other cells of the grid
        out["error"] = traceback.format_exc(limit=5)
    out["seconds"] = time.perf_counter() - t0
    return out


def _wait_while_locked(run_dir: str) -> bool:
    """Block while another process holds the run lock of ``run_dir`` (it may be finishing the run for us).

    Returns whether it had to wait. The lock is only probed here: the trainer takes it for the training itself.
    """
    lock = RunLock(run_dir, wait=False)
    if lock.acquire():
        lock.release()
        return False
    lock.wait = True
    lock.acquire()
    lock.release()
    return True


def _make_tracker(ray: Any) -> Any:
    """A tiny actor (no CPU reserved) the tasks tell when they start; the driver asks it what is running."""

    class _Tracker:
        def __init__(self) -> None:
            self.attempts: dict[str, int] = {}
            self.running: dict[str, dict[str, Any]] = {}

        def started(self, key: str, host: str, pid: int) -> int:
            self.attempts[key] = self.attempts.get(key, 0) + 1
            self.running[key] = {"host": host, "pid": pid, "attempt": self.attempts[key], "waiting": False}
            return self.attempts[key]

        def waiting(self, key: str) -> None:
            if key in self.running:
                self.running[key]["waiting"] = True

        def finished(self, key: str) -> None:
            self.running.pop(key, None)

        def snapshot(self) -> dict[str, Any]:
            return {"running": dict(self.running), "attempts": dict(self.attempts)}

    return ray.remote(num_cpus=0, max_restarts=0)(_Tracker).remote()


# ---------------------------------------------------------------------------------------------------- driver side
class _RayProgress:
    """One aggregate line ``[d done, r running, f failed, l left, ETA m min]``: after each finished or failed
    run, when the first runs start, when a run is retried, and at least once a minute."""

    def __init__(self, total: int, echo: Echo) -> None:
        self.total, self.echo = total, echo
        self.done = self.failed = self.running = self.retried = 0
        self.t0 = time.perf_counter()
        self._last_t = time.perf_counter()
        self._shown_start = False
        self._shown_retried = 0

    def line(self) -> str:
        n = self.done + self.failed
        left = self.total - n
        eta = ""
        if left and n:
            eta = f", ETA {(time.perf_counter() - self.t0) / n * left / 60:.0f} min"
        retried = f", {self.retried} retried" if self.retried else ""
        return f"[{self.done} done, {self.running} running, {self.failed} failed, {left} left{retried}{eta}]"

    def show(self, head: str | None = None) -> None:
        now = time.perf_counter()
        first = self.running > 0 and not self._shown_start
        if head is None and not first and self.retried == self._shown_retried and now - self._last_t < _HEARTBEAT_S:
            return
        self.echo(f"{head}  {self.line()}" if head is not None else self.line())
        self._last_t, self._shown_retried = now, self.retried
        self._shown_start = self._shown_start or self.running > 0


def run_sweep_ray(
    runs: list[SweepRun], out: str | Path, *, address: str | None = None, jobs: int | None = None,
    threads: int | None = None, cpus_per_run: float = 1.0, gpus_per_run: float = 0.0,
    max_retries: int = DEFAULT_MAX_RETRIES, echo: Echo = print,
) -> dict[str, Any]:
    """Run the pending cells of a sweep as Ray tasks (see the module docstring); returns and writes ``sweep.json``.

    ``address``: ``None`` uses the Ray instance this process is already connected to, else starts an embedded
    one on this machine; ``auto`` or ``host:port`` joins a running cluster, ``ray://host:port`` uses the Ray
    client. ``jobs``: at most this many runs in flight (``None``: no limit beyond the cluster's resources).
    ``threads``: torch threads per run (default: ``cpus_per_run`` rounded down, at least 1).
    """
    _check_resources(cpus_per_run, gpus_per_run, threads, max_retries)
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise DebiaskitError(f"--jobs must be a positive integer, got {jobs!r}")
    out = Path(out).absolute()  # workers do not share the driver's working directory
    for r in runs:  # a finished run directory whose record is missing: export it (no training needed)
        if r.records_dir is not None and (r.run_dir / "result.json").exists() and r.record is None:
            export_record(r.run_dir, r.records_dir)
    pending = [r for r in runs if not r.done]
    manifest: dict[str, Any] = {
        "backend": "ray",
        "runs": [{"key": r.key, "run_dir": str(r.run_dir), "run_key": r.run_key} for r in runs],
    }
    status: dict[str, dict[str, Any]] = {str(r.run_dir): {"status": "done (skipped)"} for r in runs if r.done}
    run_threads = threads if threads is not None else max(1, int(cpus_per_run))
    echo(f"{len(runs)} runs, {len(runs) - len(pending)} already finished, {len(pending)} to run on Ray "
         f"({cpus_per_run:g} CPU, {gpus_per_run:g} GPU, {run_threads} thread(s) per run"
         f"{f', at most {jobs} at once' if jobs else ''})")
    if pending:
        out.mkdir(parents=True, exist_ok=True)
        ray = _import_ray()
        started_here = _connect(ray, address)
        try:
            with sigterm_as_keyboard_interrupt():  # a scheduler's SIGTERM cancels the tasks as Ctrl-C does
                _drive(ray, pending, status, run_threads=run_threads, jobs=jobs, cpus=cpus_per_run,
                       gpus=gpus_per_run, max_retries=max_retries, echo=echo)
        finally:
            _write_manifest(out, manifest, status)
            if started_here:
                ray.shutdown()
    else:
        _write_manifest(out, manifest, status, only_if_exists=True)
    return manifest


def _write_manifest(out: Path, manifest: dict[str, Any], status: dict[str, dict[str, Any]], *,
                    only_if_exists: bool = False) -> None:
    for entry in manifest["runs"]:
        entry.update(status.get(entry["run_dir"], {"status": "pending"}))
    manifest["n_failed"] = sum(e["status"] == "failed" for e in manifest["runs"])
    if not only_if_exists or (out / "sweep.json").exists():
        write_json(out / "sweep.json", manifest)


def _drive(ray: Any, pending: list[SweepRun], status: dict[str, dict[str, Any]], *, run_threads: int,
           jobs: int | None, cpus: float, gpus: float, max_retries: int, echo: Echo) -> None:
    task = ray.remote(_train_task).options(num_cpus=cpus, num_gpus=gpus, max_retries=max_retries,
                                           retry_exceptions=False)
    try:
        tracker = _make_tracker(ray)
    except Exception:  # pragma: no cover - progress is optional
        tracker = None
    progress = _RayProgress(len(pending), echo)
    queue = list(pending)
    in_flight: dict[Any, SweepRun] = {}
    running: set[str] = set()  # keys of the runs whose task has started (as last reported by the tracker)
    try:
        while queue or in_flight:
            while queue and (jobs is None or len(in_flight) < jobs):
                r = queue.pop(0)
                cfg = {**r.config, "train": {**r.config["train"], "threads": int(run_threads)}}
                ref = task.remote(r.key, cfg, str(Path(r.run_dir).absolute()), r.records_dir is not None, tracker)
                in_flight[ref] = r
                status[str(r.run_dir)] = {"status": "submitted"}
            ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=_POLL_S)
            for ref in ready:
                r = in_flight.pop(ref)
                running.discard(r.key)
                progress.running = len(running)
                _finish(ray, ref, r, status, progress, tracker)
            snap = _snapshot(ray, tracker)
            if snap is not None:
                flying = {r.key for r in in_flight.values()}
                running = {k for k in snap["running"] if k in flying}
                progress.running = len(running)
                progress.retried = sum(1 for k, n in snap["attempts"].items() if n > 1)
            progress.show()
    except BaseException:
        for ref in in_flight:  # the checkpoints stay: the next run of the sweep resumes these runs
            try:
                ray.cancel(ref, force=True)
            except Exception:
                pass
        for r in in_flight.values():
            status[str(r.run_dir)] = {"status": "interrupted"}
        raise


def _snapshot(ray: Any, tracker: Any) -> dict[str, Any] | None:
    if tracker is None:
        return None
    try:
        return ray.get(tracker.snapshot.remote(), timeout=10)
    except Exception:
        return None


def _finish(ray: Any, ref: Any, r: SweepRun, status: dict[str, dict[str, Any]], progress: _RayProgress,
            tracker: Any) -> None:
    name = Path(r.run_dir).name
    if tracker is not None:
        tracker.finished.remote(r.key)
    try:
        res = ray.get(ref)
    except Exception as e:  # the task's worker or node was lost more than max_retries times, or it was cancelled
        why = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        status[str(r.run_dir)] = {"status": "failed", "error": f"{type(e).__name__}: {why}"}
        progress.failed += 1
        progress.show(f"FAILED {name}: {type(e).__name__}")
        return
    err = res.get("error")
    if err is None and res.get("record") is not None and r.records_dir is not None:
        try:
            write_json(record_path(r.records_dir, res["record"]["name"]), res["record"])
        except OSError as e:
            err = f"cannot write the record to {r.records_dir}: {e.strerror or e}"
    entry: dict[str, Any] = {"host": res.get("host"), "node": res.get("node"), "attempts": res.get("attempt", 1),
                             "seconds": round(float(res.get("seconds", 0.0)), 1)}
    if err is None:
        entry["status"] = "done"
        if res.get("resumed_from"):
            entry["resumed_from"] = res["resumed_from"]
        if res.get("already_done"):
            entry["already_done"] = True
        progress.done += 1
        head = f"done   {name} ({entry['seconds']:.0f} s on {entry['host']})"
    else:
        entry.update(status="failed", error=err.strip().splitlines()[-1])
        progress.failed += 1
        head = f"FAILED {name}: {entry['error']}"
    status[str(r.run_dir)] = entry
    progress.show(head)
