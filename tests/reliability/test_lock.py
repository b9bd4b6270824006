"""Run locks: one owner per run directory, across processes; released when the owner is SIGKILLed."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import socket
import time

import pytest

from debiaskit.errors import DebiaskitError
from debiaskit.lock import LOCK_NAME, RunLock, RunLockedError

from reliability import _lock_child  # noqa: E402


def test_acquire_release_and_owner(tmp_path):
    lock = RunLock(tmp_path / "run")
    assert lock.owner() is None
    assert lock.acquire() and lock.held
    owner = RunLock(tmp_path / "run").owner()
    assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname() and owner["started"]
    assert lock.acquire()  # re-acquiring a held lock is a no-op
    lock.release()
    assert not lock.held and RunLock(tmp_path / "run").owner() is None
    assert (tmp_path / "run" / LOCK_NAME).exists()  # the file stays; only the OS lock counts
    lock.release()  # releasing twice is harmless


def test_second_lock_in_the_same_process_is_refused(tmp_path):
    with RunLock(tmp_path) as first:
        assert first.held
        assert RunLock(tmp_path).acquire() is False
        with pytest.raises(RunLockedError) as ei:
            with RunLock(tmp_path):
                pass
        assert f"pid {os.getpid()}" in str(ei.value) and isinstance(ei.value, DebiaskitError)
        assert ei.value.owner["pid"] == os.getpid()
    assert RunLock(tmp_path).acquire()


def test_wait_with_timeout(tmp_path):
    with RunLock(tmp_path):
        t0 = time.monotonic()
        assert RunLock(tmp_path, wait=True, timeout=0.3).acquire() is False
        assert 0.25 <= time.monotonic() - t0 < 3
    assert RunLock(tmp_path, wait=True, timeout=0.3).acquire() is True
    with pytest.raises(DebiaskitError, match="timeout"):
        RunLock(tmp_path, timeout=-1)


@pytest.fixture
def spawn():
    ctx = mp.get_context("spawn")
    procs = []
    yield ctx, procs
    for p in procs:
        if p.is_alive():
            p.kill()
        p.join(10)


def test_two_processes_contend_and_sigkill_releases_the_lock(tmp_path, spawn):
    ctx, procs = spawn
    ready, release = ctx.Event(), ctx.Event()
    child = ctx.Process(target=_lock_child.hold, args=(str(tmp_path), ready, release))
    procs.append(child)
    child.start()
    assert ready.wait(60), "child did not take the lock"
    mine = RunLock(tmp_path)
    assert mine.acquire() is False
    assert mine.owner()["pid"] == child.pid
    with pytest.raises(RunLockedError, match=f"pid {child.pid}"):
        with RunLock(tmp_path):
            pass
    os.kill(child.pid, signal.SIGKILL)  # no cleanup runs in the child
    child.join(10)
    assert RunLock(tmp_path, wait=True, timeout=5).acquire() is True


def test_waiting_lock_gets_it_when_the_owner_releases(tmp_path, spawn):
    ctx, procs = spawn
    ready, release = ctx.Event(), ctx.Event()
    child = ctx.Process(target=_lock_child.hold, args=(str(tmp_path), ready, release))
    procs.append(child)
    child.start()
    assert ready.wait(60)
    release.set()
    assert RunLock(tmp_path, wait=True, timeout=20).acquire() is True
    child.join(10)
    assert child.exitcode == 0


def test_many_contenders_train_once(tmp_path, spawn):
    ctx, procs = spawn
    n = 3
    start = ctx.Barrier(n + 1)
    log = tmp_path / "log.txt"
    for _ in range(n):
        p = ctx.Process(target=_lock_child.count_trainings, args=(str(tmp_path / "run"), str(log), start, 1.0))
        procs.append(p)
        p.start()
    start.wait(60)  # every contender is up: they all try the lock now
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * n
    assert log.read_text().count("trained") == 1


# ------------------------------------------------------------------------------------- --wait-lock
def _slow_cfg(steps: int = 150, sleep_s: float = 0.0, gate: str = "") -> dict:
    from debiaskit.experiments.config import resolve_config
    from toydata import register_toy

    return resolve_config({"dataset": {"name": register_toy()}, "method": _lock_child.register_slow(),
                           "device": "cpu", "seed": 0,
                           "hparams": {"model": "mlp", "model_kwargs": {"hidden": [8]}, "batch_size": 32,
                                       "steps": steps, "sleep_s": sleep_s, "gate": gate},
                           "train": {"eval_every": 50, "checkpoint_every": 50, "progress": False, "threads": 1}})


def _wait_for_owner(run_dir, pid: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        owner = RunLock(run_dir).owner()
        if owner and owner.get("pid") == pid:
            return
        time.sleep(0.02)
    raise AssertionError(f"pid {pid} never took the lock of {run_dir}")


@pytest.mark.slow
def test_train_wait_lock_waits_for_a_live_trainer_then_shows_its_run_as_done(tmp_path, spawn, capsys):
    """Two processes, one run directory: the second `train --wait-lock` waits, then finds the run finished.

    The first trainer (a spawned process) stops at step 2 until the gate file appears, so it certainly holds
    the lock while the second one starts; the gate opens 0.5 s after the second one began to wait.
    """
    import threading

    from debiaskit.io import read_jsonl
    from debiaskit.train.trainer import run_training

    ctx, procs = spawn
    gate = tmp_path / "go"
    cfg, d = _slow_cfg(gate=str(gate)), tmp_path / "run"
    child = ctx.Process(target=_lock_child.train, args=(cfg, str(d)))
    procs.append(child)
    child.start()
    _wait_for_owner(d, child.pid)
    with pytest.raises(RunLockedError, match=f"pid {child.pid}"):  # without the option: refused at once
        run_training(cfg, d)
    threading.Timer(0.5, gate.touch).start()
    t0 = time.monotonic()
    res = run_training(cfg, d, wait_lock=120)
    assert res.already_done and time.monotonic() - t0 >= 0.5
    child.join(60)
    assert child.exitcode == 0
    err = capsys.readouterr().err
    assert f"is in use by pid {child.pid}" in err and "waiting for it (--wait-lock)" in err
    steps = [r["step"] for r in read_jsonl(d / "metrics.jsonl") if r["split"] == "test"]
    assert steps == [50, 100, 150]  # trained once, by the first process


def test_wait_lock_trains_the_run_itself_when_the_owner_gives_up(tmp_path, spawn, capsys):
    """The holder releases without finishing: the waiting trainer then trains the run."""
    import threading

    from debiaskit.train.trainer import run_training

    ctx, procs = spawn
    d = tmp_path / "run"
    ready, release = ctx.Event(), ctx.Event()
    child = ctx.Process(target=_lock_child.hold, args=(str(d), ready, release))
    procs.append(child)
    child.start()
    assert ready.wait(60)
    threading.Timer(0.5, release.set).start()
    res = run_training(_slow_cfg(steps=4), d, wait_lock=60)
    assert not res.already_done and res.result["steps"] == 4
    err = capsys.readouterr().err
    assert f"is in use by pid {child.pid}" in err and "waiting for it (--wait-lock)" in err


def test_wait_lock_gives_up_after_its_timeout(tmp_path, spawn, capsys):
    from debiaskit.cli import main

    ctx, procs = spawn
    d = tmp_path / "run"
    ready, release = ctx.Event(), ctx.Event()
    child = ctx.Process(target=_lock_child.hold, args=(str(d), ready, release))
    procs.append(child)
    child.start()
    assert ready.wait(60)
    from toydata import register_toy

    t0 = time.monotonic()
    rc = main(["train", "--dataset", register_toy(), "--steps", "2", "--device", "cpu", "--no-progress",
               "--set", "hparams.model=mlp", "--out", str(d), "--wait-lock=0.6"])
    waited = time.monotonic() - t0
    release.set()
    err = capsys.readouterr().err
    assert rc == 2 and 0.5 < waited < 30
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and f"in use by pid {child.pid}" in errors[0] and "still in use after waiting" in errors[0]


def test_wait_until_free_creates_nothing(tmp_path):
    from debiaskit.lock import wait_until_free

    assert wait_until_free(tmp_path / "none") and not (tmp_path / "none").exists()
    seen = []
    with RunLock(tmp_path / "r"):
        assert wait_until_free(tmp_path / "r", timeout=0.2, on_wait=seen.append) is False
    assert seen and seen[0]["pid"] == os.getpid()
    assert wait_until_free(tmp_path / "r", timeout=0.2)
