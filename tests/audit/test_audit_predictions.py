import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score

from debiaskit import cli
from debiaskit.commands import audit as audit_cmd
from debiaskit.metrics import calibrated_threshold, deo, score_kl


@pytest.fixture
def run_cli():
    def _run(*argv):
        return cli.main([str(a) for a in argv])

    return _run


def _frame(n, seed, groups=("female", "male")):
    rng = np.random.default_rng(seed)
    g = rng.choice(list(groups), n)
    y = (rng.random(n) < 0.3 + 0.3 * (g == groups[-1])).astype(int)
    s = 1 / (1 + np.exp(-(2 * y - 1 + 0.5 * (g == groups[-1]) + rng.normal(size=n))))
    cls = rng.integers(0, 3, n)
    logits = rng.normal(size=(n, 3))
    logits[np.arange(n), cls] += 1.5
    P = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return pd.DataFrame({"index": np.arange(n), "target": y, "score": s, "t2": rng.integers(0, 2, n),
                         "s2": rng.random(n), "cls": cls, "score_0": P[:, 0], "score_1": P[:, 1],
                         "score_2": P[:, 2], "logit": np.log(s / (1 - s)), "bias": g})


@pytest.fixture
def files(tmp_path):
    test, val = tmp_path / "test.csv", tmp_path / "val.csv"
    _frame(600, 0).to_csv(test, index=False)
    _frame(300, 1).to_csv(val, index=False)
    return test, val


def test_audit_group_collects_the_sub_commands_of_its_modules():
    import argparse

    parser = argparse.ArgumentParser()
    audit_cmd.register(parser.add_subparsers())
    audit = parser._subparsers._group_actions[0].choices["audit"]
    names = set(audit._subparsers._group_actions[0].choices)
    assert {"predictions", "labels", "model"} <= names
    assert [m.__name__ for m in audit_cmd._AUDIT_MODULES] == ["debiaskit.commands.audit_predictions",
                                                             "debiaskit.commands.audit_leakage"]


def test_binary_audit_matches_direct_metric_calls(run_cli, files, tmp_path, capsys):
    test, val = files
    out = tmp_path / "rep"
    rc = run_cli("audit", "predictions", test, "--target", "target", "--score", "score", "--protected", "bias",
                 "--val", val, "--n-boot", "20", "--out", out)
    assert rc == 0
    assert (out / "report.md").is_file() and (out / "plots" / "target_rates.png").stat().st_size > 1000
    assert (out / "plots" / "target_scores.png").is_file()
    rep = json.loads((out / "report.json").read_text())
    df, dv = pd.read_csv(test), pd.read_csv(val)
    tau = calibrated_threshold(dv.target, dv.score)
    t = rep["targets"]["target"]
    assert t["threshold"]["value"] == pytest.approx(tau)
    assert t["metrics"]["ap"]["value"] == pytest.approx(average_precision_score(df.target, df.score))
    assert t["metrics"]["deo"]["value"] == pytest.approx(deo(df.target, (df.score > tau).astype(int), sensitive_features=df.bias))
    assert t["metrics"]["kl_aligned"]["value"] == pytest.approx(score_kl(df.target, df.score, sensitive_features=df.bias))
    lo, hi = t["metrics"]["ap"]["ci"]
    assert lo <= t["metrics"]["ap"]["value"] <= hi
    assert set(t["by_group"]["by_group"]["tpr"]) == {"female", "male"}
    assert rep["config"]["seed"] == 0 and rep["debiaskit_version"]
    assert len(rep["input"]["sha256"]) == 64
    md = (out / "report.md").read_text()
    assert "group female" in md and "DEO" in md
    assert not list(tmp_path.glob(".rep.*"))  # no temp dirs left behind


