"""`audit predictions|labels|model` write a self-contained report.html next to report.md (`--no-html`: none)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from debiaskit.cli import main
from report.htmlcheck import check_page


def _page(folder):
    f = folder / "report.html"
    assert f.is_file(), f"{f} was not written"
    return check_page(f.read_text(encoding="utf-8"))  # parses; every image decodes; no external URL


def test_audit_predictions_writes_the_html_report_with_intervals_rates_and_named_score_panels(tiny_audit):
    page = _page(tiny_audit)
    rep = json.loads((tiny_audit / "report.json").read_text())
    assert ["metric", "value", "interval", "interval method"] in page.tables
    assert any(t[:2] == ["group", "count"] and "TPR" in t and "FPR" in t for t in page.tables)
    deo = rep["targets"]["target"]["metrics"]["deo"]
    assert f"[{deo['ci'][0]:.4f}, {deo['ci'][1]:.4f}]" in page.text and deo["ci_method"] in page.text
    assert "30 resamples" in page.text and "simultaneous" in page.text  # which interval method, in the setup
    assert len(page.images) == 2  # per-group rates with intervals; score distributions (one panel per group)
    for name in rep["groups"]:  # group names, not codes
        assert name in page.text
    assert "Score distributions" in page.text and "One panel per protected group" in page.text


def test_audit_labels_writes_the_bias_card(label_audit):
    page = _page(label_audit)
    assert "Bias card" in page.text and "α-balanced subsets" in page.text
    assert any(t and t[0] == "α" and "max label ratio" in t for t in page.tables)
    assert len(page.images) >= 2  # count heat map + most skewed labels
    card = json.loads((label_audit / "report.json").read_text())["bias_card"]
    assert f"Most skewed towards woman: {card['most_skewed']['woman'][0]['label']}" in page.text


def test_audit_model_writes_the_leakage_curve(model_audit):
    page = _page(model_audit)
    rep = json.loads((model_audit / "report.json").read_text())
    assert ["perturbation p", "F1 (val)", "λ_D (%)"] in page.tables and len(page.images) == 1
    assert f"{100 * rep['delta']:+.2f} points" in page.text
    assert f"{100 * rep['lambda_M']['mean']:.2f}" in page.text


def test_no_html_writes_none(tmp_path, tiny_run):
    rng = np.random.default_rng(0)
    n = 120
    pd.DataFrame({"y": rng.integers(0, 2, n), "s": rng.random(n), "g": rng.choice(["a", "b"], n)}).to_csv(
        tmp_path / "p.csv", index=False)
    assert main(["audit", "predictions", str(tmp_path / "p.csv"), "--target", "y", "--score", "s", "--protected", "g",
                 "--n-boot", "0", "--no-plots", "--no-html", "--out", str(tmp_path / "pa")]) == 0
    assert (tmp_path / "pa" / "report.md").is_file() and not (tmp_path / "pa" / "report.html").exists()
    lab = pd.DataFrame({"o1": rng.integers(0, 2, n), "o2": rng.integers(0, 2, n), "sex": rng.choice(["f", "m"], n)})
    lab.to_csv(tmp_path / "l.csv", index=False)
    assert main(["audit", "labels", str(tmp_path / "l.csv"), "--protected", "sex", "--no-leakage", "--no-html",
                 "--out", str(tmp_path / "la")]) == 0
    assert (tmp_path / "la" / "report.md").is_file() and not (tmp_path / "la" / "report.html").exists()
    assert main(["audit", "model", str(tiny_run), "--epochs", "1", "--rounds", "1", "--points", "2",
                 "--max-per-group", "20", "--threads", "1", "--no-html", "--out", str(tmp_path / "ma")]) == 0
    assert (tmp_path / "ma" / "report.md").is_file() and not (tmp_path / "ma" / "report.html").exists()


def test_a_report_that_cannot_be_rendered_warns_and_keeps_the_audit(tmp_path, capsys, monkeypatch):
    from debiaskit.errors import DebiaskitError
    from debiaskit.report import html

    def fail(*a, **k):
        raise DebiaskitError("template exploded")

    monkeypatch.setattr(html, "write_report", fail)
    rng = np.random.default_rng(0)
    pd.DataFrame({"y": rng.integers(0, 2, 80), "s": rng.random(80), "g": rng.choice(["a", "b"], 80)}).to_csv(
        tmp_path / "p.csv", index=False)
    assert main(["audit", "predictions", str(tmp_path / "p.csv"), "--target", "y", "--score", "s", "--protected", "g",
                 "--n-boot", "0", "--no-plots", "--out", str(tmp_path / "o")]) == 0
    cap = capsys.readouterr()
    warn = [ln for ln in cap.err.splitlines() if ln.startswith("warning:")]
    assert len(warn) == 1 and "template exploded" in warn[0] and f"debiaskit report {tmp_path / 'o'}" in warn[0]
    assert (tmp_path / "o" / "report.json").is_file() and not (tmp_path / "o" / "report.html").exists()
    assert "report.html" not in cap.out


def test_the_model_audit_verdict_follows_the_sign_and_size_of_delta(model_audit, tmp_path):
    import shutil

    from debiaskit.report.html import build_context

    for delta, level, words in ((0.05, "warn", "more than labels"), (0.01, "info", "about as much"),
                                (-0.01, "info", "about as much"), (-0.05, "good", "less than labels")):
        d = tmp_path / f"d{delta}"
        shutil.copytree(model_audit, d)
        rep = json.loads((d / "report.json").read_text())
        rep["delta"] = delta
        (d / "report.json").write_text(json.dumps(rep))
        f = build_context(d)["findings"][0]
        assert f["level"] == level and words in f["text"] and f"{100 * delta:+.2f} points" in f["text"]
