"""Sweeps on Ray (``--backend ray``): same records as local, bounded retries that resume, restartable drivers,
identical ``n_hparams`` draws; and ``--backend local`` never imports Ray (docs/scaling.md).

The Ray tests start a 2-CPU Ray instance inside the test process (skipped, with the reason, when Ray is not
installed or cannot start) and train the planted-bias toy dataset of ``tests/toydata.py``: its workers register
it through Ray's ``worker_process_setup_hook``. A run here takes a few seconds; starting Ray and its worker
processes takes most of the time of this file.
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
import yaml

from debiaskit.cli import main
from debiaskit.errors import DebiaskitError
from debiaskit.experiments.backends import execute_sweep
from debiaskit.experiments.collect import collect
from debiaskit.experiments.hparams import resolve_hparams
from debiaskit.experiments.records import load_record
from debiaskit.experiments.sweep import expand_sweep
from toydata import register_toy

TOY = register_toy()
TESTS = str(Path(__file__).resolve().parents[1])
HP = {"model": "mlp", "model_kwargs": {"hidden": [8]}, "steps": 60, "batch_size": 64}
#: 1 method x 2 hyper-parameter settings (registry default + 1 random draw) x 2 seeds = 4 runs
SPEC = {
    "name": "ray4",
    "datasets": {TOY: {}},
    "ratios": [0.05],
    "methods": {"lff": {"hparams": HP}},
    "seeds": [0, 1],
    "n_hparams": 2,
    "base": {"device": "cpu", "train": {"eval_every": 20, "checkpoint_every": 5}},
}
#: the same grid with long runs, so that a driver or a worker can be killed while they train
LONG = {**SPEC, "name": "ray4long", "methods": {"lff": {"hparams": {**HP, "steps": 250}}}}
RUNTIME_ENV = {"env_vars": {"PYTHONPATH": TESTS, "DEBIASKIT_NUM_THREADS": "1"},
               "worker_process_setup_hook": "toydata.register_toy"}
TIMING = ("wall_time_s", "steps_per_s", "peak_memory_mb")


def _quiet(_: str) -> None:
    pass


def _comparable(path: Path) -> dict:
    """A record without the fields that legitimately differ between two trainings of one run (timing)."""
    rec = json.loads(path.read_text())
    for k in TIMING:
        rec["result"].pop(k, None)
    return rec


def _records(d: Path) -> dict[str, dict]:
    return {p.name: _comparable(p) for p in sorted(d.glob("*.json"))}


def test_local_backend_and_import_never_load_ray(tmp_path):
    spec = {**SPEC, "methods": {"vanilla": {"hparams": {**HP, "steps": 4}}}, "seeds": [0], "n_hparams": 1,
            "base": {"device": "cpu", "train": {"eval_every": 2, "checkpoint_every": 2}}}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    code = (
        "import sys; import debiaskit; assert 'ray' not in sys.modules, 'import debiaskit loaded ray'; "
        "sys.path.insert(0, sys.argv[1]); import toydata; toydata.register_toy(); from debiaskit.cli import main; "
        "rc = main(['sweep', sys.argv[2], '--backend', 'local', '--out', sys.argv[3], '--threads', '1']); "
        "assert rc == 0, rc; assert 'ray' not in sys.modules, 'the local backend loaded ray'; print('no ray')"
    )
    p = subprocess.run([sys.executable, "-c", code, TESTS, str(tmp_path / "s.yaml"), str(tmp_path / "sw")],
                       capture_output=True, text=True, timeout=120, env={**os.environ, "DEBIASKIT_NUM_THREADS": "1"})
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.strip().endswith("no ray")
    assert len(list((tmp_path / "sw" / "runs").glob("*/result.json"))) == 1


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"backend": "slurm"}, "unknown sweep backend 'slurm'"),
    ({"address": "auto"}, "--address only apply to --backend ray"),
    ({"gpus_per_run": 1.0, "cpus_per_run": 2.0}, "--cpus-per-run, --gpus-per-run only apply to --backend ray"),
    ({"backend": "ray", "cpus_per_run": 0.0}, "--cpus-per-run must be a number > 0"),
    ({"backend": "ray", "cpus_per_run": float("nan")}, "--cpus-per-run must be a number > 0"),
    ({"backend": "ray", "gpus_per_run": -1.0}, "--gpus-per-run must be a number >= 0"),
    ({"backend": "ray", "gpus_per_run": 1.5}, "above 1 must be a whole number"),
    ({"backend": "ray", "jobs": 0}, "--jobs must be a positive integer"),
])
def test_bad_backend_options_are_one_line_errors(tmp_path, kwargs, message):
    runs = expand_sweep(SPEC, tmp_path / "sw")
    with pytest.raises(DebiaskitError, match=message.replace("(", r"\(").replace(")", r"\)")):
        execute_sweep(runs, tmp_path / "sw", echo=_quiet, **kwargs)
    assert not (tmp_path / "sw").exists()  # nothing trained, nothing written


def test_the_ray_backend_without_ray_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(SPEC))
    assert main(["sweep", str(tmp_path / "s.yaml"), "--backend", "ray", "--out", str(tmp_path / "sw")]) == 2
    err = capsys.readouterr().err
    assert "error: --backend ray needs Ray: pip install 'debiaskit[ray]'" in err
    assert not list((tmp_path / "sw").glob("runs/*/result.json"))


def test_cli_rejects_a_bad_backend_name(tmp_path, capsys):
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(SPEC))
    with pytest.raises(SystemExit) as e:
        main(["sweep", str(tmp_path / "s.yaml"), "--backend", "slurm"])
    assert e.value.code == 2 and "invalid choice: 'slurm'" in capsys.readouterr().err


def test_a_recorded_run_is_skipped_by_the_ray_backend_without_starting_ray(tmp_path, local_records, monkeypatch):
    """A restarted driver with a complete records folder has nothing to do: it does not even need Ray."""
    monkeypatch.setitem(sys.modules, "ray", None)
    runs = expand_sweep(SPEC, tmp_path / "sw", records=local_records / "ray4" / "records")
    m = execute_sweep(runs, tmp_path / "sw", backend="ray", echo=_quiet)
    assert [e["status"] for e in m["runs"]] == ["done (skipped)"] * 4


@pytest.fixture(scope="module")
def local_records(tmp_path_factory):
    """The reference: both grids trained with ``--backend local`` (in this process, 1 thread)."""
    root = tmp_path_factory.mktemp("local")
    for spec in (SPEC, LONG):
        out = root / spec["name"]
        m = execute_sweep(expand_sweep(spec, out, records=out / "records"), out, threads=1, echo=_quiet)
        assert m["n_failed"] == 0
    return root


@pytest.fixture(scope="module")
def ray_instance():
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'debiaskit[ray]')")
    if ray.is_initialized():
        ray.shutdown()
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env=RUNTIME_ENV,
                 logging_level="WARNING")
    except Exception as e:  # no shared memory, no ports, ...: the backend cannot be tested here
        pytest.skip(f"Ray cannot start here: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_sweep_gives_the_records_and_hparam_draws_of_the_local_sweep(tmp_path, local_records, ray_instance):
    out = tmp_path / "ray4"
    runs = expand_sweep(SPEC, out, records=out / "records")
    lines: list[str] = []
    m = execute_sweep(runs, out, backend="ray", echo=lines.append)
    assert m["backend"] == "ray" and m["n_failed"] == 0
    assert all(e["status"] == "done" and e["attempts"] == 1 for e in m["runs"])
    # identical records (same seeds -> same numbers), written by the driver from what the tasks returned
    ref = _records(local_records / "ray4" / "records")
    got = _records(out / "records")
    assert len(ref) == 4 and got == ref
    # the n_hparams draws: seed 0 is the registry default, seed 1 a random draw, the same on both backends
    hps = {(rec["result"]["hparams_seed"], rec["result"]["seed"]): rec["result"]["config"]["hparams"]
           for rec in got.values()}
    assert hps[(0, 0)] == hps[(0, 1)] and hps[(1, 0)] == hps[(1, 1)] and hps[(0, 0)] != hps[(1, 0)]
    drawn = resolve_hparams("lff", TOY, ratio=0.05, hparams_seed=1, user=HP)
    assert {k: hps[(1, 0)][k] for k in drawn} == json.loads(json.dumps(drawn))
    # sweep-level selection picks the same setting from either set of records
    rules = ["best_val_accuracy", "oracle_test"]
    a, b = (collect(d, selection=rules) for d in (local_records / "ray4" / "records", out / "records"))
    assert a["sweep_selection"] and a["sweep_selection"] == b["sweep_selection"]
    # one aggregate progress line per finished run, and the manifest on disk
    finished = [s for s in lines if s.startswith("done ")]
    assert len(finished) == 4 and finished[-1].endswith("[4 done, 0 running, 0 failed, 0 left]")
    assert json.loads((out / "sweep.json").read_text())["n_failed"] == 0
    # a second run of the sweep trains nothing
    m2 = execute_sweep(expand_sweep(SPEC, out, records=out / "records"), out, backend="ray", echo=_quiet)
    assert {e["status"] for e in m2["runs"]} == {"done (skipped)"}


def _kill_when_checkpointed(run_dir: Path, killed: dict) -> None:
    """Kill (SIGKILL) the worker process training ``run_dir`` once it has written a checkpoint."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if (run_dir / "result.json").exists():
            return
        # the checkpoint counts once its checksum sidecar is written (the trainer rejects it before that)
        if (run_dir / "checkpoint.pt.sha256").exists():
            try:
                owner = json.loads((run_dir / ".lock").read_text() or "null")
            except (OSError, ValueError):
                owner = None
            if owner and owner.get("pid") and owner["pid"] != os.getpid():
                os.kill(owner["pid"], signal.SIGKILL)
                killed["pid"] = owner["pid"]
                return
        time.sleep(0.02)


