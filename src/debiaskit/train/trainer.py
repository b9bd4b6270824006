"""The step-based trainer.

``run_training(config, out_dir)`` trains one method on one dataset build and writes the run directory:

* ``config.yaml`` — the full resolved config;
* ``metrics.jsonl`` — one line per (evaluation step, split[, averaged weights]): every metric of the split
  (accuracies, worst-group accuracy, loss, per-cell counts), the mean training logs since the previous
  evaluation, wall time, steps/s, peak memory. Every registered selection rule can be applied to it later;
* ``checkpoint.pt`` — everything needed to resume (weights, optimisers, schedulers, sampler and RNG state,
  selection state, the running loss sums), written atomically every ``train.checkpoint_every`` steps;
* ``model_<rule>.pt`` — the method's weights selected by each rule asked for at train time;
* ``result.json`` — run key, final and selected metrics, the rules, seed, data fingerprints, library version,
  which labels the method and each rule consumed, thread choice, wall time.

Batches are drawn on the device from the in-memory uint8 tensors (no DataLoader, no per-image PIL). Re-running
the same command on an interrupted run directory resumes from the last checkpoint and produces the same final
weights **and the same metrics.jsonl** (apart from timing fields) as an uninterrupted run, for a given seed.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import platform
import resource
import signal
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from debiaskit import __version__
from debiaskit.data.augment import make_batch_transform, prescale_images, use_float_cache
from debiaskit.data.base import DatasetSplits
from debiaskit.data.registry import get_splits
from debiaskit.errors import DebiaskitError
from debiaskit.runkey import canonical_config, run_key
from debiaskit.io import append_jsonl, read_jsonl, to_json, write_json, write_text, write_yaml
from debiaskit.lock import RunLock, RunLockedError, describe_owner, wait_until_free
from debiaskit.methods.base import Batch, Method, TrainContext
from debiaskit.methods.optimizers import load_optimizer_state, optimizer_impl
from debiaskit.methods.registry import get_method
from debiaskit.threads import apply_threads, choose_threads
from debiaskit.train.averaging import WeightAverage
from debiaskit.train.checkpoint import load_checkpoint, remove_stale_tmp, save_checkpoint, save_model
from debiaskit.train.evaluate import predict_logits, split_metrics
from debiaskit.train.provenance import run_provenance
from debiaskit.train.sampler import EpochSampler
from debiaskit.train.seed import resolve_device, rng_state, seed_everything, set_rng_state
from debiaskit.train.selection import (
    ORACLE_LABEL,
    SelectionTracker,
    default_rules,
    get_selection_rule,
    select,
    validate_rules,
)

log = logging.getLogger(__name__)

__all__ = ["NonFiniteGuard", "RunInterrupted", "RunResult", "build_data", "build_method", "data_devices",
           "nan_max_skips", "prepare_splits", "run_training"]


class RunInterrupted(DebiaskitError):
    """SIGTERM / SIGINT arrived during training: a checkpoint was written; the same command resumes."""

#: fields of a metrics.jsonl row that measure time or memory (they legitimately differ between two runs)
TIMING_FIELDS = ("wall_time_s", "steps_per_s", "peak_memory_mb")


class _StopOnSignal:
    """SIGTERM/SIGINT set a flag; the loop checkpoints after the current step and stops (main thread only)."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        if self.signum is not None and signum == signal.SIGINT:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.signum = signum

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in self.SIGNALS:
            self._old[sig] = signal.signal(sig, self._handler)

    def restore(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}


