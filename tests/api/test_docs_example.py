"""docs/api.md's "Debias your own model in 20 lines" runs as written and shows what it says it shows."""

from __future__ import annotations

import json
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def _example() -> str:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Debias your own model in 20 lines", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1
    return blocks[0]


def test_example_is_about_twenty_lines():
    code = [ln for ln in _example().splitlines() if ln.strip()]
    assert len(code) <= 26


def test_example_runs_and_lff_beats_vanilla_on_conflicting_images(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(_example(), str(DOC), "exec"), {"__name__": "docs_api_example"})
    printed = capsys.readouterr().out
    assert "vanilla accuracy on bias-conflicting test images:" in printed
    res = {m: json.loads((tmp_path / "runs" / m / "result.json").read_text()) for m in ("vanilla", "lff")}
    van, lff = (res[m]["final"]["test"]["conflicting_accuracy"] for m in ("vanilla", "lff"))
    assert van < 0.2  # the colour shortcut
    assert lff > van + 0.5
    assert res["lff"]["labels_consumed"] == ["target"]
