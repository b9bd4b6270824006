"""Fixtures for the report tests: a tiny trained sweep, a tiny audit of each kind, an HTML checker, a browser."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest

from report.htmlcheck import find_browser
from toydata import register_toy

TOY = register_toy()
HP = {"model": "mlp", "model_kwargs": {"hidden": [8]}, "steps": 6, "batch_size": 64}
SPEC = {
    "name": "rep",
    "datasets": {TOY: {}},
    "ratios": [0.05],
    "methods": {"vanilla": {"hparams": HP}, "lff": {"hparams": HP}},
    "seeds": [0, 1],
    "base": {"device": "cpu", "train": {"eval_every": 2, "checkpoint_every": 6, "progress": False,
                                        "selection": ["last", "best_val_accuracy", "oracle_test"]}},
}


@pytest.fixture(scope="session")
def tiny_sweep(tmp_path_factory):
    """A finished 4-run sweep (vanilla and LfF, 2 seeds, 6 steps on the planted-bias toy data) and its records."""
    from debiaskit.experiments.sweep import expand_sweep, run_sweep

    root = tmp_path_factory.mktemp("rep")
    runs = expand_sweep(SPEC, root / "sw", records=root / "records")
    manifest = run_sweep(runs, root / "sw", threads=1, echo=lambda s: None)
    assert manifest["n_failed"] == 0
    return root, runs


@pytest.fixture(scope="session")
def tiny_run(tiny_sweep):
    """One finished run directory of the tiny sweep."""
    _, runs = tiny_sweep
    return next(r.run_dir for r in runs if r.key.startswith("vanilla") and r.key.endswith("s0"))


@pytest.fixture(scope="session")
def tiny_audit(tmp_path_factory):
    """`audit predictions` output for 6 named groups (binary target, scores) with 30 bootstrap resamples."""
    from debiaskit.cli import main

    root = tmp_path_factory.mktemp("audit")
    rng = np.random.default_rng(0)
    n = 600
    g = rng.integers(0, 6, n)
    names = np.array(["north", "south", "east", "west", "centre", "islands"])
    y = (rng.random(n) < 0.3 + 0.08 * g).astype(int)
    s = np.clip(0.35 * y + 0.05 * g + rng.normal(0.25, 0.12, n), 0, 1)
    pd.DataFrame({"target": y, "score": s, "region": names[g]}).to_csv(root / "preds.csv", index=False)
    out = root / "preds_audit"
    assert main(["audit", "predictions", str(root / "preds.csv"), "--target", "target", "--score", "score",
                 "--protected", "region", "--n-boot", "30", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def label_audit(tmp_path_factory):
    """`audit labels` output (bias card and α-balanced subsets, no attacker) for a small multi-label CSV."""
    from debiaskit.cli import main

    root = tmp_path_factory.mktemp("labels")
    rng = np.random.default_rng(1)
    prot = rng.integers(0, 2, 800)
    lab = (rng.random((800, 5)) < 0.2 + 0.5 * prot[:, None] * (np.arange(5) % 2 == 0)).astype(int)
    df = pd.DataFrame({f"object_{j}": lab[:, j] for j in range(5)})
    df["gender"] = np.where(prot, "woman", "man")
    df.to_csv(root / "labels.csv", index=False)
    out = root / "labels_audit"
    assert main(["audit", "labels", str(root / "labels.csv"), "--protected", "gender", "--no-leakage",
                 "--alpha", "2", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def model_audit(tiny_run, tmp_path_factory):
    """`audit model` output (λ_M, λ_D(F1) curve) of the tiny run, 1 epoch x 2 rounds."""
    from debiaskit.cli import main

    out = tmp_path_factory.mktemp("model") / "leak"
    assert main(["audit", "model", str(tiny_run), "--epochs", "1", "--rounds", "2", "--points", "3",
                 "--max-per-group", "40", "--out", str(out), "--threads", "1"]) == 0
    return out


@pytest.fixture(scope="session")
def browser():
    path = find_browser()
    if path is None:
        pytest.skip("no Chromium browser installed (.ci/run installs the Debian `chromium` package when it can; "
                    "set DEBIASKIT_BROWSER to use another one)")
    return path
