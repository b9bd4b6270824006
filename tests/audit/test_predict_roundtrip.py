"""`debiaskit predict` on a tiny trained run, then `debiaskit audit predictions` on its CSV."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from debiaskit import cli
from debiaskit.commands.predict import predictions_frame

from toydata import pixel_splits


@pytest.fixture
def run_cli():
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


_TINY = "audit_tiny_binary"


@pytest.fixture
def tiny_dataset(monkeypatch):
    """:func:`toydata.pixel_splits` (binary target and protected attribute, 400 / 133 / 133 images) registered as a
    dataset for the duration of the test (the registry entry is removed afterwards)."""
    from debiaskit.data.base import DatasetSplits
    from debiaskit.data.registry import DATASETS, list_datasets, register_dataset

    list_datasets()  # load the built-ins first
    monkeypatch.setattr(DATASETS, "_entries", dict(DATASETS._entries))

    @register_dataset(_TINY)
    def build(seed: int = 0) -> DatasetSplits:
        return pixel_splits(400, corr=0.8, seed=seed)

    assert DATASETS.get(_TINY) is build
    return _TINY


def test_predict_then_audit_round_trip(tmp_path, run_cli, capsys, tiny_dataset):
    from debiaskit.data.registry import get_splits
    from debiaskit.experiments.config import resolve_config
    from debiaskit.train.trainer import run_training

    cfg = resolve_config({
        "seed": 0, "device": "cpu", "dataset": {"name": _TINY}, "method": "vanilla",
        "hparams": {"steps": 20, "batch_size": 64, "model": "mlp", "model_kwargs": {"hidden": [16]}},
        "train": {"eval_every": 10, "checkpoint_every": 10, "progress": False},
    })
    splits = get_splits(_TINY)
    res = run_training(cfg, tmp_path / "run", splits=splits)
    out = tmp_path / "preds.csv"
    assert run_cli("predict", tmp_path / "run", "--split", "test", "--out", out) == 0
    assert "--score score_1" in capsys.readouterr().out
    df = pd.read_csv(out)
    ds = splits["test"]
    assert list(df.columns) == ["index", "target", "bias", "pred", "score_0", "score_1"]
    assert df.target.tolist() == ds.targets.tolist() and df.bias.tolist() == ds.bias.tolist()
    # the CSV holds the predictions of the reported model: its recorded test accuracy is reproduced
    assert (df.pred == df.target).mean() == pytest.approx(res.result["reported"]["test"]["accuracy"])
    meta = json.loads((tmp_path / "preds.csv.json").read_text())
    assert meta["split"] == "test" and meta["data_fingerprint"] == splits.fingerprint
    # refuses to overwrite; an unknown split is a one-line error
    assert run_cli("predict", tmp_path / "run", "--split", "test", "--out", out) == 2
    assert run_cli("predict", tmp_path / "run", "--split", "nope", "--out", tmp_path / "x.csv") == 2
    assert "nope" in capsys.readouterr().err and not (tmp_path / "x.csv").exists()
    assert run_cli("predict", tmp_path / "run", "--split", "val", "--out", tmp_path / "val.csv") == 0
    # binary audit with the calibrated threshold from the validation predictions
    rc = run_cli("audit", "predictions", out, "--target", "target", "--score", "score_1", "--protected", "bias",
                 "--val", tmp_path / "val.csv", "--n-boot", "20", "--no-plots", "--out", tmp_path / "audit")
    assert rc == 0
    rep = json.loads((tmp_path / "audit" / "report.json").read_text())
    assert rep["mode"] == "binary" and rep["threshold"] == "calibrated"
    assert rep["groups"] == ["0", "1"] and rep["targets"]["target"]["metrics"]["deo"]["value"] is not None
    # the same file read as a 2-class target, one-vs-rest
    rc = run_cli("audit", "predictions", out, "--target", "target", "--score", "score_0,score_1",
                 "--protected", "bias", "--n-boot", "0", "--no-plots", "--out", tmp_path / "audit_mc")
    assert rc == 0
    rep = json.loads((tmp_path / "audit_mc" / "report.json").read_text())
    assert rep["mode"] == "multiclass" and rep["summary"]["argmax_accuracy"] == pytest.approx((df.pred == df.target).mean())
