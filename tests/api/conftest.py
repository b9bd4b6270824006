"""Fixtures of the Python-API / plugin tests (issue 17).

The fixture plugin ``tests/fixtures/plugin_pkg`` is importable in this process (its ``src`` is put on
``sys.path``: the test networks and data live there) but its entry points are *not* visible here, so the other
tests' registries stay as they are. :func:`plugin_site` pip-installs it into a temporary folder once per session;
subprocesses that put that folder on ``PYTHONPATH`` see the plugin exactly as an installed distribution.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PLUGIN_SRC = Path(__file__).resolve().parents[1] / "fixtures" / "plugin_pkg"
REPO = Path(__file__).resolve().parents[2]
if str(PLUGIN_SRC / "src") not in sys.path:
    sys.path.insert(0, str(PLUGIN_SRC / "src"))


@pytest.fixture(scope="session")
def plugin_site(tmp_path_factory) -> Path:
    """A folder holding the installed fixture plugin (package + dist-info with its entry points)."""
    work = tmp_path_factory.mktemp("plugin")
    src = work / "src_copy"
    shutil.copytree(PLUGIN_SRC, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    site = work / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-compile",
         "--disable-pip-version-check", "--target", str(site), str(src)],
        check=True, capture_output=True, text=True, timeout=300,
    )
    assert (site / "debiaskit_plugin_fixture").is_dir()
    assert list(site.glob("debiaskit_plugin_fixture-*.dist-info/entry_points.txt"))
    yield site
    shutil.rmtree(work, ignore_errors=True)  # "uninstall": the package never touched the shared venv


def run_cli(*args: str, cwd: Path | None = None, pythonpath: Path | None = None, env: dict | None = None):
    """Run ``debiaskit ARGS`` in a fresh Python process; returns the CompletedProcess (text)."""
    e = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DEBIASKIT_DATA")}
    e.update({"DEBIASKIT_NUM_THREADS": "1", "DEBIASKIT_NO_DOWNLOAD": "1"})
    if pythonpath is not None:
        e["PYTHONPATH"] = str(pythonpath)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "debiaskit.cli", *args], cwd=cwd or REPO, env=e,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def cli():
    return run_cli