class NonFiniteGuard:
    """``train.nan_policy``: what a training step whose logs (or, with ``skip``, gradients) are not finite does.

    ``error``: the run stops with a one-line :class:`~debiaskit.errors.DebiaskitError` naming the first such step
    and the offending value. The check is one ``torch.isfinite`` over the step's logged scalars (the loss among
    them). On the CPU it is read at once; on an accelerator it is kept on the device (the first bad step and
    its values, no host synchronisation per step) and read at the next evaluation or checkpoint, which
    synchronise anyway, so no checkpoint or evaluation row is ever written after a non-finite step.

    ``skip``: before each update the method's state (parameters, buffers, optimiser states) is copied; a step
    whose logs or gradients are not finite is undone (that copy restored), counted (``skipped_steps``) and left
    out of the logged means. The step number, the batch order and the LR schedule still advance. More than
    ``max_skips`` skipped steps in a row stop the run as ``error`` does. This costs one copy of the state and
    one host synchronisation per step.
    """

    def __init__(self, method: Method, policy: str, max_skips: int, device: torch.device) -> None:
        self.method = method
        self.policy = policy
        self.max_skips = int(max_skips)
        self.deferred = policy == "error" and device.type != "cpu"
        self.in_a_row = 0  # consecutive skipped steps (checkpointed)
        self.skipped_total = 0  # skipped steps of the whole run (checkpointed)
        self._saved: tuple[dict[str, torch.Tensor], dict[str, Any]] | None = None
        self._first_step: torch.Tensor | None = None  # deferred error check: first bad step (-1: none), values
        self._first_vals: torch.Tensor | None = None
        self._keys: list[str] | None = None

    # -- checkpointed state -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, int]:
        return {"in_a_row": self.in_a_row, "skipped_total": self.skipped_total}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        state = state or {}  # checkpoints written before nan_policy skip existed
        self.in_a_row = int(state.get("in_a_row", 0))
        self.skipped_total = int(state.get("skipped_total", 0))

    # -- per step -------------------------------------------------------------------------------------------
    def before_update(self) -> None:
        if self.policy == "skip":
            self._saved = (
                {k: v.detach().clone() for k, v in self.method.state_dict().items()},
                {k: _clone_state(o.state_dict()) for k, o in self.method.optimizers.items()},
            )

    def after_update(self, step: int, logs: dict[str, Any]) -> bool:
        """``True``: keep the step; ``False``: it was skipped (state restored). Raises when the run must stop."""
        if self.policy == "error" and not self.deferred:  # CPU: reading a scalar costs no synchronisation
            for k, v in logs.items():
                x = _as_float(v)
                if x is not None and not math.isfinite(x):
                    raise _diverged(step, k, x)
            return True
        keys, vals, bad_float = _log_values(logs)
        if self.policy == "error":
            if bad_float is not None:
                raise _diverged(step, bad_float[0], bad_float[1])
            if vals is not None:
                self._defer(step, keys, vals, torch.isfinite(vals).all())
            return True
        # skip
        ok_t = torch.isfinite(vals).all() if vals is not None else None
        grads = [p.grad for p in self.method.parameters() if p.grad is not None]
        if grads:
            g_ok = torch.isfinite(torch.stack([g.float() for g in torch._foreach_norm(grads)])).all()
            ok_t = g_ok if ok_t is None else ok_t & g_ok
        ok = bad_float is None and (ok_t is None or bool(ok_t))
        if ok:
            self.in_a_row = 0
            self._saved = None
            return True
        what, value = bad_float if bad_float is not None else (
            _first_bad(keys, vals) if vals is not None and not bool(torch.isfinite(vals).all()) else
            (self._bad_gradient(), float("nan")))
        self._restore()
        self.in_a_row += 1
        self.skipped_total += 1
        if self.in_a_row > self.max_skips:
            raise DebiaskitError(
                f"training diverged: {self.in_a_row} steps in a row were not finite (steps "
                f"{step - self.in_a_row + 1}..{step}, more than train.nan_max_skips = {self.max_skips}); at step "
                f"{step}: {what} = {value}; lower the learning rate or check the data"
            )
        return False

    def flush(self) -> None:
        """Deferred ``error`` check (accelerators): raise if a step since the start was not finite."""
        if self._first_step is None:
            return
        step = int(self._first_step)  # host synchronisation: called where one happens anyway
        if step >= 0:
            assert self._keys is not None and self._first_vals is not None
            raise _diverged(step, *_first_bad(self._keys, self._first_vals.cpu()))

    def _defer(self, step: int, keys: list[str], vals: torch.Tensor, ok: torch.Tensor) -> None:
        if self._first_step is None or self._keys != keys:
            self.flush()  # a new set of logged keys: settle the old one first (rare)
            self._keys = keys
            self._first_step = torch.full((), -1, dtype=torch.long, device=vals.device)
            self._first_vals = torch.zeros_like(vals)
        assert self._first_vals is not None
        take = (~ok) & (self._first_step < 0)
        self._first_step = torch.where(take, torch.full_like(self._first_step, step), self._first_step)
        self._first_vals = torch.where(take, vals, self._first_vals)

    def _restore(self) -> None:
        assert self._saved is not None, "before_update() was not called"
        params, opts = self._saved
        self.method.load_state_dict(params)
        for k, o in self.method.optimizers.items():
            load_optimizer_state(o, opts[k])
        self._saved = None

    def _bad_gradient(self) -> str:
        for name, p in self.method.named_parameters():
            if p.grad is not None and not bool(torch.isfinite(p.grad).all()):
                return f"the gradient of {name}"
        return "a gradient"  # pragma: no cover - the norms said one was not finite


