"""Table-driven bad input over every command: one ``error:`` line, exit status != 0, no traceback, nothing written.

Each case runs ``debiaskit.cli.main`` in-process (fast); an exception escaping ``main`` is exactly what would
print a traceback, so it fails the test. A few cases at the end run the real console script.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from debiaskit.cli import main
from debiaskit.train.checkpoint import save_model, sidecar_path

from reliability._faults import garble, payload_torch, truncate  # noqa: E402
from toydata import register_toy  # noqa: E402

TOY = register_toy()
TINY = ["--set", "hparams.model=mlp", "--set", "hparams.model_kwargs={hidden: [8]}", "--set", "hparams.batch_size=32",
        "--set", "train.eval_every=2", "--set", "train.checkpoint_every=2", "--device", "cpu", "--no-progress"]


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse
        rc = e.code if isinstance(e.code, int) else 2
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished tiny run whose model files carry checksums (as the trainer writes them with save_model)."""
    d = tmp_path_factory.mktemp("run") / "r"
    assert main(["train", "--dataset", TOY, "--steps", "4", *TINY, "--out", str(d)]) == 0
    for p in d.glob("model_*.pt"):
        if not sidecar_path(p).exists():
            save_model(p, torch.load(p, weights_only=True))
    return d


@pytest.fixture
def run_copy(trained, tmp_path) -> Path:
    import shutil

    d = tmp_path / "runcopy"
    shutil.copytree(trained, d)
    return d


@dataclass
class Case:
    id: str
    argv: list[str]  # "{tmp}" / "{run}" are replaced
    needle: str  # expected in the error line
    setup: Callable[[Path, Path], None] | None = None  # (tmp, run) -> None
    out: str | None = None  # path (with placeholders) that must not be created
    needs_run: bool = False
    env: dict[str, str] = field(default_factory=dict)


def write(rel: str, content: bytes | str) -> Callable[[Path, Path], None]:
    def f(tmp: Path, run: Path) -> None:
        p = Path(rel.format(tmp=tmp, run=run))
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content.encode() if isinstance(content, str) else content)
    return f


def csv_file(name: str, rows: list[str]) -> Callable[[Path, Path], None]:
    return write("{tmp}/" + name, "\n".join(rows) + "\n")


def _rng_rows(header: str, fmt: Callable[[np.random.Generator], str], n: int = 60) -> list[str]:
    rng = np.random.default_rng(0)
    return [header] + [fmt(rng) for _ in range(n)]


PRED_ROWS = _rng_rows("target,score_1,bias", lambda r: f"{r.integers(0, 2)},{r.random():.3f},{r.integers(0, 2)}")
LABEL_ROWS_ID = _rng_rows("id,smiling,glasses,male", lambda r: f"img{r.integers(1e6)},{r.integers(0, 2)},{r.integers(0, 2)},{r.integers(0, 2)}")
LABEL_ROWS_CONST = _rng_rows("cls,male", lambda r: f"a,{r.integers(0, 2)}")
LABEL_ROWS = _rng_rows("smiling,glasses,male", lambda r: f"{r.integers(0, 2)},{r.integers(0, 2)},{r.integers(0, 2)}")
SWEEP = {"name": "t", "datasets": {TOY: {}}, "ratios": [0.05], "methods": {"vanilla": {"hparams": {"steps": 2}}},
         "seeds": [0], "base": {"device": "cpu"}}


def model_file(run: Path) -> Path:
    return sorted(run.glob("model_*.pt"))[0]


def each_model(fn: Callable[[Path], None]) -> Callable[[Path, Path], None]:
    def f(tmp: Path, run: Path) -> None:
        for p in run.glob("model_*.pt"):
            fn(p)
    return f


def payload(tmp: Path, run: Path) -> None:
    for p in run.glob("model_*.pt"):
        p.write_bytes(payload_torch(tmp / "PAYLOAD_RAN"))
        sidecar_path(p).unlink(missing_ok=True)


OUT = "{tmp}/out"
TRAIN = ["train", "--dataset", TOY, "--steps", "2", *TINY, "--out", OUT]

