"""`--tracker`: a mirror of metrics.jsonl rows (scalars) and the config (params) into an experiment tracker."""

from __future__ import annotations

import importlib.util
import json
import math

import pytest
import yaml

from debiaskit.cli import main
from debiaskit.errors import DebiaskitError
from debiaskit.experiments import tracking
from debiaskit.experiments.tracking import Mirror, config_params, make_tracker, register_tracker, row_scalars
from toydata import register_toy

TOY = register_toy()


class FakeRun:
    def __init__(self, tracker, name, run_dir, params):
        self.tracker, self.name, self.run_dir, self.params = tracker, name, run_dir, dict(params)
        self.logged: list[tuple[int, dict[str, float]]] = []
        self.closed = False

    def log_scalars(self, step, scalars):
        if self.tracker.fail_after is not None and len(self.logged) >= self.tracker.fail_after:
            raise ConnectionError("tracking server went away")
        self.logged.append((step, dict(scalars)))

    def close(self):
        self.closed = True


class FakeTracker:
    name = "fake"
    instances: list[FakeTracker] = []

    def __init__(self, uri, experiment, fail_after=None):
        self.uri, self.experiment, self.fail_after = uri, experiment, fail_after
        self.runs: list[FakeRun] = []
        self.closed = False
        FakeTracker.instances.append(self)

    def open_run(self, name, run_dir, params):
        r = FakeRun(self, name, run_dir, params)
        self.runs.append(r)
        return r

    def close(self):
        self.closed = True


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setattr(tracking, "_TRACKERS", dict(tracking._TRACKERS))
    FakeTracker.instances = []
    register_tracker("fake", FakeTracker)
    register_tracker("broken", lambda uri, exp: FakeTracker(uri, exp, fail_after=1))
    return FakeTracker


