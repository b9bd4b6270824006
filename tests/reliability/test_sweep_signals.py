"""Sweeps under signals and contention: SIGTERM reaches the workers, orphans stop, locked runs are waited for.

* ``sweep --jobs 2`` SIGTERMed: the parent forwards the signal, its two workers checkpoint and exit, the
  parent exits with one ``error:`` line; running the command again finishes the sweep with the same records
  as an uninterrupted sweep.
* the parent killed with SIGKILL: each worker notices (its lifeline pipe reads end-of-file), checkpoints and
  exits, so no orphan keeps training or holding a run lock.
* an in-process sweep (``--jobs 1``) SIGTERMed stops; it does not go on with the next run.
* ``--wait-lock``: a run another process holds is retried after the others, once that process lets go.
* the Ray driver treats SIGTERM like Ctrl-C (its tasks are cancelled, ``sweep.json`` written).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
import yaml

from debiaskit.experiments.records import make_record
from debiaskit.experiments.sweep import SweepInterrupted, expand_sweep, run_sweep, sigterm_as_keyboard_interrupt
from debiaskit.lock import RunLock

from reliability import _lock_child, _sweep_toy  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="signals and /proc (Linux)")


def spec(steps: int, seeds: list[int]) -> dict:
    return {"name": "sig", "datasets": {_sweep_toy.DATASET: {}}, "seeds": seeds,
            "methods": {_sweep_toy.METHOD: {"hparams": {"model": "mlp", "model_kwargs": {"hidden": [8]},
                                                        "batch_size": 32, "steps": steps}}},
            "base": {"device": "cpu", "train": {"eval_every": 50, "checkpoint_every": 50, "progress": False}}}


def sweep_cmd(f: Path, out: Path, *extra: str) -> list[str]:
    code = "import sys, reliability._sweep_toy; from debiaskit.cli import main; sys.exit(main(sys.argv[1:]))"
    return [sys.executable, "-c", code, "sweep", str(f), "--out", str(out), "--threads", "1", *extra]


def env(sleep: float) -> dict[str, str]:
    path = os.pathsep.join([str(REPO / "src"), str(REPO / "tests"), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "DEBIASKIT_NUM_THREADS": "1", "DEBIASKIT_TEST_STEP_SLEEP": str(sleep)}


def alive(pid: int) -> bool:
    """Running (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_for_workers(out: Path, n: int, proc: subprocess.Popen, timeout: float = 240) -> list[int]:
    """The pids of ``n`` workers that hold their run's lock and have written a checkpoint."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        pids = []
        for d in sorted((out / "runs").glob("*")) if (out / "runs").is_dir() else []:
            owner = RunLock(d).owner()
            if owner and owner.get("pid") and (d / "checkpoint.pt.sha256").exists():
                pids.append(int(owner["pid"]))
        if len(pids) == n:
            return pids
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"{n} workers did not start training in {timeout} s: {proc.communicate()}")


def fingerprint(run_dir: Path) -> tuple[dict, list]:
    w = torch.load(run_dir / "model_last.pt", map_location="cpu", weights_only=True)
    return w, make_record(run_dir)["evaluations"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, tuple[dict, list]]:
    """The uninterrupted sweep, in this process."""
    out = tmp_path_factory.mktemp("ref")
    runs = expand_sweep(spec(300, [0, 1]), out)
    manifest = run_sweep(runs, out, threads=1, echo=lambda s: None)
    assert manifest["n_failed"] == 0
    return {r.run_dir.name: fingerprint(r.run_dir) for r in runs}


@pytest.mark.slow
def test_sigterm_to_a_jobs_2_sweep_stops_both_workers_and_the_rerun_finishes_identically(tmp_path, reference):
    f, out = tmp_path / "s.yaml", tmp_path / "sweep"
    f.write_text(yaml.safe_dump(spec(300, [0, 1])))
    proc = subprocess.Popen(sweep_cmd(f, out, "--jobs", "2"), env=env(0.02), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    pids = wait_for_workers(out, 2, proc)
    assert all(alive(p) for p in pids) and proc.pid not in pids
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1, err
    assert "SIGTERM: sweep stopped; 2 running run(s) checkpointed" in errors[0] and "Traceback" not in err
    assert not [p for p in pids if alive(p)], "a worker survived its parent"
    manifest = json.loads((out / "sweep.json").read_text())
    assert [e["status"] for e in manifest["runs"]] == ["interrupted", "interrupted"]
    for d in (out / "runs").iterdir():
        assert RunLock(d).owner() is None  # the locks are free
        assert not (d / "result.json").exists()
    # the same command again (no sleep: faster) resumes both runs and finishes the sweep
    again = subprocess.run(sweep_cmd(f, out, "--jobs", "2"), env=env(0.0), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    got = {d.name: fingerprint(d) for d in (out / "runs").iterdir()}
    assert sorted(got) == sorted(reference)
    for name, (w, rows) in got.items():
        wr, rows_r = reference[name]
        assert all(torch.equal(w[k], wr[k]) for k in wr), f"{name}: weights differ from the uninterrupted sweep"
        assert rows == rows_r, f"{name}: records differ from the uninterrupted sweep"


@pytest.mark.slow
def test_workers_stop_when_the_sweep_parent_is_killed(tmp_path):
    f, out = tmp_path / "s.yaml", tmp_path / "sweep"
    f.write_text(yaml.safe_dump(spec(3000, [0, 1])))
    proc = subprocess.Popen(sweep_cmd(f, out, "--jobs", "2"), env=env(0.02), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    pids = wait_for_workers(out, 2, proc)
    proc.kill()  # SIGKILL: the parent runs no clean-up at all
    proc.communicate(timeout=60)
    deadline = time.monotonic() + 30
    while [p for p in pids if alive(p)] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in pids if alive(p)], "orphaned workers kept training"
    for d in (out / "runs").iterdir():
        assert RunLock(d).acquire()  # no orphan holds a run lock
        assert torch.load(d / "checkpoint.pt", weights_only=True)["step"] < 3000  # stopped, checkpointed


def _fork_sweep(argv: list[str]) -> int:
    from debiaskit.cli import main

    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = main(argv)
        finally:
            os._exit(code)
    return pid


@pytest.mark.slow
def test_sigterm_stops_an_in_process_sweep_instead_of_starting_the_next_run(tmp_path, monkeypatch):
    if not hasattr(os, "fork"):
        pytest.skip("needs fork")
    monkeypatch.setenv("DEBIASKIT_TEST_STEP_SLEEP", "0.02")
    f, out = tmp_path / "s.yaml", tmp_path / "sweep"
    f.write_text(yaml.safe_dump(spec(3000, [0, 1])))
    pid = _fork_sweep(["sweep", str(f), "--out", str(out), "--threads", "1"])
    deadline = time.monotonic() + 120
    while not list(out.glob("runs/*/checkpoint.pt.sha256")) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(pid, signal.SIGTERM)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 2
    manifest = json.loads((out / "sweep.json").read_text())
    assert sorted(e["status"] for e in manifest["runs"]) == ["interrupted", "pending"]
    assert len(list(out.glob("runs/*/checkpoint.pt"))) == 1  # the second run never started


def test_sigterm_between_in_process_runs_raises_sweep_interrupted(tmp_path, monkeypatch):
    """A signal outside a run's training loop (here: while the second run builds its data) stops the sweep."""
    from debiaskit.train import trainer

    runs = expand_sweep(spec(4, [0, 1]), tmp_path)
    real = trainer.build_data
    calls = []

    def build_then_signal(cfg):
        calls.append(cfg["seed"])
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(cfg)

    monkeypatch.setattr(trainer, "build_data", build_then_signal)
    before = signal.getsignal(signal.SIGTERM)  # SIG_DFL, or what an earlier test (Ray) installed
    with pytest.raises(SweepInterrupted, match="SIGTERM: sweep stopped; 1 running run"):
        run_sweep(runs, tmp_path, threads=1, echo=lambda s: None)
    manifest = json.loads((tmp_path / "sweep.json").read_text())
    assert [e["status"] for e in manifest["runs"]] == ["done", "interrupted"]
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is restored


def test_wait_lock_retries_a_locked_run_after_the_others(tmp_path):
    """Run 0 is held by another process: with wait_lock it is put back, run 1 trains, then run 0 is waited for
    (the holder lets go once run 1 has finished) and trained."""
    import multiprocessing as mp

    runs = expand_sweep(spec(4, [0, 1]), tmp_path)
    ctx = mp.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_lock_child.hold, args=(str(runs[0].run_dir), ready, release))
    holder.start()

    def release_after_run_1() -> None:
        deadline = time.monotonic() + 120
        while not (runs[1].run_dir / "result.json").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)
        release.set()

    msgs: list[str] = []
    try:
        assert ready.wait(60)
        threading.Thread(target=release_after_run_1, daemon=True).start()
        manifest = run_sweep(runs, tmp_path, threads=1, echo=msgs.append, wait_lock=60)
    finally:
        release.set()
        holder.join(10)
    assert [e["status"] for e in manifest["runs"]] == ["done", "done"]
    name0, name1 = runs[0].run_dir.name, runs[1].run_dir.name
    order = [m.split()[0] + " " + m.split()[1].rstrip(":") for m in msgs if m.split()[0] in ("busy", "done")]
    assert order == [f"busy {name0}", f"done {name1}", f"done {name0}"], msgs
    assert "retried after the other runs (--wait-lock)" in next(m for m in msgs if m.startswith("busy"))