def _as_float(v: Any) -> float | None:
    """A logged scalar as a float (the mean of a tensor with several elements); ``None`` for non-numbers."""
    if isinstance(v, torch.Tensor):
        return float(v.detach()) if v.numel() == 1 else float(v.detach().float().mean())
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    return None


def _clone_state(obj: Any) -> Any:
    """A copy of an optimiser ``state_dict()`` whose tensors are cloned (faster than ``copy.deepcopy``)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    if isinstance(obj, dict):
        return {k: _clone_state(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_clone_state(v) for v in obj)
    return copy.copy(obj)


def _log_values(logs: dict[str, Any]) -> tuple[list[str], torch.Tensor | None, tuple[str, float] | None]:
    """The tensor-valued logs stacked (one ``isfinite``); plain numbers are checked here (no device work)."""
    keys: list[str] = []
    tensors: list[torch.Tensor] = []
    bad_float = None
    for k, v in logs.items():
        if isinstance(v, torch.Tensor):
            keys.append(k)
            tensors.append(v.detach().reshape(()).float() if v.numel() == 1 else v.detach().float().mean())
        elif bad_float is None and isinstance(v, (int, float)) and not math.isfinite(float(v)):
            bad_float = (k, float(v))
    return keys, (torch.stack(tensors) if tensors else None), bad_float


def _first_bad(keys: list[str], vals: torch.Tensor) -> tuple[str, float]:
    vals = vals.detach().cpu()
    for k, v in zip(keys, vals.tolist()):
        if not math.isfinite(v):
            return k, v
    return keys[0] if keys else "loss", float("nan")  # pragma: no cover


def _diverged(step: int, key: str, value: float) -> DebiaskitError:
    return DebiaskitError(
        f"training diverged at step {step}: {key} = {value}; lower the learning rate or check the data "
        f"(train.nan_policy: skip skips such steps)"
    )


def nan_max_skips(tr: dict[str, Any]) -> int:
    """``train.nan_max_skips``, or its default: a tenth of ``train.eval_every``, at least 1."""
    m = tr.get("nan_max_skips")
    return int(m) if m is not None else max(1, int(tr["eval_every"]) // 10)


def data_devices(device: torch.device, data_on_device: bool) -> tuple[torch.device, torch.device]:
    """Where the training images live and where batch indices are drawn, for a run on ``device``.

    The images go to an accelerator only with ``data_on_device``; the indices are always drawn on ``device``,
    with the run's generator (which lives there), so a run gives the same batches either way.
    """
    on_device = bool(data_on_device) and device.type == "cuda"
    return (device if on_device else torch.device("cpu")), device


@dataclass
class RunResult:
    out_dir: Path
    result: dict[str, Any]
    resumed_from: int = 0
    already_done: bool = False


def prepare_splits(cfg: dict[str, Any], splits: DatasetSplits) -> DatasetSplits:
    """Let the run's method adapt already-built splits (balanced subset, augmented set, ...)."""
    if "train" not in splits:
        raise DebiaskitError(f"dataset {cfg['dataset']['name']!r} has no train split")
    return get_method(cfg["method"]).prepare_splits(splits, cfg["hparams"])