CASES: list[Case] = [
    # ---------------------------------------------------------------- global
    Case("threads-env", ["datasets", "list"], "DEBIASKIT_NUM_THREADS must be a positive integer",
         env={"DEBIASKIT_NUM_THREADS": "abc"}),
    Case("unknown-command", ["frobnicate"], "invalid choice"),
    # ---------------------------------------------------------------- datasets
    Case("datasets-top-k-negative", ["datasets", "info", TOY, "--top-k", "-1"], "--top-k: must be a positive integer"),
    Case("datasets-top-k-zero", ["datasets", "info", TOY, "--top-k", "0"], "--top-k"),
    Case("datasets-ratio", ["datasets", "info", TOY, "--ratio", "2"], "--ratio: must be a number in (0, 1)"),
    Case("datasets-unknown", ["datasets", "info", "no_such_dataset"], "no_such_dataset"),
    Case("datasets-strict-data", ["--strict-data", "datasets", "info", "colored_mnist"], "strict data",
         env={"DEBIASKIT_DATA": "{tmp}"}),
    # ---------------------------------------------------------------- train
    Case("train-lr-inf", [*TRAIN, "--set", "hparams.lr=.inf"], "hparams.lr must be a positive number, got inf", out=OUT),
    Case("train-lr-nan", [*TRAIN, "--set", "hparams.lr=nan"], "hparams.lr must be a positive number", out=OUT),
    Case("train-lr-word", [*TRAIN, "--set", "hparams.lr=abc"], "hparams.lr must be a positive number, got 'abc'", out=OUT),
    Case("train-lambda-nan", [*TRAIN, "--method", "disent", "--set", "hparams.lambda_dis=.nan"],
         "hparams.lambda_dis must be a non-negative number", out=OUT),
    Case("train-q-zero", [*TRAIN, "--method", "lff", "--set", "hparams.q=0"], "hparams.q must be a number in (0, 1]", out=OUT),
    Case("train-ema-alpha", [*TRAIN, "--method", "lff", "--set", "hparams.ema_alpha=2"], "hparams.ema_alpha", out=OUT),
    Case("train-ratio-word", [*TRAIN, "--set", "dataset.ratio=abc"], "dataset.ratio must be a number in (0, 1)", out=OUT),
    Case("train-steps-zero", ["train", "--dataset", TOY, "--steps", "0", *TINY, "--out", OUT],
         "argument --steps: must be a positive integer, got '0'", out=OUT),
    Case("train-steps-word", ["train", "--dataset", TOY, "--steps", "many", *TINY, "--out", OUT],
         "argument --steps: must be a positive integer, got 'many'", out=OUT),
    Case("train-steps-zero-set", [*TRAIN, "--set", "hparams.steps=0"], "hparams.steps must be a positive integer",
         out=OUT),
    Case("train-threads-zero", [*TRAIN, "--threads", "0"], "argument --threads: must be a positive integer or auto",
         out=OUT),
    Case("train-threads-word", [*TRAIN, "--threads", "many"], "argument --threads: must be a positive integer or auto",
         out=OUT),
    Case("train-ratio-two", [*TRAIN, "--ratio", "2"], "argument --ratio: must be a number in (0, 1), got '2'", out=OUT),
    Case("train-wait-lock-negative", [*TRAIN, "--wait-lock=-1"],
         "argument --wait-lock: must be a positive number of seconds", out=OUT),
    Case("train-wait-lock-nan", [*TRAIN, "--wait-lock=nan"], "argument --wait-lock: must be a positive number", out=OUT),
    Case("train-nan-policy", [*TRAIN, "--set", "train.nan_policy=ignore"],
         "train.nan_policy must be error or skip, got 'ignore'", out=OUT),
    Case("train-nan-max-skips", [*TRAIN, "--set", "train.nan_policy=skip", "--set", "train.nan_max_skips=-1"],
         "train.nan_max_skips must be a non-negative integer", out=OUT),
    Case("train-eval-every", [*TRAIN, "--set", "train.eval_every=-1"], "train.eval_every must be a positive integer", out=OUT),
    Case("train-seed-negative", [*TRAIN, "--seed", "-3"], "argument --seed: must be a non-negative integer, got '-3'",
         out=OUT),
    Case("train-seed-word", [*TRAIN, "--seed", "x"], "argument --seed: must be a non-negative integer", out=OUT),
    Case("train-unknown-key", [*TRAIN, "--set", "hparams.nope=1"], "unknown hparam", out=OUT),
    Case("train-set-no-equals", [*TRAIN, "--set", "hparams.lr"], "--set expects key=value", out=OUT),
    Case("train-config-missing", [*TRAIN, "--config", "{tmp}/none.yaml"], "does not exist", out=OUT),
    Case("train-config-invalid-yaml", [*TRAIN, "--config", "{tmp}/bad.yaml"], "not valid YAML",
         setup=write("{tmp}/bad.yaml", "seed: [1, 2\nmethod: {"), out=OUT),
    Case("train-config-binary", [*TRAIN, "--config", "{tmp}/bin.yaml"], "bin.yaml is not a UTF-8 YAML file",
         setup=write("{tmp}/bin.yaml", bytes(range(256)) * 4), out=OUT),
    Case("train-config-latin1", [*TRAIN, "--config", "{tmp}/l1.yaml"], "l1.yaml is not a UTF-8 YAML file",
         setup=write("{tmp}/l1.yaml", "seed: 0\nmethod: caf\u00e9\n".encode("latin-1")), out=OUT),
    Case("train-config-utf16", [*TRAIN, "--config", "{tmp}/u16.yaml"], "u16.yaml is not a UTF-8 YAML file",
         setup=write("{tmp}/u16.yaml", "seed: 0\n".encode("utf-16")), out=OUT),
    Case("train-config-nul", [*TRAIN, "--config", "{tmp}/nul.yaml"], "nul.yaml is not a UTF-8 YAML file",
         setup=write("{tmp}/nul.yaml", b"seed: 0\n\x00\x00\x00\n"), out=OUT),
    Case("train-config-directory", [*TRAIN, "--config", "{tmp}"], "is a directory, not a YAML file", out=OUT),
    Case("train-config-not-mapping", [*TRAIN, "--config", "{tmp}/list.yaml"], "mapping",
         setup=write("{tmp}/list.yaml", "- 1\n- 2\n"), out=OUT),
    Case("train-config-python-tag", [*TRAIN, "--config", "{tmp}/evil.yaml"], "not valid YAML",
         setup=write("{tmp}/evil.yaml", "seed: !!python/object/apply:os.system ['touch {tmp}/PAYLOAD_RAN']\n"), out=OUT),
    Case("train-out-is-a-file", ["train", "--dataset", TOY, "--steps", "2", *TINY, "--out", "{tmp}/afile"],
         "not a directory", setup=write("{tmp}/afile", "keep")),
    Case("train-truncated-result", ["train", "--dataset", TOY, "--steps", "4", *TINY, "--out", "{run}"], "result.json",
         needs_run=True, setup=lambda tmp, run: truncate(run / "result.json")),
    Case("train-empty-result", ["train", "--dataset", TOY, "--steps", "4", *TINY, "--out", "{run}"], "result.json",
         needs_run=True, setup=lambda tmp, run: (run / "result.json").write_bytes(b"")),
    # ---------------------------------------------------------------- sweep
    Case("sweep-ratio-word", ["sweep", "{tmp}/s.yaml", "--out", OUT], "ratio",
         setup=write("{tmp}/s.yaml", yaml.safe_dump({**SWEEP, "ratios": ["abc"]})), out=OUT),
    Case("sweep-lr-inf", ["sweep", "{tmp}/s.yaml", "--out", OUT], "hparams.lr must be a positive number",
         setup=write("{tmp}/s.yaml", yaml.safe_dump({**SWEEP, "methods": {"vanilla": {"hparams": {"lr": float("inf")}}}})),
         out=OUT),
    Case("sweep-missing-file", ["sweep", "{tmp}/none.yaml", "--out", OUT], "does not exist", out=OUT),
    Case("sweep-invalid-yaml", ["sweep", "{tmp}/s.yaml", "--out", OUT], "not valid YAML",
         setup=write("{tmp}/s.yaml", "ratios: [0.1\n"), out=OUT),
    Case("sweep-jobs-zero", ["sweep", "{tmp}/s.yaml", "--jobs", "0", "--out", OUT],
         "argument --jobs: must be a positive integer, got '0'", setup=write("{tmp}/s.yaml", yaml.safe_dump(SWEEP)),
         out=OUT),
    Case("sweep-jobs-word", ["sweep", "{tmp}/s.yaml", "--jobs", "two", "--out", OUT],
         "argument --jobs: must be a positive integer", setup=write("{tmp}/s.yaml", yaml.safe_dump(SWEEP)), out=OUT),
    Case("sweep-threads-zero", ["sweep", "{tmp}/s.yaml", "--threads", "0", "--out", OUT],
         "argument --threads: must be a positive integer or auto", setup=write("{tmp}/s.yaml", yaml.safe_dump(SWEEP)),
         out=OUT),
    Case("sweep-seeds-negative", ["sweep", "{tmp}/s.yaml", "--seeds=0,-1", "--out", OUT],
         "argument --seeds: must be comma-separated non-negative integers, got '0,-1'",
         setup=write("{tmp}/s.yaml", yaml.safe_dump(SWEEP)), out=OUT),
    Case("sweep-seeds-word", ["sweep", "{tmp}/s.yaml", "--seeds", "a,b", "--out", OUT],
         "argument --seeds: must be comma-separated non-negative integers",
         setup=write("{tmp}/s.yaml", yaml.safe_dump(SWEEP)), out=OUT),
    Case("sweep-seeds-empty", ["sweep", "{tmp}/s.yaml", "--seeds", ",", "--out", OUT], "argument --seeds",
         setup=write("{tmp}/s.yaml", yaml.safe_dump(SWEEP)), out=OUT),
    Case("sweep-ratios-range", ["sweep", "{tmp}/s.yaml", "--ratios", "0.05,2", "--out", OUT],
         "argument --ratios: must be comma-separated numbers in (0, 1), got '0.05,2'",
         setup=write("{tmp}/s.yaml", yaml.safe_dump(SWEEP)), out=OUT),
    Case("sweep-cpus-per-run-zero", ["sweep", "{tmp}/s.yaml", "--backend", "ray", "--cpus-per-run", "0", "--out", OUT],
         "argument --cpus-per-run: must be a positive number", setup=write("{tmp}/s.yaml", yaml.safe_dump(SWEEP)),
         out=OUT),
    Case("sweep-gpus-per-run-negative", ["sweep", "{tmp}/s.yaml", "--backend", "ray", "--gpus-per-run=-1", "--out", OUT],
         "argument --gpus-per-run: must be a non-negative number", setup=write("{tmp}/s.yaml", yaml.safe_dump(SWEEP)),
         out=OUT),
    Case("sweep-wait-lock-zero", ["sweep", "{tmp}/s.yaml", "--wait-lock=0", "--out", OUT],
         "argument --wait-lock: must be a positive number of seconds", setup=write("{tmp}/s.yaml", yaml.safe_dump(SWEEP)),
         out=OUT),
    Case("sweep-wait-lock-ray", ["sweep", "{tmp}/s.yaml", "--backend", "ray", "--wait-lock", "--out", OUT],
         "--wait-lock applies to --backend local", setup=write("{tmp}/s.yaml", yaml.safe_dump(SWEEP)), out=OUT),
    Case("sweep-binary-file", ["sweep", "{tmp}/s.yaml", "--out", OUT], "s.yaml is not a UTF-8 YAML file",
         setup=write("{tmp}/s.yaml", bytes(range(256)) * 4), out=OUT),
    Case("sweep-latin1-file", ["sweep", "{tmp}/s.yaml", "--out", OUT], "s.yaml is not a UTF-8 YAML file",
         setup=write("{tmp}/s.yaml", "name: caf\u00e9\n".encode("latin-1")), out=OUT),
    Case("sweep-nan-policy", ["sweep", "{tmp}/s.yaml", "--out", OUT], "train.nan_policy must be error or skip",
         setup=write("{tmp}/s.yaml", yaml.safe_dump({**SWEEP, "base": {"device": "cpu",
                                                                      "train": {"nan_policy": "zero"}}})), out=OUT),
    # ---------------------------------------------------------------- augment, methods
    *[Case(f"augment-{flag.strip('-')}-{val}", ["augment", "--generator", "{tmp}/g.pt", "--dataset", TOY, "--target", "t",
                                                "--out", OUT, flag, val], f"argument {flag}: must be", out=OUT)
      for flag, val in [("--n", "0"), ("--n-fit", "-5"), ("--n-heldout", "x"), ("--seed", "-1"),
                        ("--baseline-steps", "0"), ("--latent-dim", "0")]],
    Case("methods-info-ratio", ["methods", "info", "lff", "--dataset", "colored_mnist", "--ratio", "1.5"],
         "argument --ratio: must be a number in (0, 1)"),
    # ---------------------------------------------------------------- demo
    Case("demo-steps-zero", ["demo", "--steps", "0", "--out", OUT], "argument --steps: must be a positive integer",
         out=OUT),
    Case("demo-steps-word", ["demo", "--steps", "few", "--out", OUT], "argument --steps: must be a positive integer",
         out=OUT),
    Case("demo-seed-negative", ["demo", "--seed=-1", "--out", OUT], "argument --seed: must be a non-negative integer",
         out=OUT),
    # ---------------------------------------------------------------- collect
    Case("collect-metric-bogus", ["collect", "{run}", "--metric", "bogus", "--output", OUT], "bogus", needs_run=True, out=OUT),
    Case("collect-missing-dir", ["collect", "{tmp}/nothing", "--output", OUT], "nothing", out=OUT),
    Case("collect-truncated-result", ["collect", "{run}", "--output", OUT], "result.json", needs_run=True, out=OUT,
         setup=lambda tmp, run: truncate(run / "result.json")),
    Case("collect-empty-result", ["collect", "{run}", "--output", OUT], "result.json", needs_run=True, out=OUT,
         setup=lambda tmp, run: (run / "result.json").write_bytes(b"")),
    Case("collect-garbled-metrics", ["collect", "{run}", "--output", OUT], "corrupted at line", needs_run=True, out=OUT,
         setup=lambda tmp, run: (run / "metrics.jsonl").write_bytes(
             b"\n".join([b"{garbage"] + (run / "metrics.jsonl").read_bytes().split(b"\n")))),
    # ---------------------------------------------------------------- generative
    *[Case(f"gan-{flag.strip('-')}-{val}", ["generative", "train-gan", "--dataset", TOY, "--out", OUT, flag, val],
           f"argument {flag}: must be", out=OUT)
      for flag, val in [("--lr", "nan"), ("--lr", "-1"), ("--lr", "inf"), ("--ema-decay", "2"), ("--ema-decay", "1"),
                        ("--latent-dim", "0"), ("--width", "0"), ("--steps", "0"), ("--batch-size", "-4"),
                        ("--max-minutes", "nan")]],
    # ---------------------------------------------------------------- audit predictions
    Case("audit-pred-protected-is-target", ["audit", "predictions", "{tmp}/p.csv", "--target", "target", "--score",
                                            "score_1", "--protected", "target", "--out", OUT],
         "also a --target column", setup=csv_file("p.csv", PRED_ROWS), out=OUT),
    Case("audit-pred-ci", ["audit", "predictions", "{tmp}/p.csv", "--target", "target", "--score", "score_1",
                           "--protected", "bias", "--ci", "2", "--out", OUT], "--ci", setup=csv_file("p.csv", PRED_ROWS), out=OUT),
    Case("audit-pred-n-boot", ["audit", "predictions", "{tmp}/p.csv", "--target", "target", "--score", "score_1",
                               "--protected", "bias", "--n-boot", "-1", "--out", OUT], "--n-boot",
         setup=csv_file("p.csv", PRED_ROWS), out=OUT),
    Case("audit-pred-missing-file", ["audit", "predictions", "{tmp}/none.csv", "--target", "target", "--score", "s",
                                     "--protected", "bias", "--out", OUT], "none.csv", out=OUT),
    # ---------------------------------------------------------------- audit labels
    Case("audit-labels-string-id", ["audit", "labels", "{tmp}/l.csv", "--protected", "male", "--no-leakage", "--out", OUT],
         "not numeric: id", setup=csv_file("l.csv", LABEL_ROWS_ID), out=OUT),
    Case("audit-labels-constant", ["audit", "labels", "{tmp}/l.csv", "--protected", "male", "--label-column", "cls",
                                   "--no-leakage", "--out", OUT], "single value", setup=csv_file("l.csv", LABEL_ROWS_CONST), out=OUT),
    Case("audit-labels-protected-is-label", ["audit", "labels", "{tmp}/l.csv", "--protected", "male", "--label-column",
                                             "male", "--out", OUT], "same column",
         setup=csv_file("l.csv", LABEL_ROWS), out=OUT),
    Case("audit-labels-top-k", ["audit", "labels", "{tmp}/l.csv", "--protected", "male", "--top-k", "0", "--out", OUT],
         "--top-k", setup=csv_file("l.csv", LABEL_ROWS), out=OUT),
    Case("audit-labels-alpha", ["audit", "labels", "{tmp}/l.csv", "--protected", "male", "--alpha", "abc", "--out", OUT],
         "--alpha", setup=csv_file("l.csv", LABEL_ROWS), out=OUT),
    Case("audit-labels-constant-protected", ["audit", "labels", "{tmp}/l.csv", "--protected", "cls", "--epochs", "1",
                                             "--rounds", "2", "--out", OUT], "single value",
         setup=csv_file("l.csv", _rng_rows("cls,y", lambda r: f"a,{r.integers(0, 2)}")), out=OUT),
    # ---------------------------------------------------------------- audit model / predict on damaged run dirs
    Case("audit-model-garbled-model", ["audit", "model", "{run}", "--epochs", "1", "--rounds", "2", "--out", OUT],
         "is corrupted", needs_run=True, out=OUT, setup=lambda tmp, run: each_model(lambda p: garble(p, size=256))(tmp, run)),
    Case("audit-model-missing-run", ["audit", "model", "{tmp}/none", "--out", OUT], "not found", out=OUT),
    Case("predict-garbled-model", ["predict", "{run}", "--out", OUT + ".csv"], "SHA-256 mismatch", needs_run=True,
         out=OUT + ".csv", setup=lambda tmp, run: each_model(lambda p: garble(p, size=256))(tmp, run)),
    Case("predict-truncated-model", ["predict", "{run}", "--out", OUT + ".csv"], "is corrupted", needs_run=True,
         out=OUT + ".csv", setup=lambda tmp, run: each_model(truncate)(tmp, run)),
    Case("predict-truncated-model-no-sidecar", ["predict", "{run}", "--out", OUT + ".csv"], "cannot be loaded",
         needs_run=True, out=OUT + ".csv",
         setup=lambda tmp, run: each_model(lambda p: (truncate(p), sidecar_path(p).unlink()))(tmp, run)),
    Case("predict-payload-model", ["predict", "{run}", "--out", OUT + ".csv"], "refused", needs_run=True,
         out=OUT + ".csv", setup=payload),
    Case("predict-invalid-config", ["predict", "{run}", "--out", OUT + ".csv"], "config.yaml", needs_run=True,
         out=OUT + ".csv", setup=write("{run}/config.yaml", "seed: [1\n")),
    Case("predict-binary-config", ["predict", "{run}", "--out", OUT + ".csv"], "config.yaml", needs_run=True,
         out=OUT + ".csv", setup=write("{run}/config.yaml", bytes(range(128, 256)))),
    Case("predict-yaml-payload-config", ["predict", "{run}", "--out", OUT + ".csv"], "config.yaml", needs_run=True,
         out=OUT + ".csv", setup=write("{run}/config.yaml", "x: !!python/object/apply:os.system ['touch {tmp}/PAYLOAD_RAN']\n")),
    Case("predict-truncated-result", ["predict", "{run}", "--out", OUT + ".csv"], "result.json", needs_run=True,
         out=OUT + ".csv", setup=lambda tmp, run: truncate(run / "result.json")),
    Case("predict-not-csv", ["predict", "{run}", "--out", OUT + ".txt"], "must be a .csv", needs_run=True, out=OUT + ".txt"),
    Case("predict-missing-run", ["predict", "{tmp}/none", "--out", OUT + ".csv"], "not a debiaskit run directory",
         out=OUT + ".csv"),
    Case("predict-unknown-selection", ["predict", "{run}", "--selection", "nope", "--out", OUT + ".csv"], "nope",
         needs_run=True, out=OUT + ".csv"),
]


