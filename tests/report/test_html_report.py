"""`debiaskit report`: self-contained HTML for a run, a sweep, records and audits; numbers checked by hand."""

from __future__ import annotations

import json
import shutil
import statistics

import numpy as np
import pytest

from debiaskit.cli import main
from debiaskit.errors import DebiaskitError
from debiaskit.experiments.records import load_runs
from debiaskit.report import plots
from debiaskit.report.html import build_context, detect, render_html, write_report
from debiaskit.report.published import published_for
from debiaskit.report.runs import axis_names, fmt_ratio
from report.htmlcheck import check_page


@pytest.fixture
def no_png(monkeypatch):
    """Skip the PNG encoding of figures (for tests that check numbers, not pictures)."""
    monkeypatch.setattr(plots, "fig_to_uri", lambda fig, **kw: "data:image/png;base64,")


def _rows(run_dir):
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


# ------------------------------------------------------------------------------------------ one run
def test_run_report_is_self_contained_with_curves_heat_map_and_provenance(tiny_run, tmp_path):
    out = write_report(tiny_run, tmp_path / "run.html")
    page = check_page(out.read_text(encoding="utf-8"))
    assert len(page.images) >= 2  # training curves + per-cell heat map
    heads = [h for t in page.tables for h in t]
    assert "rule" in heads and "labels read" in heads and "test unbiased accuracy (%)" in heads
    for section in ("Model selection", "Training curves", "Per-(target, bias) test accuracy", "Provenance"):
        assert section in page.text
    res = json.loads((tiny_run / "result.json").read_text())
    assert res["run_key"] in page.text and res["data"]["fingerprint"] in page.text
    assert "oracle (test-set selection)" in page.text  # the oracle rule keeps its label


def test_run_selection_table_matches_a_hand_selection(tiny_run, no_png):
    ctx = build_context(tiny_run)
    rows = _rows(tiny_run)
    val = [r for r in rows if r["split"] == "val"]
    best = max(val, key=lambda r: (r["accuracy"], -r["step"]))  # earliest step on ties
    test = next(r for r in rows if r["split"] == "test" and r["step"] == best["step"])
    table = ctx["run"]["selection_table"]
    row = next(r for r in table["rows"] if r[0] == "best_val_accuracy")
    assert row[1] == f"{best['step']:,}" and row[2] == f"{best['accuracy']:.4f}"
    col = table["columns"].index("test unbiased accuracy (%)")
    assert row[col] == f"{100 * test['unbiased_accuracy']:.2f}"
    last = next(r for r in table["rows"] if r[0] == "last")
    assert last[1] == f"{max(r['step'] for r in rows):,}"
    # the headline finding names the reported rule and its number
    assert any(f"{100 * test['unbiased_accuracy']:.1f} %" in f["text"] and "best_val_accuracy" in f["text"]
               for f in ctx["findings"])


def test_run_heat_map_is_correct_over_count_per_cell(tiny_run, monkeypatch, no_png):
    seen = []
    real = plots.cell_heatmaps

    def spy(panels, **kw):
        seen.append((panels, kw))
        return real(panels, **kw)

    monkeypatch.setattr(plots, "cell_heatmaps", spy)
    build_context(tiny_run)
    (panels, kw), = seen
    rows = _rows(tiny_run)
    last = max(r["step"] for r in rows)
    t = next(r for r in rows if r["split"] == "test" and r["step"] == last)
    p = next(p for p in panels if p["title"].startswith("last"))
    cnt, ok = np.array(t["group_count"], float), np.array(t["group_correct"], float)
    want = np.where(cnt > 0, ok / np.maximum(cnt, 1), np.nan)
    np.testing.assert_allclose(p["acc"], want, equal_nan=True)
    assert kw["class_names"] == ["0", "1", "2"] and kw["aligned"] is None  # a generic dataset: no assumed cells


