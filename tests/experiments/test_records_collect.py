"""Run records (export/import), collect from records == from run directories, post-hoc selection, sweep skips."""

from __future__ import annotations

import json

import pytest
import yaml

from debiaskit.cli import main
from debiaskit.errors import DebiaskitError
from debiaskit.experiments.collect import collect, format_table
from debiaskit.experiments.records import export_record, find_record, load_record, load_runs, make_record
from debiaskit.experiments.sweep import expand_sweep, run_sweep
from debiaskit.train.selection import select
from toydata import register_toy

TOY = register_toy()
HP = {"model": "mlp", "model_kwargs": {"hidden": [8]}, "steps": 6, "batch_size": 64}
SPEC = {
    "name": "rec",
    "datasets": {TOY: {}},
    "ratios": [0.05],
    "methods": {"vanilla": {"hparams": HP}, "lff": {"hparams": HP}},
    "seeds": [0, 1],
    "base": {"device": "cpu", "train": {"eval_every": 2, "checkpoint_every": 2}},
}


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """A finished 4-run sweep trained with the default rules only, and its records."""
    root = tmp_path_factory.mktemp("sweep")
    runs = expand_sweep(SPEC, root / "sw", records=root / "records")
    manifest = run_sweep(runs, root / "sw", threads=1, echo=lambda s: None)
    assert manifest["n_failed"] == 0
    return root, runs


def _strip(table):
    for r in table["rows"]:
        r.pop("sources")
    table.pop("roots")
    return table


def test_each_finished_run_exports_a_record_named_by_its_key(swept):
    root, runs = swept
    files = sorted((root / "records").glob("*.json"))
    assert len(files) == 4
    for r in runs:
        p = find_record(root / "records", r.run_key)
        assert p is not None and p.name.endswith(f"-{r.run_key}.json")
        rec = load_record(p)
        assert rec.result["run_key"] == r.run_key and rec.result["config"]["hparams"] == r.config["hparams"]
        # every evaluation of every split is there (3 evaluations x 2 splits), without timing fields
        assert len(rec.evaluations) == 6 and not any("wall_time_s" in e for e in rec.evaluations)
        # per-cell matrices only where some rule selects, on the test split
        assert all(e["split"] == "test" for e in rec.evaluations if "group_count" in e)


def test_collect_from_records_equals_collect_from_run_directories(swept):
    root, _ = swept
    rules = ["last", "best_val_accuracy", "best_val_worst_group", "min_val_loss", "oracle_test"]
    a = _strip(collect(root / "sw", selection=rules))
    b = _strip(collect(root / "records", selection=rules))
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)  # identical tables
    # a run present as a directory and as a record counts once
    both = collect([root / "sw", root / "records"], selection=rules)
    assert sum(r["n_runs"] for r in both["rows"]) == 4


def test_rules_not_chosen_at_train_time_are_computed_from_the_records(swept, capsys):
    root, runs = swept
    res = json.loads((runs[0].run_dir / "result.json").read_text())
    assert "best_val_worst_group" not in res["selection_rules"] and "min_val_loss" not in res["selection_rules"]
    assert main(["collect", str(root / "sw"), "--selection", "best_val_worst_group,min_val_loss"]) == 0
    out = capsys.readouterr().out
    assert "best_val_worst_group" in out and "min_val_loss" in out and "val:bias" in out
    # the selected step is the argmin of the val loss / argmax of val worst-group accuracy (earliest on ties)
    rows = [json.loads(x) for x in (runs[0].run_dir / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in rows if r["split"] == "val"]
    best_loss = min(val, key=lambda r: (r["loss"], r["step"]))["step"]
    assert select("min_val_loss", rows).step == best_loss
    wg = max(r["worst_group_accuracy"] for r in val)
    assert select("best_val_worst_group", rows).step == min(r["step"] for r in val if r["worst_group_accuracy"] == wg)
    table = collect(root / "sw", selection=["min_val_loss"])
    g = next(r for r in table["rows"] if r["method"] == "vanilla")
    assert g["rules"]["min_val_loss"]["labels_consumed"] == ["val:target"]


def test_sweep_skips_cells_whose_record_exists(swept, tmp_path):
    root, runs = swept
    # a fresh output folder (another machine): only the records travel
    again = expand_sweep(SPEC, tmp_path / "elsewhere", records=root / "records")
    assert all(r.done for r in again)
    msgs = []
    run_sweep(again, tmp_path / "elsewhere", threads=1, echo=msgs.append)
    assert msgs[0].startswith("4 runs, 4 already finished, 0 to run")
    assert not (tmp_path / "elsewhere" / "runs").exists()
    # a changed hyper-parameter is a new cell
    changed = {**SPEC, "methods": {"lff": {"hparams": {**HP, "q": 0.5}}}}
    assert not any(r.done for r in expand_sweep(changed, tmp_path / "elsewhere", records=root / "records"))


def test_bad_records_are_one_line_errors(tmp_path):
    bad = tmp_path / "x-0123456789abcdef.json"
    bad.write_text('{"schema": "debiaskit.record/1", "result": 3}')
    with pytest.raises(DebiaskitError, match="needs 'result'"):
        load_record(bad)
    bad.write_text("{trunc")
    with pytest.raises(DebiaskitError, match="cannot read"):
        load_runs([bad])
    with pytest.raises(DebiaskitError, match="no result.json"):
        make_record(tmp_path)


def test_collect_refuses_unknown_metric_split_rule(swept):
    root, _ = swept
    with pytest.raises(DebiaskitError, match="unknown metric 'bogus'.*available"):
        collect(root / "records", metric="bogus")
    with pytest.raises(DebiaskitError, match="split 'nope'"):
        collect(root / "records", split="nope")
    with pytest.raises(DebiaskitError, match="unknown selection rule"):
        collect(root / "records", selection=["best_ever"])


def test_csv_and_markdown_cells_are_escaped(swept):
    root, _ = swept
    table = collect(root / "records")
    table["rows"][0]["label"] = "=cmd|' /C calc'!A0"
    csv_text = format_table(table, fmt="csv")
    assert "'=cmd" in csv_text and "\n=cmd" not in csv_text
    md = format_table(table, fmt="md")
    assert "=cmd\\|'" in md
