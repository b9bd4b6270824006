"""Third-party methods, datasets and models through entry points, used from fresh processes.

The fixture distribution ``tests/fixtures/plugin_pkg`` (``debiaskit-plugin-fixture``) declares one entry point
in each group (``debiaskit.methods``: ``plugin_focal``, ``debiaskit.datasets``: ``plugin_planted``,
``debiaskit.models``: ``plugin_cnn``). It is pip-installed into a temporary folder (fixture ``plugin_site``) that
only the subprocesses see on ``PYTHONPATH``.
"""

from __future__ import annotations

import importlib.metadata
import json
import warnings
from pathlib import Path

import pandas as pd
import pytest

from debiaskit.errors import DebiaskitError
from debiaskit.registry import Registry

pytestmark = pytest.mark.slow


def _accuracy_of(csv) -> float:
    df = pd.read_csv(csv)
    return float((df["pred"] == df["target"]).mean())


def test_plugin_is_listed_trained_and_predicted_in_fresh_processes(tmp_path, plugin_site, cli):
    listed = cli("methods", "list", pythonpath=plugin_site)
    assert listed.returncode == 0, listed.stderr
    line = next(ln for ln in listed.stdout.splitlines() if ln.startswith("plugin_focal"))
    assert "target" in line and "plugin debiaskit-plugin-fixture 0.1.0" in line
    assert "plugin_focal: Lin et al., Focal Loss" in listed.stdout

    run = tmp_path / "run"
    tr = cli("train", "--dataset", "plugin_planted", "--method", "plugin_focal", "--set", "hparams.model=plugin_cnn",
             "--set", "hparams.lr=0.01", "--steps", "30", "--set", "train.eval_every=15", "--no-progress",
             "--out", str(run), pythonpath=plugin_site)
    assert tr.returncode == 0, tr.stderr
    result = json.loads((run / "result.json").read_text())
    prov = result["provenance"]
    assert prov["method"]["plugin_focal"]["distribution"] == "debiaskit-plugin-fixture"
    assert prov["dataset"]["plugin_planted"]["entry_point"] == "debiaskit_plugin_fixture.data:build_planted"
    assert prov["model"]["plugin_cnn"]["origin"] == "plugin"

    pred = cli("predict", str(run), "--selection", "last", "--out", str(tmp_path / "p.csv"), pythonpath=plugin_site)
    assert pred.returncode == 0, pred.stderr
    assert len(pd.read_csv(tmp_path / "p.csv")) == 200
    assert _accuracy_of(tmp_path / "p.csv") == pytest.approx(result["final"]["test"]["accuracy"], abs=1e-9)

    missing = cli("predict", str(run), "--out", str(tmp_path / "q.csv"))  # a process without the plugin
    assert missing.returncode == 2
    err = missing.stderr.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1
    assert "plugin debiaskit-plugin-fixture" in err and "not installed: pip install debiaskit-plugin-fixture" in err


def test_user_class_is_rebuilt_by_import_path_in_a_new_process(tmp_path, plugin_site, cli):
    run = tmp_path / "run"
    tr = cli("train", "--dataset", "plugin_planted", "--set", "hparams.model=python:debiaskit_plugin_fixture.nets:PlantedCNN",
             "--set", "hparams.model_kwargs={init: {width: 4}}", "--steps", "20", "--set", "train.eval_every=20",
             "--no-progress", "--out", str(run), pythonpath=plugin_site)
    assert tr.returncode == 0, tr.stderr
    result = json.loads((run / "result.json").read_text())
    assert result["model"] == ["python:debiaskit_plugin_fixture.nets:PlantedCNN"]
    pred = cli("predict", str(run), "--selection", "last", "--out", str(tmp_path / "p.csv"), pythonpath=plugin_site)
    assert pred.returncode == 0, pred.stderr
    assert _accuracy_of(tmp_path / "p.csv") == pytest.approx(result["final"]["test"]["accuracy"], abs=1e-9)


def _eps(*pairs):
    return [importlib.metadata.EntryPoint(name=n, value=v, group="debiaskit.models") for n, v in pairs]


def test_entry_points_register_and_a_broken_plugin_is_named(monkeypatch):
    real = importlib.metadata.entry_points
    fake = _eps(("good", "debiaskit_plugin_fixture.nets:plugin_cnn"), ("broken", "no_such_plugin_module:factory"))
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda **kw: fake if kw.get("group") == "debiaskit.models" else real(**kw))
    reg: Registry = Registry("model", builtin_modules=[])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        names = reg.list()
    assert names == ["good"]
    assert any("plugin 'broken'" in str(w.message) and "failed to load" in str(w.message) for w in caught)
    from debiaskit_plugin_fixture.nets import plugin_cnn

    assert reg.get("good") is plugin_cnn
    assert reg.source("good").origin == "plugin" and reg.source("good").entry_point.endswith(":plugin_cnn")
    with pytest.raises(DebiaskitError, match=r"model 'broken' comes from .*failed to load \(ModuleNotFoundError"):
        reg.get("broken")
    with pytest.raises(DebiaskitError, match="unknown model 'nothing'.*'debiaskit.models' entry-point group"):
        reg.get("nothing")


def test_entries_registered_by_a_module_are_reimported_by_a_new_process(tmp_path, cli):
    """The issue's `register_model` case: a run of a runtime-registered model is predicted from a new process."""
    import debiaskit_plugin_fixture.registered  # noqa: F401 - registers the model and the dataset (origin: module)
    from debiaskit.cli import main

    run = tmp_path / "run"
    assert main(["train", "--dataset", "fixture_registered_planted", "--set", "hparams.model=fixture_registered_cnn",
                 "--steps", "10", "--set", "train.eval_every=10", "--no-progress", "--out", str(run)]) == 0
    prov = json.loads((run / "result.json").read_text())["provenance"]
    assert prov["model"]["fixture_registered_cnn"] == {"origin": "module", "module": "debiaskit_plugin_fixture.registered",
                                                       "qualname": "plugin_cnn"}
    assert prov["dataset"]["fixture_registered_planted"]["module"] == "debiaskit_plugin_fixture.registered"
    plugin_src = Path(__file__).resolve().parents[1] / "fixtures" / "plugin_pkg" / "src"  # importable, no entry points
    ok = cli("predict", str(run), "--out", str(tmp_path / "p.csv"), pythonpath=plugin_src)
    assert ok.returncode == 0, ok.stderr
    gone = cli("predict", str(run), "--out", str(tmp_path / "q.csv"))
    assert gone.returncode == 2
    assert "registered by module 'debiaskit_plugin_fixture.registered', which cannot be imported" in gone.stderr
