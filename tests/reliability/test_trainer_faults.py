"""Fault injection on tiny training runs: kill and resume, SIGTERM, concurrent sweeps, non-finite losses.

The kill tests fork the trainer and end it with ``os._exit`` at its k-th file-system event (every atomic write
of a checkpoint, model file or result is several events), or with SIGKILL at a random moment, then run the
same training again in the same directory and compare with an uninterrupted run: the final weights and the
evaluation rows of ``metrics.jsonl`` (timing fields aside) must be identical.

The trainer uses ``train.checkpoint`` (verified checkpoints, last two kept) and ``debiaskit.lock`` (one
owner per run directory).
"""

from __future__ import annotations

import os
import shutil
import random
import signal
import sys
import time
from pathlib import Path

import pytest
import torch

from debiaskit.experiments.config import apply_overrides, resolve_config
from debiaskit.io import read_jsonl

from reliability._faults import crash_at  # noqa: E402
from toydata import register_toy  # noqa: E402

TOY = register_toy()
TIMING = ("wall_time_s", "steps_per_s", "peak_memory_mb", "elapsed_s", "time_s")
pytestmark = [pytest.mark.skipif(not hasattr(os, "fork") or sys.platform != "linux", reason="needs fork (Linux)"),
              pytest.mark.slow]


def tiny_cfg(method: str = "vanilla", steps: int = 12, **sets: str) -> dict:
    base = {"dataset": {"name": TOY}, "method": method, "device": "cpu", "seed": 3,
            "hparams": {"model": "mlp", "model_kwargs": {"hidden": [8]}, "batch_size": 32, "steps": steps},
            "train": {"eval_every": 3, "checkpoint_every": 3, "progress": False, "threads": 1}}
    return resolve_config(apply_overrides(base, [f"{k}={v}" for k, v in sets.items()]))


def train(cfg: dict, out: Path):
    from debiaskit.train.trainer import run_training

    return run_training(cfg, out)


def fingerprint(run: Path) -> tuple[dict, list[dict]]:
    weights = torch.load(run / "model_last.pt", map_location="cpu", weights_only=True)
    rows = [{k: v for k, v in r.items() if k not in TIMING} for r in read_jsonl(run / "metrics.jsonl")]
    return weights, rows


def assert_same(a: Path, b: Path) -> None:
    wa, ra = fingerprint(a)
    wb, rb = fingerprint(b)
    assert list(wa) == list(wb) and all(torch.equal(wa[k], wb[k]) for k in wa), "weights differ after resume"
    assert ra == rb, "metrics.jsonl differs after resume"


def _fork(fn, *args) -> int:
    pid = os.fork()
    if pid == 0:
        try:
            fn(*args)
            os._exit(0)
        except BaseException:  # pragma: no cover
            os._exit(1)
    return pid


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[dict, Path]:
    cfg = tiny_cfg()
    ref = tmp_path_factory.mktemp("ref") / "run"
    train(cfg, ref)
    return cfg, ref


def _kill_and_resume(cfg: dict, ref: Path, tmp_path: Path, events: tuple[int, ...]) -> int:
    killed = 0
    for k in events:
        d = tmp_path / f"k{k}"
        rc = crash_at(k, train, cfg, d)
        if rc == 0:
            break
        assert rc == 77
        killed += 1
        train(cfg, d)  # the same command again
        assert_same(ref, d)
    return killed


def test_kill_at_file_system_events_then_resume_is_identical(reference, tmp_path):
    """Kills during metrics, model-file, checkpoint and result writes (events 3 .. 33 of a 12-step run)."""
    cfg, ref = reference
    assert _kill_and_resume(cfg, ref, tmp_path, (4, 10, 17, 26, 31)) == 5


def test_kill_while_writing_the_first_config_then_resume(reference, tmp_path):
    """A kill during the very first atomic write (config.yaml) leaves only a temp file behind."""
    cfg, ref = reference
    assert _kill_and_resume(cfg, ref, tmp_path, (1, 2)) == 2


def test_sigkill_at_random_moments_then_resume_is_identical(reference, tmp_path):
    cfg, ref = reference
    rnd = random.Random(0)
    for i in range(3):
        d = tmp_path / f"r{i}"
        pid = _fork(train, cfg, d)
        time.sleep(rnd.uniform(0.05, 1.0))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        train(cfg, d)
        assert_same(ref, d)