def test_multilabel_multiclass_and_logits(run_cli, files, tmp_path):
    test, _ = files
    rc = run_cli("audit", "predictions", test, "--target", "target,t2", "--score", "score,s2", "--protected", "bias",
                 "--n-boot", "0", "--no-plots", "--out", tmp_path / "ml")
    assert rc == 0
    rep = json.loads((tmp_path / "ml" / "report.json").read_text())
    assert rep["mode"] == "multilabel" and rep["threshold"] == "0.5"
    assert set(rep["targets"]) == {"target", "t2"} and rep["summary"]["map"]["value"] > 0
    rc = run_cli("audit", "predictions", test, "--target", "cls", "--score", "score_0,score_1,score_2",
                 "--protected", "bias", "--n-boot", "10", "--no-plots", "--threshold", "f1", "--out", tmp_path / "mc")
    assert rc == 0
    rep = json.loads((tmp_path / "mc" / "report.json").read_text())
    assert rep["mode"] == "multiclass" and set(rep["targets"]) == {"cls=0", "cls=1", "cls=2"}
    df = pd.read_csv(test)
    assert rep["targets"]["cls=1"]["metrics"]["ap"]["value"] == pytest.approx(
        average_precision_score(df.cls == 1, df.score_1))
    assert "bias_amplification_zhao" in rep["summary"]
    rc = run_cli("audit", "predictions", test, "--target", "target", "--score", "logit", "--protected", "bias",
                 "--logits", "--n-boot", "0", "--no-plots", "--out", tmp_path / "lg")
    assert rc == 0
    a = json.loads((tmp_path / "lg" / "report.json").read_text())["targets"]["target"]["metrics"]["ap"]["value"]
    assert a == pytest.approx(average_precision_score(df.target, df.score))


def test_multi_group_protected_has_no_kl_but_gaps(run_cli, tmp_path):
    f = tmp_path / "three.csv"
    _frame(400, 3, groups=("a", "b", "c")).to_csv(f, index=False)
    rc = run_cli("audit", "predictions", f, "--target", "target", "--score", "score", "--protected", "bias",
                 "--n-boot", "0", "--no-plots", "--out", tmp_path / "o")
    assert rc == 0
    t = json.loads((tmp_path / "o" / "report.json").read_text())["targets"]["target"]
    assert "kl_aligned" not in t["metrics"] and "kl_note" in t and t["metrics"]["deo"]["value"] >= 0


def test_group_without_positives_reports_nan_and_names_group(run_cli, tmp_path):
    df = _frame(300, 4)
    df.loc[df.bias == "male", "target"] = 0
    f = tmp_path / "nopos.csv"
    df.to_csv(f, index=False)
    rc = run_cli("audit", "predictions", f, "--target", "target", "--score", "score", "--protected", "bias",
                 "--n-boot", "0", "--no-plots", "--out", tmp_path / "o")
    assert rc == 0
    rep = json.loads((tmp_path / "o" / "report.json").read_text())
    assert rep["targets"]["target"]["metrics"]["deo"]["value"] is None  # NaN, not 0
    assert any("'male'" in w for w in rep["warnings"])
    assert "## Warnings" in (tmp_path / "o" / "report.md").read_text()


def _bad(tmp_path, name, text):
    f = tmp_path / name
    f.write_text(text)
    return f


@pytest.mark.parametrize(
    "content,args,match",
    [
        ("", [], "empty"),
        ("target,score,bias\n", [], "no rows"),
        ("target,score,bias\n1,0.5,a\n0,0.2,a\n", [], "distinct group"),
        ("target,score,bias\n1,nan,a\n0,0.2,b\n", [], "missing/non-numeric"),
        ("target,score,bias\n2,0.5,a\n0,0.2,b\n", [], "binary"),
        ("target,score,bias\n1,1.5,a\n0,0.2,b\n", [], "--logits"),
        ("target,score,bias\n1,0.5,a\n0,0.2,b\n", ["--threshold", "1.5"], "threshold"),
    ],
)
def test_bad_inputs_one_line_error_no_report(run_cli, tmp_path, capsys, content, args, match):
    f = _bad(tmp_path, "bad.csv", content)
    out = tmp_path / "out"
    rc = run_cli("audit", "predictions", f, "--target", "target", "--score", "score", "--protected", "bias",
                 "--n-boot", "0", "--out", out, *args)
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err.startswith("error:") and "\n" not in err and match in err
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bad.csv"]