def _fill(s: str, tmp: Path, run: Path | None) -> str:
    return s.replace("{tmp}", str(tmp)).replace("{run}", str(run) if run else "{run}")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gives_one_error_line(case: Case, tmp_path, capsys, monkeypatch, request):
    run = request.getfixturevalue("run_copy") if case.needs_run else None
    for k, v in case.env.items():
        monkeypatch.setenv(k, _fill(v, tmp_path, run))
    if case.setup is not None:
        case.setup(tmp_path, run)
    before = sorted(p.name for p in tmp_path.iterdir())
    argv = [_fill(a, tmp_path, run) for a in case.argv]
    rc, out, err = run_cli(argv, capsys)
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert rc != 0, f"exit 0 for bad input; stdout: {out[-300:]}"
    assert len(errors) == 1, err
    assert case.needle in errors[0], errors[0]
    assert "Traceback" not in err
    if case.out is not None:
        assert not Path(_fill(case.out, tmp_path, run)).exists(), "something was written to the --out path"
    assert not (tmp_path / "PAYLOAD_RAN").exists(), "a planted payload ran"
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no stray files next to the inputs


# ------------------------------------------------------------------------------------- OS errors
@pytest.mark.parametrize("code, needle", [
    (errno.ENOSPC, "no space left on the device"),
    (errno.EROFS, "read-only file system"),
    (errno.EACCES, "permission denied"),
    (errno.EDQUOT, "disk quota exceeded"),
])
def test_write_failures_are_one_line_and_leave_no_temp_file(code, needle, tmp_path, capsys, monkeypatch):
    """A full disk / read-only FS / permission problem during an atomic write (simulated at ``fsync``)."""
    import debiaskit.io as dio

    real = os.fsync

    def failing(fd: int) -> None:
        if os.path.isdir(f"/proc/self/fd/{fd}"):  # the directory fsync after a rename
            return real(fd)
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(dio.os, "fsync", failing)
    out = tmp_path / "table.md"
    (tmp_path / "l.csv").write_text("\n".join(LABEL_ROWS) + "\n")
    rc, _, err = run_cli(["audit", "labels", str(tmp_path / "l.csv"), "--protected", "male", "--no-leakage",
                          "--out", str(out)], capsys)
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert rc == 2 and len(errors) == 1 and needle in errors[0], err
    assert not [p for p in tmp_path.rglob("*.tmp")], "a temp file was left behind"


