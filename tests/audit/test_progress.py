"""Readable progress of the audits: plain lines off a terminal (what, i/total, rate, ETA), a named bar on one."""

from __future__ import annotations

import io
import re

import numpy as np
import pandas as pd
import pytest
import torch

from debiaskit.cli import main
from debiaskit.errors import DebiaskitError
from debiaskit.progress import Progress, fmt_seconds, progress_every

LINE = re.compile(r"^\[(?P<label>[^\]]+)\] (?P<what>.+): (?P<unit>\w+) (?P<i>\d+)/(?P<n>\d+) \(\d+ %\), "
                  r"(?P<rate>[\d.e+?]+) (?P=unit)/s, elapsed \S+, ETA \S+$")


def test_plain_lines_name_the_step_count_rate_and_eta():
    buf = io.StringIO()  # not a terminal
    p = Progress("audit x", every=0, stream=buf)
    with p.phase("attackers", unit="epoch") as tick:
        for i in range(1, 5):
            tick(i, 4)
    p.announce("writing report.html")
    lines = buf.getvalue().splitlines()
    assert lines[0] == "[audit x] attackers: started"
    steps = [LINE.match(x) for x in lines[1:-2]]
    assert all(steps) and [int(m["i"]) for m in steps] == [1, 2, 3]  # the last update is the end line
    assert {m["label"] for m in steps} == {"audit x"} and {m["n"] for m in steps} == {"4"}
    assert re.fullmatch(r"\[audit x\] attackers: done, 4 epochs in \d+s", lines[-2])
    assert lines[-1] == "[audit x] writing report.html"


def test_plain_lines_are_rate_limited():
    buf = io.StringIO()
    with Progress("a", every=3600, stream=buf).phase("boot", total=1000, unit="resample") as ph:
        for _ in range(1000):
            ph.advance()
    assert buf.getvalue().splitlines()[0] == "[a] boot: started (1000 resamples)"
    assert len(buf.getvalue().splitlines()) == 2  # started + done: no line within the interval


def test_a_failed_step_prints_no_done_line_and_disabled_prints_nothing():
    buf = io.StringIO()
    with pytest.raises(ValueError), Progress("a", every=0, stream=buf).phase("x") as tick:
        tick(1, 3)
        raise ValueError
    assert "done" not in buf.getvalue()
    quiet = io.StringIO()
    p = Progress("a", every=0, stream=quiet, enabled=False)
    with p.phase("x") as tick:
        tick(1, 2)
    p.announce("y")
    assert quiet.getvalue() == ""


def test_terminal_bar_names_what_it_measures_and_stays():
    buf = io.StringIO()
    with Progress("audit model", stream=buf, tty=True).phase("λ_M attackers", unit="epoch") as tick:
        for i in range(1, 4):
            tick(i, 3)
    out = buf.getvalue()
    last = out.replace("\r", "\n").strip().splitlines()[-1]
    assert last.startswith("audit model: λ_M attackers: 100%") and "3/3" in last and "epoch/s" in last
    assert out.endswith("\n")  # leave=True: the final bar stays on its own line


def test_interval_from_the_environment(monkeypatch):
    monkeypatch.setenv("DEBIASKIT_PROGRESS_EVERY", "0.5")
    assert progress_every() == 0.5
    monkeypatch.setenv("DEBIASKIT_PROGRESS_EVERY", "soon")
    with pytest.raises(DebiaskitError, match="number of seconds"):
        progress_every()
    assert fmt_seconds(5) == "5s" and fmt_seconds(185) == "3m05s" and fmt_seconds(3723) == "1h02m03s"
    assert fmt_seconds(float("nan")) == "?"


# ------------------------------------------------------------------------------------------ commands
def _progress_lines(err: str, label: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.startswith(f"[{label}] ")]