def test_unknown_columns_and_existing_output(run_cli, files, tmp_path, capsys):
    test, val = files
    rc = run_cli("audit", "predictions", test, "--target", "nope", "--score", "score", "--protected", "bias",
                 "--out", tmp_path / "o")
    assert rc == 2 and "nope" in capsys.readouterr().err and not (tmp_path / "o").exists()
    rc = run_cli("audit", "predictions", test, "--target", "target", "--score", "score", "--protected", "sex",
                 "--out", tmp_path / "o")
    assert rc == 2 and "sex" in capsys.readouterr().err
    rc = run_cli("audit", "predictions", test, "--target", "target,t2", "--score", "score", "--protected", "bias",
                 "--out", tmp_path / "o")
    assert rc == 2 and "--score" in capsys.readouterr().err
    out = tmp_path / "exists"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    args = ["audit", "predictions", test, "--target", "target", "--score", "score", "--protected", "bias",
            "--n-boot", "0", "--no-plots", "--out", out]
    assert run_cli(*args) == 2 and "--force" in capsys.readouterr().err
    assert (out / "keep.txt").exists()
    assert run_cli(*args, "--force") == 0
    assert not (out / "keep.txt").exists() and (out / "report.json").exists()


def test_failure_while_writing_leaves_no_partial_report(run_cli, files, tmp_path, monkeypatch):
    from debiaskit.audit import predictions

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(predictions, "_plot_scores", boom)
    test, _ = files
    with pytest.raises(RuntimeError):
        run_cli("audit", "predictions", test, "--target", "target", "--score", "score", "--protected", "bias",
                "--n-boot", "0", "--out", tmp_path / "o")
    assert not (tmp_path / "o").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test.csv", "val.csv"]


def test_parquet_input_gives_the_same_report(run_cli, files, tmp_path):
    test, _ = files
    pq = tmp_path / "test.parquet"
    pd.read_csv(test).to_parquet(pq)
    args = ["--target", "target", "--score", "score", "--protected", "bias", "--threshold", "0.5", "--n-boot", "10",
            "--no-plots"]
    assert run_cli("audit", "predictions", test, *args, "--out", tmp_path / "a") == 0
    assert run_cli("audit", "predictions", pq, *args, "--out", tmp_path / "b") == 0
    a = json.loads((tmp_path / "a" / "report.json").read_text())["targets"]
    b = json.loads((tmp_path / "b" / "report.json").read_text())["targets"]
    assert a == b


def _mc_frame(n, seed):
    """3 classes, a colour-like bias attribute with the same values (aligned cell = class equals bias)."""
    rng = np.random.default_rng(seed)
    b = rng.integers(0, 3, n)
    y = np.where(rng.random(n) < 0.8, b, rng.integers(0, 3, n))
    pred = np.where(rng.random(n) < 0.6, b, y)  # a biased model: often predicts the bias
    logits = rng.normal(size=(n, 3))
    logits[np.arange(n), pred] += 2.0
    P = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return pd.DataFrame({"target": y, "bias": b, "pred": pred, "score_0": P[:, 0], "score_1": P[:, 1],
                         "score_2": P[:, 2]})


