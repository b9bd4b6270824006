"""Target of the spawned processes in test_lock.py (must be importable by the child)."""

from __future__ import annotations

import time


def hold(run_dir: str, ready, release) -> None:
    """Take the run lock, signal ``ready``, hold it until ``release`` is set (or 30 s)."""
    from debiaskit.lock import RunLock

    with RunLock(run_dir):
        ready.set()
        release.wait(30)


def count_trainings(run_dir: str, log: str, start, n_seconds: float) -> None:
    """Contend for the lock like a sweep worker: train (append a line to ``log``) only when it is free."""
    from debiaskit.lock import RunLock

    start.wait(60)  # a Barrier shared with the other contenders and the test
    lock = RunLock(run_dir)
    if lock.acquire():
        try:
            with open(log, "a") as f:
                f.write("trained\n")
            time.sleep(n_seconds)
        finally:
            lock.release()
