import json
import time

import numpy as np
import pytest
import torch

from debiaskit.cli import main

FAST = ["--epochs", "1", "--rounds", "2", "--max-per-group", "150", "--threads", "1"]


def test_audit_labels_on_celeba_runs_in_seconds(shared_data, tmp_path, capsys):
    out = tmp_path / "report"
    t0 = time.time()
    rc = main(["audit", "labels", "--dataset", "celeba", "--data-dir", str(shared_data), "--split", "val",
               "--alpha", "2,3", "--out", str(out), "--top-k", "5", *FAST])
    elapsed = time.time() - t0
    assert rc == 0
    assert {p.name for p in out.iterdir()} == {"report.md", "report.json", "skew.png", "report.html"}
    rep = json.loads((out / "report.json").read_text())
    assert rep["data"]["size"] == 19867 and 0.5 <= rep["leakage"]["mean"] <= 1.0
    assert [e["alpha"] for e in rep["alpha_splits"]] == [2.0, 3.0]
    assert all(e["max_ratio"] <= e["alpha"] + 1e-9 for e in rep["alpha_splits"])
    assert "Wearing_Lipstick" in capsys.readouterr().out
    assert elapsed < 120  # seconds on an idle machine; generous for a shared CI box


def _csv(tmp_path, rows, name="l.csv"):
    p = tmp_path / name
    p.write_text("a,b,sex\n" + "\n".join(rows) + "\n")
    return p


@pytest.mark.parametrize(
    "extra, rows, message",
    [
        ([], ["1,0,f", "0,1,f", "1,1,f"], "single value"),
        (["--alpha", "0.5"], ["1,0,f", "0,1,m"], "every α must be >= 1"),
        ([], ["1,0,f"] * 30 + ["0,1,m"], "too few samples to balance"),
    ],
)
def test_audit_labels_bad_input(tmp_path, capsys, extra, rows, message):
    out = tmp_path / "out"
    rc = main(["audit", "labels", str(_csv(tmp_path, rows)), "--protected", "sex", "--out", str(out), *extra, *FAST])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error:") and message in err[-1]  # after any "[audit labels] ..." progress lines
    assert not [ln for ln in err[:-1] if not ln.startswith("[audit labels] ")]
    assert not out.exists()  # nothing written on failure


def test_audit_labels_argument_errors(tmp_path, capsys):
    p = _csv(tmp_path, ["1,0,f", "0,1,m"])
    assert main(["audit", "labels", str(p), "--dataset", "celeba", "--protected", "sex"]) == 2
    assert "exactly one of FILE or --dataset" in capsys.readouterr().err
    assert main(["audit", "labels", str(p)]) == 2
    assert "--protected COL is required" in capsys.readouterr().err


def test_audit_labels_csv_no_leakage(tmp_path, capsys):
    rng = np.random.default_rng(0)
    rows = [f"{int(a)},{int(b)},{s}" for a, b, s in zip(rng.integers(0, 2, 80), rng.integers(0, 2, 80),
                                                         rng.choice(["f", "m"], 80))]
    rc = main(["audit", "labels", str(_csv(tmp_path, rows)), "--protected", "sex", "--no-leakage", "--alpha", "1"])
    assert rc == 0
    assert "alpha 1:" in capsys.readouterr().out


class _FakeRun:
    """Stands in for debiaskit.experiments.rundir.Run: splits + predict_logits."""

    def __init__(self, tmp_path):
        from debiaskit.data.base import BiasedDataset, DatasetSplits

        rng = np.random.default_rng(0)
        self.path = tmp_path
        sp, self._logits = {}, {}
        for name, n in (("train", 900), ("val", 300), ("test", 300)):
            y = rng.integers(0, 3, n)
            b = np.where(rng.random(n) < 0.8, y % 2, 1 - y % 2)
            sp[name] = BiasedDataset(images=torch.zeros(n, 1, 2, 2, dtype=torch.uint8), targets=torch.tensor(y),
                                     bias=torch.tensor(b), num_classes=3, num_bias=2, split=name, name="fake",
                                     aligned_cells=torch.tensor([[True, False], [False, True], [True, False]]))
            lo = np.eye(3)[y] * 2 + rng.normal(0, 1, (n, 3)) + 1.5 * b[:, None] * np.array([0, 1, 0])
            self._logits[name] = torch.tensor(lo, dtype=torch.float32)
        self.splits = DatasetSplits(sp)

    def predict_logits(self, split, **kw):
        return self._logits[split]


def test_audit_model_with_a_run(tmp_path, monkeypatch, capsys):
    import debiaskit.experiments.rundir as rundir

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    monkeypatch.setattr(rundir, "load_run", lambda p, **kw: _FakeRun(p))
    rc = main(["audit", "model", str(run_dir), "--points", "3", *FAST])
    assert rc == 0
    rep = json.loads((run_dir / "audit_leakage" / "report.json").read_text())
    assert rep["kind"] == "logits" and 0 < rep["model_f1"] <= 1
    assert rep["delta"] == pytest.approx(rep["lambda_M"]["mean"] - rep["lambda_D_at_F1"])
    assert len(rep["curve"]["p"]) == 3
    assert "Δ = λ_M − λ_D(F1)" in capsys.readouterr().out


def test_audit_model_missing_dir(tmp_path, capsys):
    assert main(["audit", "model", str(tmp_path / "nope")]) == 2
    assert "run directory not found" in capsys.readouterr().err