def test_an_unfinished_run_renders_its_evaluations_so_far(tiny_run, tmp_path):
    part = tmp_path / "partial"
    part.mkdir()
    shutil.copy(tiny_run / "config.yaml", part / "config.yaml")
    rows = (tiny_run / "metrics.jsonl").read_text().splitlines()
    (part / "metrics.jsonl").write_text("\n".join(rows[:4]) + "\n")  # steps 2 and 4 of 6
    assert detect(part) == "run"
    ctx = build_context(part)
    assert ctx["findings"][0]["level"] == "warn" and "not finished" in ctx["findings"][0]["text"]
    assert "step 4 of 6" in ctx["findings"][0]["text"]
    check_page(render_html(ctx))


# ------------------------------------------------------------------------------------------ sweeps
def test_sweep_report_comparison_is_mean_and_sample_std_over_seeds(tiny_sweep, tmp_path):
    root, runs = tiny_sweep
    ctx = build_context(root / "sw")
    page = check_page(render_html(ctx))
    assert len(page.images) >= 3  # comparison chart, curves, heat maps
    heads = [t for t in page.tables]
    assert any("published" in t and "best_val_accuracy" in t for t in heads)  # comparison table
    assert any("run key" in t and "data fingerprint" in t for t in heads)  # provenance table
    assert ctx["kind"] == "sweep" and ctx["n_runs"] == 4
    table = ctx["sweep"]["datasets"][0]["table"]
    col = table["columns"].index("best_val_accuracy")
    for method in ("vanilla", "lff"):
        vals = []
        for r in runs:
            if not r.key.startswith(method + "-"):
                continue
            rows = _rows(r.run_dir)
            val = [x for x in rows if x["split"] == "val"]
            step = max(val, key=lambda x: (x["accuracy"], -x["step"]))["step"]
            vals.append(next(x for x in rows if x["split"] == "test" and x["step"] == step)["unbiased_accuracy"])
        row = next(x for x in table["rows"] if x[1] == method)
        assert row[0] == "5 %" and row[2] == "0, 1"
        assert row[col] == f"{100 * statistics.mean(vals):.2f} ± {100 * statistics.stdev(vals):.2f}"
    assert ctx["sweep"]["status"]["counts"] == {"done": 4}


def test_records_folder_gives_the_same_comparison_as_the_sweep_directory(tiny_sweep, no_png):
    root, _ = tiny_sweep
    a = build_context(root / "sw")
    b = build_context(root / "records")
    assert a["sweep"]["datasets"][0]["table"] == b["sweep"]["datasets"][0]["table"]
    assert (a["kind"], b["kind"]) == ("sweep", "records") and a["findings"] == b["findings"]


def test_cmnist_records_get_digit_by_colour_maps_and_published_numbers(tmp_path, monkeypatch, no_png):
    from report.synth import write_synthetic_records

    write_synthetic_records(tmp_path / "rec", seeds=2, steps=2000, eval_every=500, methods=("vanilla", "lff"),
                            ratios=(0.01, 0.05))
    seen = []
    real = plots.cell_heatmaps
    monkeypatch.setattr(plots, "cell_heatmaps", lambda panels, **kw: seen.append((panels, kw)) or real(panels, **kw))
    ctx = build_context(tmp_path / "rec")
    (panels, kw), = seen
    from debiaskit.data.colored_mnist import COLOR_NAMES

    assert kw["bias_names"] == list(COLOR_NAMES) and kw["xlabel"] == "colour (bias)"
    assert kw["ylabel"] == "digit (target)" and np.array_equal(kw["aligned"], np.eye(10, dtype=bool))
    # grid: methods (vanilla first) x ratios; pooled over seeds at the step best_val_accuracy picks
    assert [p["title"] for p in panels] == ["vanilla, 1 %", "vanilla, 5 %", "lff, 1 %", "lff, 5 %"]
    from debiaskit.train.selection import select

    runs = [r for r in load_runs([tmp_path / "rec"]) if r.result["method"] == "lff"
            and r.result["dataset_options"]["ratio"] == 0.05]
    cnt = ok = 0
    for r in runs:
        step = select("best_val_accuracy", r.evaluations).step
        t = next(e for e in r.evaluations if e["split"] == "test" and e["step"] == step and "weights" not in e)
        cnt, ok = cnt + np.array(t["group_count"]), ok + np.array(t["group_correct"])
    np.testing.assert_allclose(panels[3]["acc"], ok / cnt)
    table = ctx["sweep"]["datasets"][0]["table"]
    pub = next(r for r in table["rows"] if r[1] == "lff" and r[0] == "1 %")[-1]
    assert pub == "61.89"  # the DisEnt paper's LfF re-run at 1 %
    assert ctx["sweep"]["datasets"][0]["has_published"]