def test_garbled_middle_of_metrics_is_refused_not_rewritten(reference, tmp_path):
    import shutil

    from debiaskit.errors import DebiaskitError

    cfg, ref = reference
    d = tmp_path / "run"
    rc = crash_at(26, train, cfg, d)  # an interrupted run with some history
    assert rc == 77
    m = d / "metrics.jsonl"
    lines = m.read_bytes().split(b"\n")
    if len([ln for ln in lines if ln.strip()]) < 3:
        pytest.skip("too little history at this kill point")
    lines[1] = b'{"step": 3, "spl'
    m.write_bytes(b"\n".join(lines))
    before = m.read_bytes()
    with pytest.raises(DebiaskitError, match="corrupted at line 2"):
        train(cfg, d)
    assert m.read_bytes() == before
    shutil.rmtree(d)


def test_garbled_checkpoint_falls_back_and_resumes_identically(reference, tmp_path, capsys):
    from reliability._faults import garble

    cfg, ref = reference
    d = tmp_path / "run"
    for k in range(5, 80):  # the first kill point after which a verified checkpoint exists
        if d.exists():
            shutil.rmtree(d)
        assert crash_at(k, train, cfg, d) == 77
        if (d / "checkpoint.pt.sha256").exists() and not (d / "result.json").exists():
            break
    assert (d / "checkpoint.pt.sha256").exists()
    garble(d / "checkpoint.pt")
    with pytest.warns(UserWarning, match="checkpoint.pt rejected"):
        train(cfg, d)
    assert_same(ref, d)


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated"])
def test_empty_or_truncated_checkpoint_restarts_with_one_warning(reference, tmp_path, capsys, content):
    cfg, ref = reference
    d = tmp_path / "run"
    assert crash_at(13, train, cfg, d) == 77
    (d / "checkpoint.pt").write_bytes(content)
    train(cfg, d)
    assert_same(ref, d)


def test_stale_temp_files_are_removed_on_the_next_start(reference, tmp_path):
    cfg, ref = reference
    d = tmp_path / "run"
    for k in range(1, 30):  # find a kill point that leaves an atomic writer's temp file
        if d.exists():
            import shutil

            shutil.rmtree(d)
        assert crash_at(k, train, cfg, d) in (0, 77)
        if list(d.glob(".*.tmp")):
            break
    else:  # pragma: no cover
        pytest.skip("no kill point left a temp file")
    train(cfg, d)
    assert not list(d.glob(".*.tmp"))


def test_sigterm_checkpoints_exits_nonzero_and_resumes(reference, tmp_path):
    cfg, ref = reference
    cfg = {**cfg, "hparams": {**cfg["hparams"], "steps": 400}, "train": {**cfg["train"], "checkpoint_every": 1000}}
    d = tmp_path / "run"
    pid = _fork(train, cfg, d)
    deadline = time.time() + 60
    while not (d / "metrics.jsonl").exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    os.kill(pid, signal.SIGTERM)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    assert code not in (0, -signal.SIGTERM)  # handled: a non-zero exit status, not death by the signal
    assert (d / "checkpoint.pt").exists()  # written on the signal (checkpoint_every is beyond the run)


def test_two_sweeps_at_once_train_every_run_once(tmp_path):
    import yaml

    from debiaskit.cli import main

    spec = {"name": "two", "datasets": {TOY: {}}, "ratios": [0.05, 0.1], "seeds": [0, 1],
            "methods": {"vanilla": {"hparams": {"model": "mlp", "model_kwargs": {"hidden": [8]}, "steps": 30,
                                                "batch_size": 32}}},
            "base": {"device": "cpu", "train": {"eval_every": 30, "checkpoint_every": 30, "progress": False}}}
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(spec))
    out = tmp_path / "sweep"
    pids = [_fork(main, ["sweep", str(f), "--out", str(out)]) for _ in range(2)]
    for pid in pids:
        os.waitpid(pid, 0)
    runs = [p.parent for p in out.rglob("result.json")]
    assert len(runs) == 4
    for r in runs:
        steps = [row["step"] for row in read_jsonl(r / "metrics.jsonl") if row.get("split") == "test"]
        assert steps == sorted(set(steps)), f"{r.name} was trained twice"


def test_non_finite_loss_stops_with_one_line_naming_the_step(tmp_path):
    from debiaskit.errors import DebiaskitError

    cfg = tiny_cfg(**{"hparams.lr": "1e30", "hparams.optimizer": "sgd", "hparams.momentum": "0"})
    with pytest.raises(DebiaskitError) as ei:
        train(cfg, tmp_path / "run")
    assert "step" in str(ei.value) and ("nan" in str(ei.value).lower() or "inf" in str(ei.value).lower())
    assert not (tmp_path / "run" / "result.json").exists()