def test_out_that_is_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "l.csv").write_text("\n".join(LABEL_ROWS) + "\n")
    (tmp_path / "afile").write_text("keep")
    rc, _, err = run_cli(["audit", "labels", str(tmp_path / "l.csv"), "--protected", "male", "--no-leakage",
                          "--out", str(tmp_path / "afile")], capsys)
    assert rc == 2 and err.count("error:") == 1 and "Traceback" not in err
    assert (tmp_path / "afile").read_text() == "keep"


# ------------------------------------------------------------------------------------- the real process
def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    e = {**os.environ, "DEBIASKIT_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "debiaskit.cli", *args], capture_output=True, text=True, env=e,
                          timeout=120)


@pytest.mark.slow
def test_console_shows_one_line_and_debug_shows_the_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(bytes(range(256)))
    p = _cli("train", "--config", str(bad), "--dataset", "colored_mnist", "--out", str(tmp_path / "o"))
    assert p.returncode == 2 and p.stderr.count("error:") == 1 and "Traceback" not in p.stderr
    p = _cli("--debug", "train", "--config", str(bad), "--dataset", "colored_mnist", "--out", str(tmp_path / "o"))
    assert p.returncode != 0 and "Traceback" in p.stderr
    assert not (tmp_path / "o").exists()


def test_warnings_are_printed_as_one_line():
    from debiaskit.cli import _format_warning

    text = _format_warning(UserWarning("first line\n  second line"), UserWarning, "x.py", 3)
    assert text == "warning: first line second line\n"


def _show_all_messages(capsys, tmp_path_factory, trained):  # pragma: no cover - debugging helper
    import shutil

    for case in CASES:
        tmp = tmp_path_factory.mktemp(case.id)
        run = None
        if case.needs_run:
            run = tmp / "runcopy"
            shutil.copytree(trained, run)
        if case.setup:
            case.setup(tmp, run)
        rc, out, err = run_cli([_fill(a, tmp, run) for a in case.argv], capsys)
        print(f"{case.id:40s} rc={rc} {err.strip().splitlines()[-1] if err.strip() else ''}", file=sys.__stdout__)


def test_zz_show(capsys, tmp_path_factory, trained):
    if os.environ.get("SHOW_MESSAGES"):
        _show_all_messages(capsys, tmp_path_factory, trained)