def test_audit_labels_reports_each_attacker_phase(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DEBIASKIT_PROGRESS_EVERY", "0")
    rng = np.random.default_rng(1)
    prot = rng.integers(0, 2, 300)
    lab = (rng.random((300, 3)) < 0.2 + 0.5 * prot[:, None] * (np.arange(3) % 2 == 0)).astype(int)
    df = pd.DataFrame({f"o{j}": lab[:, j] for j in range(3)})
    df["sex"] = np.where(prot, "f", "m")
    df.to_csv(tmp_path / "l.csv", index=False)
    assert main(["audit", "labels", str(tmp_path / "l.csv"), "--protected", "sex", "--alpha", "2", "--epochs", "3",
                 "--rounds", "2", "--max-per-group", "40", "--threads", "1", "--out", str(tmp_path / "o"),
                 "--no-html"]) == 0
    lines = _progress_lines(capsys.readouterr().err, "audit labels")
    starts = [ln for ln in lines if ln.endswith(": started")]
    assert len(starts) == 2 and "λ_D of the original labels: 2 attacker(s), 3 epochs" in starts[0]
    assert "λ_D of the α = 2 subset" in starts[1]
    counted = [LINE.match(ln) for ln in lines if LINE.match(ln)]
    assert [(m["i"], m["n"], m["unit"]) for m in counted] == [("1", "3", "epoch"), ("2", "3", "epoch")] * 2
    assert sum(ln.endswith("s") and ": done, 3 epochs in " in ln for ln in lines) == 2


class _Run:
    """A run with planted leakage in its logits (splits + predict_logits, the interface audit_model needs)."""

    def __init__(self, path):
        from debiaskit.data.base import BiasedDataset, DatasetSplits

        rng = np.random.default_rng(0)
        self.path = path
        sp, self.logits = {}, {}
        for name, n in (("train", 400), ("val", 160), ("test", 160)):
            y = rng.integers(0, 2, n)
            b = np.where(rng.random(n) < 0.8, y, 1 - y)
            sp[name] = BiasedDataset(images=torch.zeros(n, 1, 2, 2, dtype=torch.uint8), targets=torch.tensor(y),
                                     bias=torch.tensor(b), num_classes=2, num_bias=2, split=name, name="fake")
            lo = np.eye(2)[y] * 2 + rng.normal(0, 1, (n, 2)) + np.array([0, 1.5]) * b[:, None]
            self.logits[name] = torch.tensor(lo, dtype=torch.float32)
        self.splits = DatasetSplits(sp)

    def predict_logits(self, split):
        return self.logits[split]


def test_audit_model_reports_logits_and_both_attacker_phases(tmp_path, capsys, monkeypatch):
    import debiaskit.experiments.rundir as rundir

    monkeypatch.setenv("DEBIASKIT_PROGRESS_EVERY", "0")
    (tmp_path / "run").mkdir()
    monkeypatch.setattr(rundir, "load_run", lambda p, **kw: _Run(p))
    assert main(["audit", "model", str(tmp_path / "run"), "--epochs", "2", "--rounds", "2", "--points", "2",
                 "--max-per-group", "40", "--threads", "1", "--no-html"]) == 0
    lines = _progress_lines(capsys.readouterr().err, "audit model")
    assert lines[0] == "[audit model] computing the model's logits on train, val, test (400, 160, 160 samples)"
    assert lines[1] == "[audit model] λ_M: 2 attacker(s) on the model's logits, 2 epochs: started"
    assert any(ln.startswith("[audit model] λ_D(F1) curve: 2 F1 points x 2 round(s), 2 epochs: epoch 1/2") for ln in lines)
    assert sum(": done, 2 epochs in " in ln for ln in lines) == 2
    assert not (tmp_path / "run" / "audit_leakage" / "report.html").exists()


def test_audit_predictions_reports_its_steps(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DEBIASKIT_PROGRESS_EVERY", "0")
    rng = np.random.default_rng(0)
    n = 200
    g = rng.choice(["a", "b"], n)
    pd.DataFrame({"t1": rng.integers(0, 2, n), "t2": rng.integers(0, 2, n), "s1": rng.random(n), "s2": rng.random(n),
                  "g": g}).to_csv(tmp_path / "p.csv", index=False)
    assert main(["audit", "predictions", str(tmp_path / "p.csv"), "--target", "t1,t2", "--score", "s1,s2",
                 "--protected", "g", "--n-boot", "20", "--out", str(tmp_path / "o")]) == 0
    lines = _progress_lines(capsys.readouterr().err, "audit predictions")
    what = "metrics of 2 target(s), 2 groups, 20 bootstrap resamples of 200 rows"
    assert lines[0] == f"[audit predictions] {what}: started (2 targets)"
    assert LINE.match(lines[1]) and lines[1].startswith(f"[audit predictions] {what}: target 1/2 (50 %)")
    assert re.fullmatch(rf"\[audit predictions\] {re.escape(what)}: done, 2 targets in \d+s", lines[2])
    assert lines[3:] == ["[audit predictions] summary over all targets (mAP, bias amplification), 20 bootstrap "
                         "resamples of 200 rows", "[audit predictions] drawing plots/ for 2 target(s)",
                         f"[audit predictions] writing {tmp_path / 'o' / 'report.html'}"]
