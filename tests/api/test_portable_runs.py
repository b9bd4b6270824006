"""Runs on users' image folders are portable: absolute paths in config.yaml, ``--data-dir`` relocation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from debiaskit.cli import main


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DEBIASKIT_CACHE", str(tmp_path / "cache"))


def _tree(root: Path, *, seed: int = 0, size: int = 64) -> None:
    """class-per-folder 64x64 RGB images and a bias CSV inside the image root (bias = brightness)."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in ("cat", "dog"):
        for i in range(8):
            bright = (i % 4 != 0) == (c == "cat")
            arr = rng.integers(0, 80, (size, size, 3), dtype=np.uint8) + (150 if bright else 0)
            p = root / c / f"{c}{i}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr.astype(np.uint8)).save(p)
            rows.append(f"{c}/{c}{i}.png,{'bright' if bright else 'dark'}")
    (root / "bias.csv").write_text("path,bias\n" + "\n".join(rows) + "\n")


def test_image_folder_run_from_relative_paths_is_portable(tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    _tree(work / "myfolder" / "data")
    monkeypatch.chdir(work)
    run = tmp_path / "runs" / "r"
    rc = main(["train", "--dataset", "image_folder", "--data-dir", "myfolder/data", "--set", "dataset.bias_from=csv",
               "--set", "dataset.bias_csv=bias.csv", "--set", "dataset.progress=false", "--steps", "2",
               "--set", "hparams.batch_size=4", "--set", "train.eval_every=2", "--no-progress", "--out", str(run)])
    assert rc == 0
    out = capsys.readouterr().out
    assert "vanilla on image_folder seed 0:" in out  # no blank where a ratio would go
    root = (work / "myfolder" / "data").resolve()
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["dataset"]["data_dir"] == str(root)
    assert cfg["dataset"]["bias_csv"] == str(root / "bias.csv")  # resolved in the image root, not the cwd
    result = json.loads((run / "result.json").read_text())
    assert result["provenance"]["paths_given"] == {"data_dir": "myfolder/data", "bias_csv": "bias.csv"}
    assert result["model"] == ["cnn64"]  # 64 px RGB: a CNN, not an MLP

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["predict", str(run), "--out", "a.csv"]) == 0  # another cwd: the absolute paths still hold

    moved = tmp_path / "moved"
    shutil.move(str(root), str(moved))
    assert main(["predict", str(run), "--out", "b.csv"]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert main(["predict", str(run), "--data-dir", str(moved), "--out", "b.csv"]) == 0
    assert Path("b.csv").read_text() == Path("a.csv").read_text()  # the same data, the same predictions

    other = tmp_path / "other"
    _tree(other, seed=1)
    assert main(["predict", str(run), "--data-dir", str(other), "--out", "c.csv"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: the data rebuilt for") and "differs from the data the run used" in err
    assert main(["audit", "model", str(run), "--data-dir", str(tmp_path / "nowhere"), "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: --data-dir {tmp_path / 'nowhere'} is not a folder"  # audit model relocates the same way


def test_relocation_rules():
    from debiaskit.data.generic import relocate_dataset

    ds = {"name": "csv", "path": "/old/labels.csv", "image_root": "/old/img", "data_dir": None}
    assert relocate_dataset(ds, "/tmp") == {"name": "csv", "path": "/tmp/labels.csv", "image_root": "/tmp/img",
                                            "data_dir": "/tmp"}
    ds = {"name": "image_folder", "data_dir": "/old", "bias_csv": "/elsewhere/b.csv"}
    assert relocate_dataset(ds, "/tmp") == {"name": "image_folder", "data_dir": "/tmp", "bias_csv": "/elsewhere/b.csv"}
