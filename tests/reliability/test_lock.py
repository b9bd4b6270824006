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