def _rows(run_dir):
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _expected(rows):
    """Hand conversion: one log call per row; split metrics under split[/weights]/, train_logs + system once a step."""
    out, seen = [], set()
    for r in rows:
        pre = r["split"] if r.get("weights", "raw") == "raw" else f"{r['split']}/{r['weights']}"
        s = {f"{pre}/{k}": float(v) for k, v in r.items()
             if k not in ("step", "split", "weights", "train_logs", "wall_time_s", "steps_per_s", "peak_memory_mb")
             and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
        if r["step"] not in seen and r.get("weights", "raw") == "raw":
            seen.add(r["step"])
            s.update({f"train/{k}": float(v) for k, v in r["train_logs"].items()})
            s.update({f"system/{k}": float(r[k]) for k in ("wall_time_s", "steps_per_s", "peak_memory_mb") if k in r})
        out.append((r["step"], s))
    return out


# ------------------------------------------------------------------------------------------ conversions
def test_row_scalars_and_config_params_by_hand():
    row = {"step": 4, "split": "val", "weights": "ema", "accuracy": 0.5, "loss": float("nan"), "group_count": [[1, 2]],
           "per_group": {"a": 0.25, "b": True}, "train_logs": {"loss": 1.5}, "steps_per_s": 10, "flag": True}
    assert row_scalars(row) == {"val/ema/accuracy": 0.5, "val/ema/per_group/a": 0.25, "train/loss": 1.5,
                                "system/steps_per_s": 10.0}
    assert row_scalars({"step": 1, "split": "test", "accuracy": 1}, with_step_keys=False) == {"test/accuracy": 1.0}
    p = config_params({"seed": 0, "hparams": {"lr": 0.01, "model_kwargs": {"hidden": [8]}}, "x": None, "s": "a" * 600})
    assert p == {"seed": "0", "hparams.lr": "0.01", "hparams.model_kwargs.hidden": "[8]", "x": "null",
                 "s": "a" * 499 + "…"}


# ------------------------------------------------------------------------------------------ the mirror
def test_the_mirror_follows_a_growing_file_dedupes_a_rewrite_and_ignores_partial_lines(tmp_path, fake):
    run = tmp_path / "r"
    run.mkdir()
    f = run / "metrics.jsonl"
    rows = [{"step": s, "split": sp, "accuracy": 0.1 * s, "train_logs": {"loss": 1.0 / s}, "wall_time_s": s}
            for s in (1, 2, 3) for sp in ("val", "test")]
    t = FakeTracker(None, "x")
    m = Mirror(t, [("r", run, {"seed": 3})], poll=3600)  # no background polls: sync() by hand
    assert m.sync() == 0 and t.runs == []  # nothing written yet: no run opened
    f.write_text("".join(json.dumps(r) + "\n" for r in rows[:2]) + json.dumps(rows[2])[:10])  # a partial line
    assert m.sync() == 2
    (r,) = t.runs
    assert r.name == "r" and r.params == {"seed": "3"}
    f.write_text("".join(json.dumps(x) + "\n" for x in rows[:4]))  # the partial line completed, one more row
    assert m.sync() == 2
    # a resume rewrites the file (new inode) with the rows up to its checkpoint, then appends the rest
    tmp = run / "new"
    tmp.write_text("".join(json.dumps(x) + "\n" for x in rows))
    tmp.replace(f)
    assert m.sync() == 2
    assert r.logged == _expected(rows)
    with m:
        pass
    assert r.closed and t.closed


def test_cli_train_mirrors_every_row_and_the_config(tmp_path, fake, capsys):
    out = tmp_path / "run"
    assert main(["train", "--dataset", TOY, "--method", "vanilla", "--steps", "4", "--set", "hparams.model=mlp",
                 "--set", "hparams.model_kwargs={hidden: [8]}", "--set", "hparams.batch_size=64",
                 "--set", "train.eval_every=2", "--set", "train.weight_average=ema", "--device", "cpu",
                 "--threads", "1", "--no-progress", "--out", str(out), "--tracker", "fake",
                 "--tracker-uri", str(tmp_path / "tr")]) == 0
    (t,) = fake.instances
    (r,) = t.runs
    assert t.uri == str(tmp_path / "tr") and t.experiment == "debiaskit" and t.closed and r.closed
    rows = _rows(out)
    assert any(x.get("weights") == "ema" for x in rows)
    assert r.logged == _expected(rows)  # every row, in order, EMA rows as their own series
    assert r.params == config_params(yaml.safe_load((out / "config.yaml").read_text()))
    assert r.params["train.weight_average"] == "ema" and r.name == "run"
    # the finished run is not mirrored a second time
    assert main(["train", "--dataset", TOY, "--method", "vanilla", "--steps", "4", "--set", "hparams.model=mlp",
                 "--set", "hparams.model_kwargs={hidden: [8]}", "--set", "hparams.batch_size=64",
                 "--set", "train.eval_every=2", "--set", "train.weight_average=ema", "--device", "cpu",
                 "--threads", "1", "--no-progress", "--out", str(out), "--tracker", "fake"]) == 0
    assert fake.instances[1].runs == []


def test_a_failing_tracker_warns_once_and_the_records_are_complete(tmp_path, fake, capsys):
    run = tmp_path / "r"
    run.mkdir()
    rows = [{"step": s, "split": "val", "accuracy": 0.5} for s in range(1, 6)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    t = make_tracker("broken")
    with Mirror(t, [("r", run, {})], poll=3600) as m:
        pass
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "tracking server went away" in err and "records" in err
    assert len(t.runs[0].logged) == 1 and m.failed


def test_unknown_tracker_and_missing_library_are_one_error_line(tmp_path, capsys, monkeypatch):
    assert main(["train", "--dataset", TOY, "--method", "vanilla", "--out", str(tmp_path / "r"),
                 "--tracker", "wandb"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --tracker must be one of mlflow, tensorboard") and not (tmp_path / "r").exists()
    if importlib.util.find_spec("mlflow") is None:  # never installed by the test suite (a large package)
        with pytest.raises(DebiaskitError, match=r"pip install 'debiaskit\[mlflow\]'"):
            make_tracker("mlflow")
        assert main(["train", "--dataset", TOY, "--method", "vanilla", "--out", str(tmp_path / "r"),
                     "--tracker", "mlflow"]) == 2
        assert "debiaskit[mlflow]" in capsys.readouterr().err and not (tmp_path / "r").exists()
    import builtins

    real = builtins.__import__

    def no_tb(name, *a, **kw):
        if name.startswith(("torch.utils.tensorboard", "tensorboard")):
            raise ImportError("TensorBoard logging requires TensorBoard")
        return real(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_tb)
    with pytest.raises(DebiaskitError, match=r"needs the tensorboard package.*debiaskit\[tensorboard\]"):
        make_tracker("tensorboard")


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None,
                    reason="tensorboard is not installed (optional extra: pip install 'debiaskit[tensorboard]')")
def test_tensorboard_adapter_writes_every_scalar(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "r"
    run.mkdir()
    rows = [{"step": s, "split": sp, "accuracy": 0.1 * s + (sp == "test"), "train_logs": {"loss": 2.0 / s}}
            for s in (2, 4) for sp in ("val", "test")]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with Mirror(make_tracker("tensorboard", uri=str(tmp_path / "tb")), [("r", run, {"seed": 0})], poll=3600):
        pass
    ea = EventAccumulator(str(tmp_path / "tb" / "r"))
    ea.Reload()
    assert set(ea.Tags()["scalars"]) == {"val/accuracy", "test/accuracy", "train/loss"}
    got = [(e.step, round(e.value, 6)) for e in ea.Scalars("test/accuracy")]
    assert got == [(2, 1.2), (4, 1.4)]
    assert [(e.step, round(e.value, 6)) for e in ea.Scalars("train/loss")] == [(2, 1.0), (4, 0.5)]
    assert any(t.startswith("config") for t in ea.Tags()["tensors"])  # the config as a text summary


def test_cli_sweep_mirrors_each_pending_run_into_the_sweeps_experiment(tmp_path, fake):
    hp = {"model": "mlp", "model_kwargs": {"hidden": [8]}, "steps": 4, "batch_size": 64}
    spec = {"name": "trk", "datasets": {TOY: {}}, "ratios": [0.05], "methods": {"vanilla": {"hparams": hp}},
            "seeds": [0, 1], "base": {"device": "cpu", "train": {"eval_every": 2, "progress": False}}}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    assert main(["sweep", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "sw"), "--threads", "1",
                 "--tracker", "fake"]) == 0
    (t,) = fake.instances
    assert t.experiment == "trk" and len(t.runs) == 2 and all(r.closed for r in t.runs)
    for r in t.runs:
        assert r.logged == _expected(_rows(r.run_dir))
    assert sorted(r.params["seed"] for r in t.runs) == ["0", "1"]
    assert main(["sweep", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "sw"), "--tracker", "fake"]) == 0
    assert fake.instances[1].runs == []  # finished runs are skipped, and not mirrored again


def test_mlflow_adapter_batches_params_and_metrics_within_the_api_limits(tmp_path, monkeypatch):
    """Against a stand-in for the MLflow client API (mlflow itself is a large optional extra)."""
    import sys
    import types

    calls = []

    class Client:
        def __init__(self, tracking_uri=None):
            calls.append(("client", tracking_uri))

        def get_experiment_by_name(self, name):
            calls.append(("get_experiment", name))
            return None

        def create_experiment(self, name):
            calls.append(("create_experiment", name))
            return "7"

        def create_run(self, experiment_id, tags=None):
            calls.append(("create_run", experiment_id, tags["mlflow.runName"]))
            return types.SimpleNamespace(info=types.SimpleNamespace(run_id="r1"))

        def log_batch(self, run_id, metrics=(), params=()):
            calls.append(("log_batch", run_id, len(metrics), len(params)))

        def set_terminated(self, run_id, status):
            calls.append(("terminated", run_id, status))

    mlflow = types.ModuleType("mlflow")
    entities = types.ModuleType("mlflow.entities")
    entities.Metric = lambda key, value, timestamp, step: (key, value, step)
    entities.Param = lambda key, value: (key, value)
    trk = types.ModuleType("mlflow.tracking")
    trk.MlflowClient = Client
    monkeypatch.setitem(sys.modules, "mlflow", mlflow)
    monkeypatch.setitem(sys.modules, "mlflow.entities", entities)
    monkeypatch.setitem(sys.modules, "mlflow.tracking", trk)
    run = tmp_path / "r"
    run.mkdir()
    row = {"step": 3, "split": "val", **{f"m{i}": float(i) for i in range(1500)}}
    (run / "metrics.jsonl").write_text(json.dumps(row) + "\n")
    with Mirror(make_tracker("mlflow", uri="file:///x", experiment="exp"), [("r", run, {f"p{i}": i for i in range(150)})],
                poll=3600):
        pass
    assert calls == [("client", "file:///x"), ("get_experiment", "exp"), ("create_experiment", "exp"),
                     ("create_run", "7", "r"), ("log_batch", "r1", 0, 100), ("log_batch", "r1", 0, 50),
                     ("log_batch", "r1", 1000, 0), ("log_batch", "r1", 500, 0), ("terminated", "r1", "FINISHED")]
