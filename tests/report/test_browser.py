"""The reports load in headless Chromium: a screenshot of the expected size that is not blank."""

from __future__ import annotations

import numpy as np
import pytest

from debiaskit.report.html import write_report
from report.htmlcheck import screenshot

pytestmark = pytest.mark.slow  # one browser start (~2-3 s) per page


def _check_screenshot(png, size=(1200, 900)) -> None:
    from PIL import Image

    im = Image.open(png).convert("RGB")
    assert im.size == size
    a = np.asarray(im, dtype=np.int16)
    # not blank: the header bar (dark), body text and a figure give many colours and a wide spread
    assert len(np.unique(a.reshape(-1, 3), axis=0)) > 50
    assert a.std() > 20
    top = a[:40].mean(axis=(0, 1))
    assert (top < 100).all(), f"the dark header bar is missing (mean colour {top})"
    white = (a > 245).all(-1).mean()
    assert 0.3 < white < 0.98, f"{100 * white:.0f} % of the page is white"


@pytest.mark.parametrize("which", ["run", "sweep", "audit", "labels", "model"])
def test_report_renders_in_headless_chromium(which, browser, request, tmp_path):
    if which in ("labels", "model"):  # the audit commands' own report.html
        html = request.getfixturevalue({"labels": "label_audit", "model": "model_audit"}[which]) / "report.html"
    else:
        path = {"run": request.getfixturevalue("tiny_run"), "sweep": request.getfixturevalue("tiny_sweep")[0] / "sw",
                "audit": request.getfixturevalue("tiny_audit")}[which]
        html = write_report(path, tmp_path / f"{which}.html")
    png = tmp_path / f"{which}.png"
    screenshot(browser, html, png)
    _check_screenshot(png)