def build_data(cfg: dict[str, Any]) -> DatasetSplits:
    """Build the dataset splits of a resolved config, then let the method adapt them."""
    ds_opts = {k: v for k, v in cfg["dataset"].items() if k != "name"}
    return prepare_splits(cfg, get_splits(cfg["dataset"]["name"], **ds_opts))


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
        optimizer_impl=str(cfg["train"].get("optimizer_impl", "auto")),
    )
    return get_method(cfg["method"])(ctx, cfg["hparams"]).to(device)


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024 if platform.system() != "Darwin" else rss / 2**20


def stored_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """The config as written to ``config.yaml`` (plain YAML types)."""
    return yaml.safe_load(yaml.safe_dump(cfg, sort_keys=False))


def _is_scratch(p: Path) -> bool:
    """The lock file and temp files of interrupted atomic writes (removed under the lock)."""
    return p.name == ".lock" or (p.name.startswith(".") and p.name.endswith(".tmp"))


def prepare_out_dir(out_dir: Path, cfg: dict[str, Any]) -> str:
    """Check the run directory; returns ``new``, ``resume`` or ``done``. Creates nothing."""
    if out_dir.exists() and not out_dir.is_dir():
        raise DebiaskitError(f"output path {out_dir} exists and is not a directory")
    if out_dir.is_dir() and any(not _is_scratch(p) for p in out_dir.iterdir()):
        cfg_file = out_dir / "config.yaml"
        if not cfg_file.exists():
            raise DebiaskitError(f"output directory {out_dir} is not empty and holds no debiaskit run")
        try:
            old = yaml.safe_load(cfg_file.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise DebiaskitError(f"{cfg_file} is not a readable run config ({type(e).__name__}); "
                                 f"choose another --out or delete the directory") from None
        if not isinstance(old, dict) or run_key(old) != run_key(stored_config(cfg)):
            raise DebiaskitError(
                f"output directory {out_dir} holds a run with a different config; choose another --out"
            )
        if (out_dir / "result.json").exists():
            return "done"
        has_ckpt = (out_dir / "checkpoint.pt").exists() or (out_dir / "checkpoint.prev.pt").exists()
        return "resume" if has_ckpt else "new"
    parent = out_dir.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise DebiaskitError(f"cannot write the output directory {out_dir}: {parent} is not writable")
    return "new"


def _read_result(out_dir: Path) -> dict[str, Any]:
    f = out_dir / "result.json"
    try:
        return json.loads(f.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DebiaskitError(f"{f} is unreadable ({type(e).__name__}); delete it to finish the run again") from None


class _Accumulator:
    """Running sums of the training logs between two evaluations (checkpointed, so resume is exact)."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.n = 0
        self.skipped = 0  # steps skipped as non-finite since the last evaluation (nan_policy: skip)

    def add(self, logs: dict[str, Any]) -> None:
        for k, v in logs.items():
            v = v.detach() if isinstance(v, torch.Tensor) else torch.tensor(float(v))
            self.sums[k] = self.sums[k] + v if k in self.sums else v.clone()
        self.n += 1

    def pop_means(self) -> dict[str, float]:
        out = {k: float(v) / max(self.n, 1) for k, v in self.sums.items()}
        self.sums, self.n, self.skipped = {}, 0, 0
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"sums": {k: v.detach().cpu().clone() for k, v in self.sums.items()}, "n": self.n,
                "skipped": self.skipped}

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        self.sums = {k: v.to(device) for k, v in state["sums"].items()}
        self.n = int(state["n"])
        self.skipped = int(state.get("skipped", 0))


def run_training(
    cfg: dict[str, Any], out_dir: str | Path, *, splits: DatasetSplits | None = None, jobs: int = 1,
    wait_lock: float | None = None,
) -> RunResult:
    """Train according to a *resolved* config (see :func:`debiaskit.experiments.config.resolve_config`).

    ``splits``: already-built dataset splits to reuse (the method's ``prepare_splits`` is still applied).
    ``jobs``: how many runs share this machine (for the thread policy).
    ``wait_lock``: when another process holds the run directory's lock, wait for it up to this many seconds
    (``math.inf``: no limit) instead of raising :class:`~debiaskit.lock.RunLockedError` at once; a run that
    process finished is then returned as done. ``None`` (default): do not wait.
    """
    out_dir = Path(out_dir)
    device = resolve_device(cfg["device"])
    hp, tr = cfg["hparams"], cfg["train"]
    if wait_lock is not None and not wait_lock >= 0:
        raise DebiaskitError(f"wait_lock must be a number of seconds >= 0, got {wait_lock!r}")
    t_wait = time.monotonic()
    state = prepare_out_dir(out_dir, cfg)
    if state == "done":
        return RunResult(out_dir, _read_result(out_dir), already_done=True)
    if wait_lock is not None and out_dir.is_dir():  # wait before building anything: the run may get finished
        if not wait_until_free(out_dir, timeout=_remaining(wait_lock, t_wait), on_wait=_waiting_notice(out_dir)):
            raise RunLockedError(out_dir, RunLock(out_dir).owner(), waited=time.monotonic() - t_wait)
        state = prepare_out_dir(out_dir, cfg)
        if state == "done":
            return RunResult(out_dir, _read_result(out_dir), already_done=True)

    splits = build_data(cfg) if splits is None else prepare_splits(cfg, splits)
    train = splits["train"]
    multilabel = train.multilabel
    split_names = list(splits)
    rules = validate_rules(tr["selection"] or default_rules(split_names, multilabel=multilabel), split_names,
                           multilabel=multilabel)
    report_rule = tr["report"] or next((r for r in rules if r != "last" and not get_selection_rule(r).oracle), "last")
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
    n_params = sum(p.numel() for p in method.parameters())
    threads = choose_threads(tr.get("threads", "auto"), jobs=jobs, n_params=n_params)
    apply_threads(threads)

    out_dir.mkdir(parents=True, exist_ok=True)
    lock = RunLock(out_dir)
    if not lock.acquire():
        if wait_lock is None:
            raise RunLockedError(out_dir, lock.owner())
        _waiting_notice(out_dir)(lock.owner())
        lock.wait, lock.timeout = True, _remaining(wait_lock, t_wait)
        if not lock.acquire():
            raise RunLockedError(out_dir, lock.owner(), waited=time.monotonic() - t_wait)
    try:
        return _train_locked(cfg, out_dir, device=device, splits=splits, method=method, generator=generator,
                             rules=rules, report_rule=report_rule, eval_splits=eval_splits, threads=threads)
    finally:
        lock.release()


def _remaining(wait_lock: float, t0: float) -> float | None:
    """Seconds of ``wait_lock`` left since ``t0`` (``None``: no limit)."""
    return None if math.isinf(wait_lock) else max(0.0, wait_lock - (time.monotonic() - t0))


def _waiting_notice(out_dir: Path) -> Any:
    def notice(owner: dict[str, Any] | None) -> None:
        print(f"{out_dir} is in use by {describe_owner(owner)}; waiting for it (--wait-lock) ...", file=sys.stderr,
              flush=True)
    return notice


def _train_locked(
    cfg: dict[str, Any], out_dir: Path, *, device: torch.device, splits: DatasetSplits, method: Method,
    generator: torch.Generator, rules: list[str], report_rule: str, eval_splits: list[str], threads: Any,
) -> RunResult:
    hp, tr = cfg["hparams"], cfg["train"]
    state = prepare_out_dir(out_dir, cfg)  # again, now that we own the directory: another process may have
    if state == "done":  # finished it meanwhile
        return RunResult(out_dir, _read_result(out_dir), already_done=True)
    remove_stale_tmp(out_dir)
    train = splits["train"]
    images_device, index_device = data_devices(device, tr["data_on_device"])
    images = train.images.to(images_device)
    float_cache = use_float_cache(str(tr.get("float_cache", "auto")), images, device)
    if float_cache:
        images = prescale_images(images)
    targets, bias = train.targets.to(device), train.bias.to(device)
    transform = make_batch_transform(train.info, train=True, prescaled=float_cache)
    # indices are drawn where the run's generator lives (a CUDA generator cannot draw a CPU permutation)
    sampler = EpochSampler(len(train), hp["batch_size"], generator=generator, device=index_device)
    tracker = SelectionTracker(rules)
    accum = _Accumulator()
    nan_policy = tr.get("nan_policy", "error")
    guard = NonFiniteGuard(method, nan_policy, nan_max_skips(tr), device)
    averaged = None
    if tr.get("weight_average", "none") == "ema":
        averaged = WeightAverage(method, decay=float(tr.get("weight_average_decay", 0.999)),
                                 start=int(tr.get("weight_average_start", 0)))
    start_step, elapsed_prev = 0, 0.0
    ckpt = None
    if state == "resume":
        ckpt, notes = load_checkpoint(out_dir, map_location=device)
        for note in notes:
            warnings.warn(note, UserWarning, stacklevel=2)
    if ckpt is not None:
        method.load_state_dict(ckpt["method"])
        for k, o in method.optimizers.items():
            load_optimizer_state(o, ckpt["optimizers"][k])
        for k, s in method.schedulers.items():
            s.load_state_dict(ckpt["schedulers"][k])
        sampler.load_state_dict(ckpt["sampler"])
        generator.set_state(ckpt["generator"].to(generator.device) if device.type == "cuda" else ckpt["generator"])
        set_rng_state(ckpt["rng"])
        tracker.load_state_dict(ckpt["tracker"])
        accum.load_state_dict(ckpt["accum"], device)
        if averaged is not None:
            averaged.load_state_dict(ckpt["averaged"])
        guard.load_state_dict(ckpt.get("nan_guard"))
        start_step, elapsed_prev = int(ckpt["step"]), float(ckpt["elapsed"])
        kept = [r for r in read_jsonl(out_dir / "metrics.jsonl") if r.get("step", 0) <= start_step]
        write_text(out_dir / "metrics.jsonl", "".join(to_json(r, indent=None) + "\n" for r in kept))
        log.info("resuming %s from step %d", out_dir, start_step)
    else:
        write_yaml(out_dir / "config.yaml", stored_config(cfg))
        write_text(out_dir / "metrics.jsonl", "")

    steps = int(hp["steps"])
    t0 = time.perf_counter()
    train_time, train_steps = 0.0, 0
    bar = None
    if tr["progress"] and sys.stderr.isatty():
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, initial=start_step, desc=f"{cfg['method']}", unit="step", leave=True, dynamic_ncols=True)

    plain_log = bool(tr["progress"]) and bar is None
    next_log = time.perf_counter() + float(tr.get("log_every", 30))
    latest: dict[str, str] = {}

    def log_line(step: int) -> None:
        done = step - start_step
        sps = done / max(time.perf_counter() - t0, 1e-9)
        eta = (steps - step) / sps if sps > 0 else float("nan")
        extra = "".join(f", {k} {v}" for k, v in latest.items())
        print(f"[{cfg['method']}] step {step}/{steps}, {sps:.1f} steps/s, ETA {_fmt_secs(eta)}{extra}",
              file=sys.stderr, flush=True)

    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=tr.get("amp") == "bf16")

    def evaluate_all(step: int) -> dict[str, dict[str, Any]]:
        wall = elapsed_prev + time.perf_counter() - t0
        sps = train_steps / train_time if train_time > 0 else float("nan")
        guard.flush()  # a deferred non-finite step stops the run before any row is written
        skipped = accum.skipped
        train_logs = accum.pop_means()
        variants = [("raw", None)] + ([("ema", averaged)] if averaged is not None else [])
        results: dict[str, dict[str, Any]] = {}
        for weights, avg in variants:
            for s in eval_splits:
                if avg is None:
                    with autocast:
                        logits = predict_logits(method, splits[s], device=device, batch_size=tr["eval_batch_size"])
                else:
                    with avg.swapped_in(), autocast:
                        logits = predict_logits(method, splits[s], device=device, batch_size=tr["eval_batch_size"])
                m = split_metrics(logits, splits[s])
                row = {"step": step, "split": s, **({"weights": weights} if avg is not None else {}), **m,
                       "train_logs": train_logs,
                       **({"skipped_steps": skipped} if nan_policy == "skip" else {}),
                       "wall_time_s": wall, "steps_per_s": sps, "peak_memory_mb": _peak_memory_mb(device)}
                append_jsonl(out_dir / "metrics.jsonl", row)
                if avg is None:
                    results[s] = m
        for rule in tracker.update(step, results):
            if rule != "last":
                save_model(out_dir / f"model_{rule}.pt", method.state_dict())
        return results

    stopped_at: int | None = None

    def checkpoint(step: int) -> None:
        guard.flush()  # never checkpoint the state after a non-finite step
        save_checkpoint(
            out_dir,
            {
                "step": step,
                "method": method.state_dict(),
                "optimizers": {k: o.state_dict() for k, o in method.optimizers.items()},
                "schedulers": {k: s.state_dict() for k, s in method.schedulers.items()},
                "sampler": sampler.state_dict(),
                "generator": generator.get_state(),
                "rng": rng_state(),
                "tracker": tracker.state_dict(),
                "accum": accum.state_dict(),
                "averaged": averaged.state_dict() if averaged is not None else None,
                "nan_guard": guard.state_dict(),
                "elapsed": elapsed_prev + time.perf_counter() - t0,
            },
        )

    memory_format = torch.channels_last if tr.get("channels_last") else torch.contiguous_format
    last_results: dict[str, dict[str, Any]] = {}
    stop = _StopOnSignal()
    stop.install()
    try:
        for step in range(start_step + 1, steps + 1):
            ts = time.perf_counter()
            idx = method.sample_indices(step)
            if idx is None:
                idx = sampler.next()
            idx_d = idx.to(images.device)
            # the batch is moved to ``device`` before the transform, so the run's generator (on ``device``) draws
            # the augmentation wherever the images live
            x = transform(images.index_select(0, idx_d).to(device, non_blocking=True), generator)
            if memory_format is torch.channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=memory_format)
            idx = idx.to(device)
            guard.before_update()
            with autocast:
                logs = method.update(Batch(idx=idx, x=x, y=targets[idx], b=bias[idx]), step)
            kept = guard.after_update(step, logs)  # raises on a non-finite step (error), or undoes it (skip)
            method.on_step_end(step)
            if averaged is not None:
                averaged.update(step)
            if kept:
                accum.add(logs)
            else:
                accum.skipped += 1
            train_time += time.perf_counter() - ts
            train_steps += 1
            if bar is not None:
                bar.update(1)
            if plain_log and time.perf_counter() >= next_log:
                log_line(step)
                next_log = time.perf_counter() + float(tr.get("log_every", 30))
            if step % tr["eval_every"] == 0 or step == steps:
                last_results = evaluate_all(step)
                for s_name in ("val", "val_unbiased", "test"):
                    m = last_results.get(s_name, {})
                    key = "unbiased_accuracy" if "unbiased_accuracy" in m else "mAP" if "mAP" in m else None
                    if key and m.get(key) is not None:
                        latest[s_name] = f"{key} {100 * m[key]:.1f}% (step {step})"
                if bar is not None and latest:
                    bar.set_postfix_str("; ".join(f"{k} {v}" for k, v in latest.items()), refresh=False)
                if method.on_eval(step, last_results, out_dir) and step < steps:
                    stopped_at = step
            if step % tr["checkpoint_every"] == 0 or step == steps or stopped_at is not None:
                checkpoint(step)
            if stop.signum is not None:
                checkpoint(step)
                name = signal.Signals(stop.signum).name
                raise RunInterrupted(f"{name} at step {step}: checkpoint written to {out_dir}; run the same command "
                                     f"to resume")
            if stopped_at is not None:
                log.info("%s asked to stop early at step %d", cfg["method"], step)
                break
    finally:
        stop.restore()
    if bar is not None:
        bar.close()
    if plain_log:
        log_line(step)

    guard.flush()
    save_model(out_dir / "model_last.pt", method.state_dict())
    wall = elapsed_prev + time.perf_counter() - t0
    rows = read_jsonl(out_dir / "metrics.jsonl")
    result = build_result(cfg, method=method, splits=splits, rules=rules, report_rule=report_rule, rows=rows,
                          steps=steps, stopped_at=stopped_at, wall=wall,
                          steps_per_s=train_steps / train_time if train_time > 0 else None,
                          device=device, threads=threads.as_dict())
    if nan_policy == "skip":
        result["skipped_steps"] = guard.skipped_total
    result["float_cache"] = float_cache
    write_json(out_dir / "result.json", result)
    return RunResult(out_dir, result, resumed_from=start_step)


def _fmt_secs(s: float) -> str:
    if not math.isfinite(s):
        return "?"
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def selection_summary(rules: list[str], rows: list[dict[str, Any]], *, kept: set[str] | None = None,
                      weights: str = "raw") -> dict[str, Any]:
    """``{rule: {label, split, metric, mode, step, score, labels_consumed, weights_kept, metrics}}``."""
    out: dict[str, Any] = {}
    for name in rules:
        rule = get_selection_rule(name)
        sel = select(rule, rows, weights=weights)
        if sel.step is None:
            continue
        out[name] = {
            "label": rule.label, "description": rule.description, "split": rule.split, "metric": rule.metric,
            "mode": rule.mode, "labels_consumed": list(rule.labels_consumed), "step": sel.step, "score": sel.score,
            "weights_kept": kept is not None and name in kept,
            "metrics": {s: _scalars(r) for s, r in sel.metrics.items()},
        }
    return out


def _scalars(row: dict[str, Any]) -> dict[str, Any]:
    """The scalar metric fields of an evaluation row (no bookkeeping, timing or per-cell matrices)."""
    skip = {"step", "split", "weights", "train_logs", "skipped_steps", "group_count", "group_correct", *TIMING_FIELDS}
    return {k: v for k, v in row.items() if k not in skip}


def build_result(
    cfg: dict[str, Any], *, method: Method, splits: DatasetSplits, rules: list[str], report_rule: str,
    rows: list[dict[str, Any]], steps: int, stopped_at: int | None, wall: float, steps_per_s: float | None,
    device: torch.device, threads: dict[str, Any],
) -> dict[str, Any]:
    train = splits["train"]
    summary = selection_summary(rules, rows, kept=set(rules))
    weights_variants = sorted({r.get("weights", "raw") for r in rows} - {"raw"})
    result: dict[str, Any] = {
        "debiaskit_version": __version__,
        "run_key": run_key(stored_config(cfg)),
        "method": cfg["method"],
        "dataset": cfg["dataset"]["name"],
        "dataset_options": {k: v for k, v in cfg["dataset"].items() if k != "name"},
        "seed": cfg["seed"],
        "hparams_seed": cfg.get("hparams_seed", 0),
        "steps": steps,
        "early_stopped_at_step": stopped_at,
        "labels_consumed": list(type(method).labels_consumed),
        "uses_bias_labels": method.uses_bias_labels,
        "evaluated_model": type(method).evaluated_model,
        "model": sorted({getattr(m, "registry_name", None) for m in method.modules() if getattr(m, "registry_name", None)}),
        "data": {
            "fingerprint": splits.fingerprint,
            "splits": {k: v.summary() for k, v in splits.items()},
            "info": {k: v for k, v in train.info.items() if isinstance(v, (str, int, float, bool, type(None)))},
        },
        "selection_rules": rules,
        "reported_selection": report_rule,
        "reported": summary.get(report_rule, {}).get("metrics", {}),
        "selection": summary,
        "final": summary.get("last", {}).get("metrics", {}),
        "weight_averages": {w: selection_summary(rules, rows, weights=w) for w in weights_variants},
        "n_evaluations": len({int(r["step"]) for r in rows}),
        "wall_time_s": wall,
        "steps_per_s": steps_per_s,
        "device": str(device),
        "threads": threads,
        "optimizer_impl": {k: optimizer_impl(o) for k, o in method.optimizers.items()},
        "torch_version": torch.__version__,
        "peak_memory_mb": _peak_memory_mb(device),
        "config": stored_config(cfg),
        "canonical_config": canonical_config(stored_config(cfg)),
    }
    if any(get_selection_rule(r).oracle for r in rules):
        result["oracle_note"] = ORACLE_LABEL
    # which plugin / module provided the method, dataset and model (a new process can name a missing one)
    result["provenance"] = run_provenance(cfg, built_models=result["model"])
    return result