def test_published_numbers_lookup():
    assert published_for("colored_mnist", "vanilla", 0.005)[0] == {
        "source": "DisEnt paper (Lee et al. NeurIPS 2021) Table 1", "mean": 35.19, "std": 3.49}
    assert len(published_for("colored_mnist", "lff", 0.01)) == 2  # DisEnt re-run and the LfF paper
    assert published_for("colored_mnist", "lff", 0.03) == [] and published_for("celeba", "lff", 0.01) == []
    assert fmt_ratio(0.005) == "0.5 %" and fmt_ratio(None) == "–"


def test_axis_names_for_known_and_generic_datasets():
    cn, bn, ylab, xlab, pal, al = axis_names("corrupted_cifar10", {"type": 0}, 10, 10)
    assert cn[0] == "airplane" and ylab == "class (target)" and xlab == "corruption (bias)" and pal is None
    assert al.sum() == 10 and len(bn) == 10
    cn, bn, ylab, xlab, pal, al = axis_names("celeba", {}, 2, 2)
    assert cn == ["0", "1"] and al is None  # no assumption about which cells are aligned


# ------------------------------------------------------------------------------------------ audits
def test_prediction_audit_report_has_intervals_group_names_and_small_multiples(tiny_audit):
    ctx = build_context(tiny_audit)
    page = check_page(render_html(ctx))
    heads = [t for t in page.tables]
    assert any(t[:3] == ["metric", "value", "interval"] for t in heads)
    assert any(t[:2] == ["group", "count"] and "TPR" in t for t in heads)
    rep = json.loads((tiny_audit / "report.json").read_text())
    deo = rep["targets"]["target"]["metrics"]["deo"]
    assert f"[{deo['ci'][0]:.4f}, {deo['ci'][1]:.4f}]" in page.text
    for name in ("north", "islands", "centre"):
        assert name in page.text
    t = ctx["targets"][0]
    assert t["rates"] and t["dist"] and not t["dist_note"]  # redrawn per group from the audited file
    assert any("DEO" in f["text"] for f in ctx["findings"])


def test_prediction_audit_falls_back_to_its_own_plot_when_the_input_changed(tiny_audit, tmp_path, no_png):
    moved = tmp_path / "copy"
    shutil.copytree(tiny_audit, moved)
    rep = json.loads((moved / "report.json").read_text())
    rep["input"]["sha256"] = "0" * 64  # the audited file is no longer the one recorded
    (moved / "report.json").write_text(json.dumps(rep))
    t = build_context(moved)["targets"][0]
    assert t["dist"].startswith("data:image/png;base64,") and "could not be redrawn" in t["dist_note"]


def test_label_audit_report_has_the_bias_card(label_audit):
    ctx = build_context(label_audit)
    page = check_page(render_html(ctx))
    assert "Bias card" in page.text and "α-balanced subsets" in page.text
    assert any(t and t[0] == "α" for t in page.tables)
    card = json.loads((label_audit / "report.json").read_text())["bias_card"]
    top = card["most_skewed"]["woman"][0]
    assert any(f"Most skewed towards woman: {top['label']}" in f["text"] for f in ctx["findings"])
    assert ctx["count_heatmap"] and ctx["skew"]