def test_multiclass_group_accuracies_match_the_lff_metrics(run_cli, tmp_path):
    from debiaskit.metrics import bias_metrics

    df = _mc_frame(900, 5)
    f = tmp_path / "mc.csv"
    df.to_csv(f, index=False)
    rc = run_cli("audit", "predictions", f, "--target", "target", "--pred", "pred", "--protected", "bias",
                 "--n-boot", "40", "--no-plots", "--out", tmp_path / "o")
    assert rc == 0
    rep = json.loads((tmp_path / "o" / "report.json").read_text())
    ga = rep["group_accuracy"]
    y, p, b = df.target.to_numpy(), df.pred.to_numpy(), df.bias.to_numpy()
    ref = bias_metrics(y, p, sensitive_features=b, num_classes=3, num_bias=3)  # diagonal = aligned
    for k in ("accuracy", "unbiased_accuracy", "worst_group_accuracy", "aligned_accuracy", "conflicting_accuracy"):
        assert ga["metrics"][k]["value"] == pytest.approx(ref[k]), k
        lo, hi = ga["metrics"][k]["ci"]
        assert lo <= ga["metrics"][k]["value"] <= hi, k
    for grp in ("0", "1", "2"):
        assert ga["metrics"][f"group:{grp}"]["value"] == pytest.approx((y[b == int(grp)] == p[b == int(grp)]).mean())
    assert ga["metrics"]["worst_group_accuracy"]["ci_method"] == "simultaneous"
    assert ga["predictions"] == "pred column 'pred'" and len(ga["cells"]) == 9
    assert rep["targets"] == {} and "bias_amplification_zhao" in rep["summary"] and "map" not in rep["summary"]
    md = (tmp_path / "o" / "report.md").read_text()
    assert "Group accuracies" in md and "worst group accuracy" in md and "class predictions only" in md


def test_multiclass_scores_give_argmax_group_accuracies_and_pred_overrides(run_cli, tmp_path):
    df = _mc_frame(600, 6)
    f = tmp_path / "mc.csv"
    df.to_csv(f, index=False)
    common = ["--target", "target", "--score", "score_0,score_1,score_2", "--protected", "bias", "--n-boot", "0",
              "--no-plots"]
    assert run_cli("audit", "predictions", f, *common, "--out", tmp_path / "a") == 0
    a = json.loads((tmp_path / "a" / "report.json").read_text())
    argmax = df[["score_0", "score_1", "score_2"]].to_numpy().argmax(1)
    assert a["group_accuracy"]["predictions"] == "argmax of the score columns"
    assert a["group_accuracy"]["metrics"]["accuracy"]["value"] == pytest.approx((argmax == df.target).mean())
    assert set(a["targets"]) == {"target=0", "target=1", "target=2"}
    df["pred2"] = (df.target + 1) % 3  # always wrong
    df.to_csv(f, index=False)
    assert run_cli("audit", "predictions", f, *common, "--pred", "pred2", "--out", tmp_path / "b") == 0
    b = json.loads((tmp_path / "b" / "report.json").read_text())
    assert b["group_accuracy"]["metrics"]["accuracy"]["value"] == 0.0
    assert b["summary"]["predictions_for_ba"] == "pred column 'pred2'"


def test_pred_column_errors(run_cli, tmp_path, capsys):
    df = _mc_frame(100, 7)
    df.loc[0, "pred"] = 7
    f = tmp_path / "mc.csv"
    df.to_csv(f, index=False)
    args = ["--protected", "bias", "--n-boot", "0", "--no-plots"]
    rc = run_cli("audit", "predictions", f, "--target", "target", "--score", "score_0,score_1,score_2", "--pred",
                 "pred", *args, "--out", tmp_path / "o")
    err = capsys.readouterr().err
    assert rc == 2 and "'pred'" in err and "7" in err and not (tmp_path / "o").exists()
    rc = run_cli("audit", "predictions", f, "--target", "target,bias", "--pred", "pred", "--protected", "score_0",
                 "--n-boot", "0", "--out", tmp_path / "o")
    assert rc == 2 and "exactly one --target" in capsys.readouterr().err
    rc = run_cli("audit", "predictions", f, "--target", "target", "--protected", "bias", "--out", tmp_path / "o")
    assert rc == 2 and "--pred" in capsys.readouterr().err