def test_without_wait_lock_a_locked_run_is_skipped(tmp_path):
    runs = expand_sweep(spec(4, [0]), tmp_path)
    with RunLock(runs[0].run_dir):
        msgs: list[str] = []
        manifest = run_sweep(runs, tmp_path, threads=1, echo=msgs.append)
    assert manifest["runs"][0]["status"] == "skipped (locked by another process)"
    assert any(m.startswith("skip") and f"pid {os.getpid()}" in m for m in msgs)


def test_sigterm_context_raises_keyboard_interrupt_and_restores():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        with sigterm_as_keyboard_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
    assert signal.getsignal(signal.SIGTERM) is before


def test_ray_driver_cancels_its_tasks_on_sigterm(tmp_path, monkeypatch):
    """A fake Ray module: SIGTERM while waiting → in-flight tasks cancelled, sweep.json written, Ctrl-C path."""
    from debiaskit.experiments import backends

    class FakeRay:
        def __init__(self) -> None:
            self.cancelled: list[object] = []

        def remote(self, *args, **kw):
            if kw:  # the progress tracker actor: not available here
                raise RuntimeError("no actors")
            ray = self

            class Task:
                def options(self, **kw):
                    return self

                def remote(self, *a, **k):
                    return object()

            return Task()

        def wait(self, refs, num_returns=1, timeout=None):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
            return [], refs

        def cancel(self, ref, force=False):
            self.cancelled.append(ref)

        def shutdown(self) -> None:
            pass

    fake = FakeRay()
    monkeypatch.setattr(backends, "_import_ray", lambda: fake)
    monkeypatch.setattr(backends, "_connect", lambda ray, address: True)
    runs = expand_sweep(spec(4, [0, 1]), tmp_path)
    with pytest.raises(KeyboardInterrupt):
        backends.run_sweep_ray(runs, tmp_path, echo=lambda s: None)
    assert len(fake.cancelled) == 2
    manifest = json.loads((tmp_path / "sweep.json").read_text())
    assert [e["status"] for e in manifest["runs"]] == ["interrupted", "interrupted"]