def test_model_audit_report_has_the_leakage_curve(model_audit, tmp_path):
    page = check_page(write_report(model_audit, tmp_path / "model.html").read_text(encoding="utf-8"))
    assert "Leakage curve" in page.text and any(t[:2] == ["perturbation p", "F1 (val)"] for t in page.tables)
    rep = json.loads((model_audit / "report.json").read_text())
    assert f"{100 * rep['delta']:+.2f} points" in page.text


# ------------------------------------------------------------------------------------------ CLI
def test_cli_writes_the_report_and_refuses_bad_paths(tiny_run, tmp_path, capsys):
    assert main(["report", str(tiny_run), "--out", str(tmp_path / "r.html")]) == 0
    assert (tmp_path / "r.html").is_file() and "wrote" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "nope")]) == 2
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert "holds no finished run" in capsys.readouterr().err
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "report.json").write_text('{"something": 1}')
    assert main(["report", str(tmp_path / "other")]) == 2
    assert "not a report written by `debiaskit audit`" in capsys.readouterr().err
    assert main(["report", str(tiny_run), "--out", str(tmp_path)]) == 2
    assert main(["report", str(tiny_run), "--rule", "bogus"]) == 2
    assert "unknown selection rule 'bogus'" in capsys.readouterr().err
    with pytest.raises(DebiaskitError, match="no such file"):
        build_context(tmp_path / "missing")


def test_the_rule_option_moves_the_summary_and_heat_maps(tiny_sweep, no_png):
    root, _ = tiny_sweep
    ctx = build_context(root / "sw", rule="oracle_test")
    assert ctx["focus"] == "oracle (test-set selection)"
    assert ctx["sweep"]["datasets"][0]["heatmap"]["rule"] == "oracle (test-set selection)"


def test_collect_writes_the_html_report_next_to_its_output_unless_told_not_to(tiny_sweep, tmp_path, no_png, capsys):
    root, _ = tiny_sweep
    assert main(["collect", str(root / "sw"), "--output", str(tmp_path / "table.md")]) == 0
    assert (tmp_path / "table.md").is_file() and (tmp_path / "table.html").is_file()
    assert "wrote" in capsys.readouterr().err
    assert main(["collect", str(root / "sw"), "--output", str(tmp_path / "b.md"), "--no-html"]) == 0
    assert not (tmp_path / "b.html").exists()
    assert main(["collect", str(root / "sw"), str(root / "records"), "--html", str(tmp_path / "c.html")]) == 0
    assert "| lffdis_toy |" in capsys.readouterr().out and (tmp_path / "c.html").is_file()
    html = (tmp_path / "c.html").read_text(encoding="utf-8")
    assert "4 runs (2 settings)" in html  # a run present as a directory and as a record counts once


def test_examples_rank_training_samples_by_the_relative_difficulty_weight(tiny_sweep, monkeypatch):
    import torch
    import torch.nn.functional as F

    from debiaskit.data.augment import make_batch_transform
    from debiaskit.experiments.rundir import load_run

    _, runs = tiny_sweep
    rd = next(r.run_dir for r in runs if r.key.startswith("lff-") and r.key.endswith("s0"))
    seen = []
    real = plots.examples_grid
    monkeypatch.setattr(plots, "examples_grid",
                        lambda images, caps, **kw: seen.append((images, caps)) or real(images, caps, **kw))
    ctx = build_context(rd, examples=True)
    assert len(ctx["run"]["examples"]) == 2 and all(e["uri"] for e in ctx["run"]["examples"])
    # hand computation: W = CE_b / (CE_b + CE_d) with the biased network (LfF's GCE branch) and the debiased one
    run = load_run(rd)
    m, train = run.method(), run.splits["train"]
    x = make_batch_transform(train.info, train=False)(train.images)
    with torch.no_grad():
        ce_b = F.cross_entropy(m.predict_biased(x), train.targets, reduction="none")
        ce_d = F.cross_entropy(m.predict(x), train.targets, reduction="none")
    w = (ce_b / (ce_b + ce_d + 1e-8)).numpy()
    caps = seen[0][1]
    assert caps[0].split("W=")[1][:4] == f"{np.sort(w)[::-1][0]:.2f}"
    assert [float(c.split("W=")[1][:4]) for c in caps] == sorted((float(c.split("W=")[1][:4]) for c in caps),
                                                                  reverse=True)
    share = float(train.conflicting.numpy()[np.argsort(-w, kind="stable")[:24]].mean())
    assert any(f"{100 * share:.0f} % are bias-conflicting" in f["text"] for f in ctx["findings"])
    # misclassified test samples: every caption's prediction differs from its target
    for c in seen[1][1]:
        if c:
            yv, pv = c.split("\n")[0].split()[0][2:], c.split("pred ")[1]
            assert yv != pv


