"""Optional mirror of training records into an experiment tracker (``--tracker tensorboard|mlflow``).

The run directory stays the source of truth: the trainer writes ``config.yaml`` and appends one JSON row per
(evaluation, split, weights) to ``metrics.jsonl``; :class:`Mirror` *reads* those files while ``train`` or
``sweep`` runs (a background thread polls them every :data:`POLL_SECONDS`) and copies

* every new ``metrics.jsonl`` row into scalars at the row's ``step`` (:func:`row_scalars`: ``val/accuracy``,
  ``test/ema/unbiased_accuracy``, ``train/loss``, ``system/steps_per_s``, ...),
* the run's config into parameters (:func:`config_params`: ``hparams.lr``, ``dataset.ratio``, ...).

A last pass after the runs end mirrors every row the thread had not seen yet. A tracker that fails mid-run
prints one ``warning:`` line and is switched off; training is never interrupted by it. Adapters import
their library lazily (optional extras ``debiaskit[tensorboard]`` / ``debiaskit[mlflow]``); a missing library
is one :class:`DebiaskitError` naming the extra, raised before any training starts. See ``docs/report.md``.

Other trackers plug in with :func:`register_tracker` (a factory ``(uri, experiment) -> Tracker``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from debiaskit.errors import DebiaskitError

__all__ = [
    "POLL_SECONDS", "Mirror", "RunHandle", "Tracker", "add_tracker_arguments", "config_params", "make_tracker",
    "mirror_runs", "register_tracker", "row_scalars", "tracker_names",
]

#: seconds between two reads of the followed metrics.jsonl files
POLL_SECONDS = 2.0

#: metrics.jsonl keys that describe the row rather than measure something
_ROW_KEYS = ("step", "split", "weights")
#: per-step keys logged once under ``system/`` (not per split)
_SYSTEM_KEYS = ("wall_time_s", "steps_per_s", "peak_memory_mb")


# ----------------------------------------------------------------------------------------- protocol
class RunHandle(Protocol):
    """One run in a tracker."""

    def log_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        """Record ``scalars`` (name -> finite value) at training step ``step``."""

    def close(self) -> None:
        """The run has ended (flush, mark finished)."""


class Tracker(Protocol):
    """An experiment tracker: opens one :class:`RunHandle` per training run."""

    name: str

    def open_run(self, name: str, run_dir: Path, params: Mapping[str, str]) -> RunHandle:
        """Start run ``name`` (its directory ``run_dir``) with the flattened config ``params``."""

    def close(self) -> None:
        """Release the tracker (after every run was closed)."""


TrackerFactory = Callable[[str | None, str], Tracker]
_TRACKERS: dict[str, TrackerFactory] = {}


def register_tracker(name: str, factory: TrackerFactory) -> None:
    """Make ``--tracker NAME`` use ``factory(uri, experiment)`` (``uri``: the ``--tracker-uri`` value or None)."""
    _TRACKERS[name] = factory


def tracker_names() -> list[str]:
    """The names ``--tracker`` accepts (the built-in ``mlflow`` and ``tensorboard`` and any registered since)."""
    return sorted(_TRACKERS)


def make_tracker(name: str, *, uri: str | None = None, experiment: str = "debiaskit") -> Tracker:
    """Build the tracker ``name``; an unknown name or a missing optional library is a :class:`DebiaskitError`."""
    if name not in _TRACKERS:
        raise DebiaskitError(f"--tracker must be one of {', '.join(tracker_names())}, got {name!r}")
    return _TRACKERS[name](uri, experiment)


# ------------------------------------------------------------------------------------- conversions
def _finite(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def _flat_numbers(prefix: str, d: Mapping[str, Any], out: dict[str, float]) -> None:
    for k, v in d.items():
        key = f"{prefix}/{k}"
        if isinstance(v, Mapping):
            _flat_numbers(key, v, out)
        else:
            f = _finite(v)
            if f is not None:
                out[key] = f


def row_scalars(row: Mapping[str, Any], *, with_step_keys: bool = True) -> dict[str, float]:
    """The scalars of one ``metrics.jsonl`` row: finite numbers only (lists such as per-cell counts are skipped).

    Split metrics are named ``<split>/<metric>`` for the raw weights and ``<split>/<weights>/<metric>`` for a
    weight average (``"weights": "ema"``); nested mappings add path parts. With ``with_step_keys`` the row's
    per-step values are added too: ``train_logs`` as ``train/<name>`` and ``system/<name>`` for the wall time,
    speed and memory.
    """
    split = str(row.get("split", "eval"))
    w = str(row.get("weights", "raw"))
    prefix = split if w == "raw" else f"{split}/{w}"
    out: dict[str, float] = {}
    for k, v in row.items():
        if k in _ROW_KEYS or k in _SYSTEM_KEYS or k == "train_logs":
            continue
        if isinstance(v, Mapping):
            _flat_numbers(f"{prefix}/{k}", v, out)
        else:
            f = _finite(v)
            if f is not None:
                out[f"{prefix}/{k}"] = f
    if with_step_keys:
        if isinstance(row.get("train_logs"), Mapping):
            _flat_numbers("train", row["train_logs"], out)
        for k in _SYSTEM_KEYS:
            f = _finite(row.get(k))
            if f is not None:
                out[f"system/{k}"] = f
    return out


def config_params(config: Mapping[str, Any], *, max_len: int = 500) -> dict[str, str]:
    """The config flattened to ``section.key`` -> string (lists and ``None`` as JSON; long values truncated)."""
    out: dict[str, str] = {}

    def walk(prefix: str, v: Any) -> None:
        if isinstance(v, Mapping) and v:
            for k, x in v.items():
                walk(f"{prefix}.{k}" if prefix else str(k), x)
            return
        s = v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str)
        out[prefix] = s if len(s) <= max_len else s[: max_len - 1] + "…"

    walk("", dict(config))
    return out


# ------------------------------------------------------------------------------------------ mirror
@dataclass
class _Followed:
    name: str
    run_dir: Path
    params: dict[str, str]
    handle: Any = None
    offset: int = 0
    inode: int | None = None
    sent: set[tuple[Any, ...]] = field(default_factory=set)
    step_keys: set[int] = field(default_factory=set)
    n_rows: int = 0


class Mirror:
    """Follow the ``metrics.jsonl`` of some run directories and copy new rows into ``tracker``.

    Use as a context manager around the training (:func:`mirror_runs`). ``runs``: ``(name, run_dir, config)``
    triples. A run is opened in the tracker when its ``metrics.jsonl`` first appears. Rows are de-duplicated by
    ``(step, split, weights)``, so a resumed run (whose ``metrics.jsonl`` is rewritten up to its checkpoint)
    logs each evaluation once per mirror. ``echo``: where the one warning goes (default: stderr).
    """

    def __init__(self, tracker: Tracker, runs: Iterable[tuple[str, str | Path, Mapping[str, Any]]], *,
                 poll: float = POLL_SECONDS, echo: Callable[[str], None] | None = None) -> None:
        self.tracker = tracker
        self.runs = [_Followed(str(n), Path(d), config_params(c)) for n, d, c in runs]
        self.poll = float(poll)
        self.echo = echo or (lambda s: print(s, file=sys.stderr, flush=True))
        self.failed: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle
    def __enter__(self) -> Mirror:
        self._thread = threading.Thread(target=self._loop, name="debiaskit-tracker", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sync()
        for r in self.runs:
            if r.handle is not None:
                self._call(r.handle.close)
        self._call(self.tracker.close, always=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.poll):
            self.sync()

    # -- work
    def sync(self) -> int:
        """Read every followed file once and mirror its new rows; returns how many rows were sent."""
        n = 0
        with self._lock:
            for r in self.runs:
                if self.failed is not None:
                    break
                n += self._sync_run(r)
        return n

    def _sync_run(self, r: _Followed) -> int:
        f = r.run_dir / "metrics.jsonl"
        try:
            st = f.stat()
        except OSError:
            return 0
        if r.inode is not None and (st.st_ino != r.inode or st.st_size < r.offset):
            r.offset = 0  # rewritten (a resumed run): read again, the de-duplication keeps rows unique
        r.inode = st.st_ino
        if st.st_size <= r.offset:
            return 0
        try:
            with f.open("rb") as fh:
                fh.seek(r.offset)
                chunk = fh.read(st.st_size - r.offset)
        except OSError:
            return 0
        end = chunk.rfind(b"\n")
        if end < 0:
            return 0  # only a partial line so far
        r.offset += end + 1
        rows = []
        for line in chunk[: end + 1].splitlines():
            try:
                row = json.loads(line)
            except (UnicodeDecodeError, json.JSONDecodeError):
                continue  # a damaged line: the trainer's own reader decides what to do with it
            if isinstance(row, dict) and "step" in row:
                rows.append(row)
        if not rows:
            return 0
        if r.handle is None:
            ok, r.handle = self._call(self.tracker.open_run, r.name, r.run_dir, r.params)
            if not ok:
                return 0
        n = 0
        for row in rows:
            key = (row.get("step"), row.get("split"), row.get("weights", "raw"))
            if key in r.sent:
                continue
            r.sent.add(key)
            try:
                step = int(row["step"])
            except (TypeError, ValueError):
                continue
            first = step not in r.step_keys and row.get("weights", "raw") == "raw"
            if first:
                r.step_keys.add(step)
            scalars = row_scalars(row, with_step_keys=first)
            if scalars and not self._call(r.handle.log_scalars, step, scalars)[0]:
                return n
            n += 1
            r.n_rows += 1
        return n

    def _call(self, fn: Callable[..., Any], *args: Any, always: bool = False) -> tuple[bool, Any]:
        """``(ok, result)`` of a tracker call; the first failure warns once and switches the mirror off."""
        if self.failed is not None and not always:
            return False, None
        try:
            return True, fn(*args)
        except Exception as e:  # noqa: BLE001 - a tracker must never stop training
            if self.failed is None:
                why = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
                self.failed = f"{type(e).__name__}: {why}"
                self.echo(f"warning: --tracker {getattr(self.tracker, 'name', '?')} failed ({self.failed}); "
                          "mirroring stopped, training goes on and its records (metrics.jsonl, result.json) are "
                          "complete")
            return False, None


@contextmanager
def _mirror(tracker: Tracker, runs: list[tuple[str, Path, Mapping[str, Any]]], poll: float) -> Iterator[Mirror]:
    m = Mirror(tracker, runs, poll=poll)
    with m:
        yield m


def mirror_runs(name: str | None, runs: Iterable[tuple[str, str | Path, Mapping[str, Any]]], *,
                uri: str | None = None, experiment: str = "debiaskit", poll: float = POLL_SECONDS) -> Any:
    """Context manager: mirror ``runs`` into tracker ``name`` while the block trains them (no-op for None).

    The tracker is built (and a missing optional library reported) on the call, before the block runs.
    """
    if name is None:
        return nullcontext(None)
    tracker = make_tracker(name, uri=uri, experiment=experiment)
    return _mirror(tracker, [(n, Path(d), c) for n, d, c in runs], poll)


def add_tracker_arguments(p: argparse.ArgumentParser) -> None:
    """Add ``--tracker`` and ``--tracker-uri`` to a ``train`` / ``sweep`` parser."""
    p.add_argument("--tracker", default=None, metavar="NAME",
                   help="also mirror the records into an experiment tracker: tensorboard or mlflow (optional extras; "
                        "docs/report.md)")
    p.add_argument("--tracker-uri", default=None, metavar="URI",
                   help="tensorboard: log directory (default ./tensorboard, one sub-folder per run); mlflow: tracking "
                        "URI (default: MLflow's, e.g. $MLFLOW_TRACKING_URI or ./mlruns)")


# ------------------------------------------------------------------------------------------ adapters
def _missing(lib: str, extra: str) -> DebiaskitError:
    return DebiaskitError(f"--tracker {extra} needs the {lib} package, which is not installed: "
                          f"pip install 'debiaskit[{extra}]'")


class _TensorBoardRun:
    def __init__(self, writer: Any) -> None:
        self.w = writer

    def log_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        for k, v in scalars.items():
            self.w.add_scalar(k, v, global_step=step)
        self.w.flush()

    def close(self) -> None:
        self.w.close()


class TensorBoardTracker:
    """TensorBoard event files, one folder per run under ``uri`` (default ``./tensorboard``)."""

    name = "tensorboard"

    def __init__(self, uri: str | None, experiment: str) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise _missing("tensorboard", "tensorboard") from None
        self._writer = SummaryWriter
        self.root = Path(uri) if uri else Path("tensorboard")
        self.experiment = experiment

    def open_run(self, name: str, run_dir: Path, params: Mapping[str, str]) -> RunHandle:
        w = self._writer(log_dir=str(self.root / name))
        table = "\n".join(["| key | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in params.items())])
        w.add_text("config", f"run directory `{run_dir}`\n\n{table}", global_step=0)
        return _TensorBoardRun(w)

    def close(self) -> None:
        return None


class _MlflowRun:
    def __init__(self, client: Any, run_id: str, metric_cls: Any) -> None:
        self.client, self.run_id, self.Metric = client, run_id, metric_cls

    def log_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        now = int(time.time() * 1000)
        ms = [self.Metric(k, float(v), now, int(step)) for k, v in scalars.items()]
        for i in range(0, len(ms), 1000):  # the tracking API takes at most 1000 metrics per batch
            self.client.log_batch(self.run_id, metrics=ms[i: i + 1000])

    def close(self) -> None:
        self.client.set_terminated(self.run_id, "FINISHED")


class MlflowTracker:
    """MLflow runs in experiment ``experiment`` (the sweep name, or ``debiaskit`` for ``train``)."""

    name = "mlflow"

    def __init__(self, uri: str | None, experiment: str) -> None:
        try:
            from mlflow.entities import Metric, Param
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise _missing("mlflow", "mlflow") from None
        self.Metric, self.Param = Metric, Param
        self.client = MlflowClient(tracking_uri=uri) if uri else MlflowClient()
        self.experiment = experiment
        self._exp_id: str | None = None

    def _experiment_id(self) -> str:
        if self._exp_id is None:
            exp = self.client.get_experiment_by_name(self.experiment)
            self._exp_id = exp.experiment_id if exp is not None else self.client.create_experiment(self.experiment)
        return self._exp_id

    def open_run(self, name: str, run_dir: Path, params: Mapping[str, str]) -> RunHandle:
        run = self.client.create_run(self._experiment_id(), tags={"mlflow.runName": name,
                                                                  "debiaskit.run_dir": str(run_dir)})
        rid = run.info.run_id
        ps = [self.Param(k, v) for k, v in params.items()]
        for i in range(0, len(ps), 100):  # at most 100 params per batch
            self.client.log_batch(rid, params=ps[i: i + 100])
        return _MlflowRun(self.client, rid, self.Metric)

    def close(self) -> None:
        return None


register_tracker("tensorboard", TensorBoardTracker)
register_tracker("mlflow", MlflowTracker)
