"""Fixtures of the reliability tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_strict_data(monkeypatch):
    """Each test starts without DEBIASKIT_STRICT_DATA, and one that sets it (a sweep does) cannot leak it."""
    monkeypatch.delenv("DEBIASKIT_STRICT_DATA", raising=False)
    yield
