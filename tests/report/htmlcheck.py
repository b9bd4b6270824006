"""HTML checks for the report tests: a self-contained page (embedded, decodable images; no external URL) and
a headless-Chromium screenshot."""

from __future__ import annotations

import base64
import binascii
import io
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

# ------------------------------------------------------------------------------------------ HTML checks
@dataclass
class Page:
    """What :class:`_Collector` found in an HTML page."""

    images: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)  # every src / href / action / poster value
    tables: list[list[str]] = field(default_factory=list)  # header cells of each table
    tags: set[str] = field(default_factory=set)
    text: str = ""


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self._in_th = False
        self._chunks: list[str] = []

    def handle_starttag(self, tag, attrs):  # noqa: ANN001 - HTMLParser API
        self.page.tags.add(tag)
        a = dict(attrs)
        if tag == "img":
            self.page.images.append(a.get("src") or "")
        for k in ("src", "href", "action", "poster", "srcset", "data"):
            if a.get(k):
                self.page.urls.append(a[k])
        if tag == "table":
            self.page.tables.append([])
        if tag == "th":
            self._in_th = True

    def handle_endtag(self, tag):  # noqa: ANN001
        if tag == "th":
            self._in_th = False

    def handle_data(self, data):  # noqa: ANN001
        self._chunks.append(data)
        if self._in_th and self.page.tables:
            self.page.tables[-1].append(data.strip())


def check_page(html: str) -> Page:
    """Parse a report and assert it is self-contained: every image a decodable data URI, no external URL."""
    from PIL import Image

    c = _Collector()
    c.feed(html)
    c.close()
    page = c.page
    page.text = " ".join(" ".join(c._chunks).split())
    assert page.images, "the report has no figure"
    for src in page.images:
        m = re.fullmatch(r"data:image/(png|svg\+xml);base64,([A-Za-z0-9+/=]+)", src)
        assert m, f"image is not an embedded data URI: {src[:60]}"
        try:
            raw = base64.b64decode(m.group(2), validate=True)
        except binascii.Error as e:  # pragma: no cover - a failure message
            raise AssertionError(f"image data is not valid base64: {e}") from None
        if m.group(1) == "png":
            im = Image.open(io.BytesIO(raw))
            im.load()  # decodes every pixel
            assert im.size[0] > 50 and im.size[1] > 50
    for u in page.urls:
        assert u.startswith(("data:", "#")), f"external reference in the report: {u[:80]}"
    low = html.lower()
    for bad in ("<script", "<link", "@import", "url(", "<iframe", "<object", "<embed"):
        assert bad not in low, f"report contains {bad!r}"
    assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", re.sub(r"data:[^\"']+", "", low)), \
        "report mentions a network location"
    return page


_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser() -> str | None:
    """A headless-capable Chromium on PATH (``$DEBIASKIT_BROWSER`` first), or None."""
    env = os.environ.get("DEBIASKIT_BROWSER")
    for name in ((env,) if env else ()) + _BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None



def screenshot(browser: str, html_file: Path, png: Path, *, size: tuple[int, int] = (1200, 900)) -> None:
    """Load ``html_file`` in headless Chromium (no network services, a throw-away profile) and screenshot it."""
    profile = png.parent / f".profile-{png.stem}"
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
           f"--user-data-dir={profile}", f"--screenshot={png}", f"--window-size={size[0]},{size[1]}",
           html_file.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert png.is_file(), f"the browser wrote no screenshot (exit {proc.returncode}): {proc.stderr[-500:]}"
