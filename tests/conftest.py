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


# one intra-op thread: tests use tiny tensors, and extra threads only thrash a busy 2-core machine
torch.set_num_threads(1)