@pytest.mark.slow
def test_a_worker_killed_mid_run_is_retried_and_resumes_from_its_checkpoint(tmp_path, local_records, ray_instance):
    out = tmp_path / "ray4long"
    runs = expand_sweep(LONG, out, records=out / "records", seeds=[0])[:1]
    killed: dict = {}
    killer = threading.Thread(target=_kill_when_checkpointed, args=(runs[0].run_dir, killed), daemon=True)
    killer.start()
    lines: list[str] = []
    m = execute_sweep(runs, out, backend="ray", echo=lines.append)
    killer.join(5)
    assert killed, "the run finished before its worker could be killed"
    entry = m["runs"][0]
    assert entry["status"] == "done" and entry["attempts"] == 2 and entry.get("resumed_from", 0) > 0
    assert any("1 retried" in s for s in lines)
    # the resumed run is the uninterrupted run, number for number
    name = runs[0].run_dir.name + ".json"
    assert _comparable(out / "records" / name) == _comparable(local_records / "ray4long" / "records" / name)


@pytest.mark.slow
def test_a_driver_killed_mid_sweep_and_restarted_trains_nothing_twice(tmp_path, local_records, ray_instance):
    out, records = tmp_path / "ray4long", tmp_path / "ray4long" / "records"
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(LONG))
    address = ray_instance.get_runtime_context().gcs_address
    driver = (
        "import sys; sys.path.insert(0, sys.argv[1]); import toydata; toydata.register_toy(); import ray, json; "
        "ray.init(address=sys.argv[2], runtime_env=json.loads(sys.argv[3]), log_to_driver=False, "
        "logging_level='WARNING'); from debiaskit.cli import main; "
        "sys.exit(main(['sweep', sys.argv[4], '--backend', 'ray', '--out', sys.argv[5], '--records', sys.argv[6]]))"
    )
    proc = subprocess.Popen([sys.executable, "-c", driver, TESTS, address, json.dumps(RUNTIME_ENV),
                             str(tmp_path / "s.yaml"), str(out), str(records)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run_dirs = [r.run_dir for r in expand_sweep(LONG, out)]
    try:  # wait until one run has finished and another one is half-way (checkpointed, not finished)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            done = [d for d in run_dirs if (d / "result.json").exists()]
            half = [d for d in run_dirs if (d / "checkpoint.pt").exists() and not (d / "result.json").exists()]
            if done and half:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the sweep finished before the driver could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    finished_before = {d.name: (d / "result.json").stat().st_mtime_ns for d in run_dirs if (d / "result.json").exists()}
    half_way = {d.name for d in half}
    assert 1 <= len(finished_before) < 4 and half_way

    m = execute_sweep(expand_sweep(LONG, out, records=records), out, backend="ray", echo=_quiet)
    assert m["n_failed"] == 0
    for e in m["runs"]:
        name = Path(e["run_dir"]).name
        if name in finished_before:  # finished under the killed driver: not submitted again, not rewritten
            assert e["status"] == "done (skipped)"
            assert (Path(e["run_dir"]) / "result.json").stat().st_mtime_ns == finished_before[name]
        else:
            assert e["status"] == "done"
        if name in half_way:  # checkpointed when the driver died: resumed (or finished by a worker that outlived it)
            assert e["status"] == "done (skipped)" or e.get("resumed_from", 0) > 0 or e.get("already_done")
    # and the table is the one of the uninterrupted local sweep
    assert _records(records) == _records(local_records / "ray4long" / "records")
