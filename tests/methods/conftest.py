"""Fixtures of the method tests: bias-supervised planted-bias data (``toy``) and a tiny run helper (``run_method``)."""

from __future__ import annotations

import pytest

from toydata import pixel_splits, run_tiny


@pytest.fixture
def toy():
    """``toy(n, corr=..., num_bias=..., multilabel=..., side=...)`` → DatasetSplits of planted-bias images."""
    return pixel_splits


@pytest.fixture
def run_method():
    """``run_method(method, out_dir, splits, steps=..., **hparams)`` → RunResult (tiny mlp, CPU)."""
    return run_tiny