def test_examples_need_a_run_directory(tiny_sweep, no_png):
    root, _ = tiny_sweep
    rec = sorted((root / "records").glob("*.json"))[0]
    ctx = build_context(rec, examples=True)
    assert any("need a finished run directory" in f["text"] for f in ctx["findings"])


def test_names_from_the_data_are_escaped(label_audit, tmp_path, no_png):
    bad = tmp_path / "bad"
    shutil.copytree(label_audit, bad)
    rep = json.loads((bad / "report.json").read_text())
    rep["data"]["name"] = '<script>alert("x")</script>'
    rep["bias_card"]["label_names"][0] = '<img src="https://example.org/x.png">'
    (bad / "report.json").write_text(json.dumps(rep))
    html = render_html(build_context(bad))
    assert "<script" not in html and "&lt;script&gt;" in html
    assert '<img src="https://' not in html


def test_ema_rows_are_their_own_labelled_series_in_the_training_curves(tmp_path, monkeypatch):
    from report.synth import write_synthetic_records

    (rec,) = write_synthetic_records(tmp_path / "rec", seeds=1, steps=2000, eval_every=500, methods=("lff",),
                                     ratios=(0.01,))
    figs = []
    monkeypatch.setattr(plots, "fig_to_uri", lambda fig, **kw: figs.append(fig) or "data:image/png;base64,")
    ctx = build_context(rec)
    assert ctx["run"]["curves"]
    fig = next(f for f in figs if any(ax.get_title() == "unbiased accuracy" for ax in f.axes))
    ax = next(a for a in fig.axes if a.get_title() == "unbiased accuracy")
    lines = {ln.get_label(): ln for ln in ax.get_lines() if not ln.get_label().startswith(("last", "best", "oracle"))}
    assert set(lines) == {"val split", "val_unbiased split", "test split", "val split, EMA weights",
                          "val_unbiased split, EMA weights", "test split, EMA weights"}
    rows = json.loads(rec.read_text())["evaluations"]
    for split in ("val", "test"):
        for label, weights in ((f"{split} split", "raw"), (f"{split} split, EMA weights", "ema")):
            want = [(r["step"], 100 * r["unbiased_accuracy"]) for r in rows
                    if r["split"] == split and r.get("weights", "raw") == weights]
            ln = lines[label]
            assert list(ln.get_xdata()) == [w[0] for w in want] and len(want) == 4  # not mixed: 4 points each
            np.testing.assert_allclose(ln.get_ydata(), [w[1] for w in want])
            assert ln.get_linestyle() == ("-" if weights == "raw" else "--")
        assert lines[f"{split} split"].get_color() == lines[f"{split} split, EMA weights"].get_color()
    # the legend names the EMA series
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "test split, EMA weights" in legend and "train (running mean)" in legend
    # a run without EMA rows draws no EMA series
    figs.clear()
    plots.training_curves([r for r in rows if r.get("weights", "raw") == "raw"], {})
    assert not [ln for a in figs[0].axes for ln in a.get_lines() if "EMA" in ln.get_label()]
