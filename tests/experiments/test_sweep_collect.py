"""`debiaskit sweep` (grid expansion, content-addressed run dirs, resume) and `debiaskit collect`."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import pytest
import yaml

from debiaskit.cli import main
from debiaskit.errors import DebiaskitError
from debiaskit.experiments.collect import collect, format_table
from debiaskit.experiments.sweep import expand_sweep, run_sweep
from debiaskit.runkey import run_key

from toydata import register_toy  # noqa: E402

TOY = register_toy()

SPEC = {
    "name": "tiny",
    "datasets": {TOY: {}},
    "ratios": [0.05, 0.1],
    "methods": {
        "vanilla": {"hparams": {"model": "mlp", "model_kwargs": {"hidden": [8]}, "steps": 3, "batch_size": 64}},
        "lff": {"hparams": {"model": "mlp", "model_kwargs": {"hidden": [8]}, "steps": 3, "batch_size": 64}},
    },
    "seeds": [0, 1],
    "base": {"device": "cpu", "train": {"eval_every": 3, "checkpoint_every": 3,
                                        "selection": ["last", "best_val_accuracy", "oracle_test"]}},
}


def test_expand_is_deterministic_and_content_addressed(tmp_path):
    a = expand_sweep(SPEC, tmp_path)
    b = expand_sweep(SPEC, tmp_path)
    assert len(a) == 2 * 2 * 2
    assert [r.run_dir for r in a] == [r.run_dir for r in b]
    assert all(r.run_dir.name.endswith(run_key(r.config)) for r in a)
    # a changed hyper-parameter gives another directory; a subset selects the same directories
    changed = dict(SPEC, methods={**SPEC["methods"], "lff": {"hparams": {**SPEC["methods"]["lff"]["hparams"], "q": 0.5}}})
    c = expand_sweep(changed, tmp_path)
    assert {r.run_dir for r in a if r.key.startswith("lff-")}.isdisjoint({r.run_dir for r in c if r.key.startswith("lff-")})
    sub = expand_sweep(SPEC, tmp_path, ratios=[0.1], seeds=[1], methods=["lff"])
    assert [r.key for r in sub] == ["lff-lffdis_toy-r0.1-s1"]
    assert sub[0].run_dir in {r.run_dir for r in a}
    with pytest.raises(DebiaskitError, match="not in the sweep grid"):
        expand_sweep(SPEC, tmp_path, ratios=[0.3])
    with pytest.raises(DebiaskitError, match="unknown sweep key"):
        expand_sweep({**SPEC, "seed": [0]}, tmp_path)
    with pytest.raises(DebiaskitError, match="unknown hparam"):
        expand_sweep({**SPEC, "methods": {"lff": {"hparams": {"qq": 1}}}}, tmp_path)


def test_disent_gets_the_official_ratio_settings_unless_overridden(tmp_path):
    spec = {"datasets": ["corrupted_cifar10"], "ratios": [0.005, 0.01], "methods": ["disent"], "seeds": [0]}
    try:
        runs = expand_sweep(spec, tmp_path)
    except DebiaskitError as e:  # pragma: no cover - dataset not registered in this checkout
        pytest.skip(str(e))
    hp = {r.config["dataset"]["ratio"]: r.config["hparams"] for r in runs}
    assert (hp[0.005]["lr"], hp[0.005]["lambda_dis"]) == (5e-4, 1.0)
    assert (hp[0.01]["lr"], hp[0.01]["lambda_dis"]) == (1e-3, 5.0)
    spec["methods"] = {"disent": {"hparams": {"lr": 0.1}}}
    runs = expand_sweep(spec, tmp_path)
    assert all(r.config["hparams"]["lr"] == 0.1 for r in runs)


def test_sweep_runs_resumes_skips_done_and_collects(tmp_path, capsys):
    spec = {**SPEC, "ratios": [0.05]}
    sweep_file = tmp_path / "tiny.yaml"
    sweep_file.write_text(yaml.safe_dump(spec))
    out = tmp_path / "sw"
    assert main(["sweep", str(sweep_file), "--out", str(out), "--seeds", "0", "--threads", "1"]) == 0
    done = sorted(p.parent.name for p in out.rglob("result.json"))
    assert len(done) == 2 and all("-s0-" in d for d in done)
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("result.json")}
    capsys.readouterr()
    # the whole grid: the two finished runs are skipped, the other two run
    assert main(["sweep", str(sweep_file), "--out", str(out), "--threads", "1"]) == 0
    msg = capsys.readouterr().out
    assert "4 runs, 2 already finished, 2 to run" in msg
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items())
    manifest = json.loads((out / "sweep.json").read_text())
    assert sum(e["status"] == "done (skipped)" for e in manifest["runs"]) == 2
    assert manifest["n_failed"] == 0

    table = collect(out)
    rows = table["rows"]
    assert [(r["method"], r["ratio"], r["n_runs"], r["seeds"]) for r in rows] == [
        ("lff", 0.05, 2, [0, 1]), ("vanilla", 0.05, 2, [0, 1])]
    # mean/std against the raw result files
    r0 = rows[0]
    vals = [json.loads(Path(d, "result.json").read_text())["selection"]["last"]["metrics"]["test"]["unbiased_accuracy"]
            for d in r0["sources"]]
    cell = r0["rules"]["last"]["unbiased_accuracy"]
    assert cell["mean"] == pytest.approx(sum(vals) / 2)
    assert cell["std"] == pytest.approx(abs(vals[0] - vals[1]) / 2**0.5)
    md = format_table(table, fmt="md")
    assert "oracle (test-set selection)" in md and "| lffdis_toy | 0.05 | lff | 2 |" in md
    rows_csv = list(csv.DictReader(io.StringIO(format_table(table, fmt="csv"))))
    assert len(rows_csv) == 2 * 3
    assert {r["rule"] for r in rows_csv} == {"last", "best_val_accuracy", "oracle (test-set selection)"}
    assert main(["collect", str(out), "--format", "json", "--output", str(tmp_path / "c.json")]) == 0
    assert json.loads((tmp_path / "c.json").read_text())["rows"][0]["rules"]["last"]["n"] == 2


def test_sweep_resumes_an_interrupted_run(tmp_path):
    spec = {**SPEC, "ratios": [0.05], "seeds": [0], "methods": {"lff": {"hparams": {
        "model": "mlp", "model_kwargs": {"hidden": [8]}, "steps": 4, "batch_size": 64}}},
        "base": {"device": "cpu", "train": {"eval_every": 2, "checkpoint_every": 2}}}
    (run,) = expand_sweep(spec, tmp_path)
    from debiaskit.methods.lff import LfF

    orig = LfF.update

    def crash(self, batch, step):
        if step == 3:
            raise RuntimeError("boom")
        return orig(self, batch, step)

    LfF.update = crash
    try:
        manifest = run_sweep([run], tmp_path, threads=1, echo=lambda s: None)
    finally:
        LfF.update = orig
    assert manifest["n_failed"] == 1 and "boom" in manifest["runs"][0]["error"]
    assert (run.run_dir / "checkpoint.pt").exists() and not run.done
    manifest = run_sweep([run], tmp_path, threads=1, echo=lambda s: None)
    assert manifest["n_failed"] == 0 and run.done
    assert json.loads((run.run_dir / "result.json").read_text())["steps"] == 4


def test_collect_errors(tmp_path):
    with pytest.raises(DebiaskitError, match="no finished run"):
        collect(tmp_path)
    assert main(["collect", str(tmp_path / "missing")]) == 2


def test_keys_added_later_at_their_default_keep_the_run_key(tmp_path):
    """A record written before a train key existed keeps its key while the key holds its default."""
    spec = {**SPEC, "ratios": [0.05], "seeds": [0], "methods": {"lff": SPEC["methods"]["lff"]}}
    (run,) = expand_sweep(spec, tmp_path)
    old_cfg = json.loads(json.dumps(run.config))
    for k in ("nan_policy", "weight_average", "weight_average_decay", "weight_average_start"):
        old_cfg["train"].pop(k)  # as if written before these keys existed
    old_cfg.pop("hparams_seed")
    assert run_key(old_cfg) == run_key(run.config)
    # a key set to a non-default value is a real difference
    changed = {**spec, "base": {**spec["base"], "train": {**spec["base"]["train"], "weight_average": "ema"}}}
    (other,) = expand_sweep(changed, tmp_path)
    assert other.run_key != run.run_key
    # display/performance options are outside the key
    perf = {**spec, "base": {**spec["base"], "train": {**spec["base"]["train"], "threads": 2, "progress": True,
                                                        "eval_batch_size": 7}}}
    (same,) = expand_sweep(perf, tmp_path)
    assert same.run_key == run.run_key
