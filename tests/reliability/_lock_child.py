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


SLOW = "test_slow_vanilla"


def register_slow() -> str:
    """``vanilla`` that sleeps ``hparams.sleep_s`` per step and, with ``hparams.gate`` (a file name), waits at
    step 2 until that file exists (at most 60 s): a run that holds its lock until the test lets it go on."""
    from pathlib import Path

    from debiaskit.methods.registry import METHODS, register_method
    from debiaskit.methods.vanilla import Vanilla

    if SLOW not in METHODS.list("*"):
        class SlowVanilla(Vanilla):
            default_hparams = {"sleep_s": 0.0, "gate": ""}

            def update(self, batch, step):
                time.sleep(self.hparams["sleep_s"])
                gate = self.hparams["gate"]
                if gate and step == 2:
                    deadline = time.monotonic() + 60
                    while not Path(gate).exists() and time.monotonic() < deadline:
                        time.sleep(0.02)
                return super().update(batch, step)

        register_method(SLOW)(SlowVanilla)
    return SLOW


def train(cfg: dict, run_dir: str) -> None:
    """Train a resolved toy config (as a second `debiaskit train` would)."""
    import torch

    from toydata import register_toy

    torch.set_num_threads(1)
    register_toy()
    register_slow()
    from debiaskit.train.trainer import run_training

    run_training(cfg, run_dir)
