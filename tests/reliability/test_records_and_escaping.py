"""metrics.jsonl readers (torn last line vs corrupted middle line) and CSV / Markdown escaping."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest

from debiaskit.errors import DebiaskitError
from debiaskit.io import append_jsonl, csv_safe, md_cell, read_jsonl


def six(path):
    for s in range(1, 7):
        append_jsonl(path, {"step": 100 * s, "split": "val", "accuracy": s / 10})


def test_round_trip(tmp_path):
    p = tmp_path / "metrics.jsonl"
    six(p)
    assert [r["step"] for r in read_jsonl(p)] == [100, 200, 300, 400, 500, 600]
    assert read_jsonl(tmp_path / "missing.jsonl") == []
    (tmp_path / "empty.jsonl").write_bytes(b"")
    assert read_jsonl(tmp_path / "empty.jsonl") == []


@pytest.mark.parametrize("tail", [b'{"step": 700, "spl', b'{"step": 700}\x00\x00', b"\x00\x00\x00\x00", b'{"step": 7\xe2\x82',
                                  b'{"step": 700, "split"\n'])
def test_torn_last_line_is_dropped_with_a_warning(tmp_path, tail):
    p = tmp_path / "metrics.jsonl"
    six(p)
    with open(p, "ab") as f:
        f.write(tail)
    seen = []
    rows = read_jsonl(p, warn=seen.append)
    assert len(rows) == 6 and len(seen) == 1 and "line 7" in seen[0]


def test_complete_last_line_without_newline_is_kept(tmp_path):
    p = tmp_path / "metrics.jsonl"
    p.write_text('{"step": 1}\n{"step": 2}')
    assert [r["step"] for r in read_jsonl(p)] == [1, 2]


@pytest.mark.parametrize("bad", ['{"step": 300, "accur', "garbage", "[1, 2]", '{"step": \xff}'])
def test_corrupted_middle_line_is_an_error_naming_file_and_line(tmp_path, bad):
    p = tmp_path / "metrics.jsonl"
    six(p)
    lines = p.read_bytes().split(b"\n")
    lines[2] = bad.encode("latin-1")
    p.write_bytes(b"\n".join(lines))
    before = p.read_bytes()
    with pytest.raises(DebiaskitError) as ei:
        read_jsonl(p)
    assert f"{p} is corrupted at line 3 of 6" in str(ei.value)
    assert p.read_bytes() == before  # nothing rewritten


def test_append_after_a_torn_tail_does_not_fuse_lines(tmp_path):
    p = tmp_path / "metrics.jsonl"
    six(p)
    with open(p, "ab") as f:
        f.write(b'{"step": 700, "acc')  # killed mid-append
    append_jsonl(p, {"step": 700, "accuracy": 0.7})
    rows = read_jsonl(p, warn=lambda m: pytest.fail(m))
    assert [r["step"] for r in rows] == [100, 200, 300, 400, 500, 600, 700]
    q = tmp_path / "only_fragment.jsonl"
    q.write_bytes(b'{"ste')
    append_jsonl(q, {"step": 1})
    assert q.read_text() == '{"step": 1}\n'


@pytest.mark.parametrize("cell, expected", [
    ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
    ("+1+2", "'+1+2"),
    ("-1+2", "'-1+2"),
    ("@SUM(A1)", "'@SUM(A1)"),
    ("\tx", "'\tx"),
    ("\r=1", "'\r=1"),
    ("-0.25", "-0.25"),  # a plain number is not a formula
    ("+1e-3", "+1e-3"),
    ("lff", "lff"),
    ("", ""),
    (-3, -3),
    (0.5, 0.5),
    (None, None),
])
def test_csv_safe_follows_the_owasp_rule(cell, expected):
    assert csv_safe(cell) == expected


def test_csv_safe_cells_survive_a_csv_round_trip():
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([csv_safe(c) for c in ["=HYPERLINK(\"http://x\")", "a,b", "-2"]])
    assert next(csv.reader(io.StringIO(buf.getvalue()))) == ["'=HYPERLINK(\"http://x\")", "a,b", "-2"]


def split_gfm_row(row: str) -> list[str]:
    """Split a GitHub-flavoured Markdown table row on unescaped pipes (a backslash escapes the next char)."""
    cells, cur, i = [], "", 0
    row = row.strip()
    assert row.startswith("|") and row.endswith("|")
    body = row[1:-1]
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            cur += body[i: i + 2]
            i += 2
            continue
        if ch == "|":
            cells.append(cur)
            cur = ""
        else:
            cur += ch
        i += 1
    cells.append(cur)
    return [c.strip() for c in cells]


@pytest.mark.parametrize("text", ["a|b", "a\\|b", "ends with \\", "two\nlines", "cr\r\nlf", "|||", "plain"])
def test_md_cell_keeps_one_cell_on_one_line(text):
    row = "| " + " | ".join([md_cell(text), "x"]) + " |"
    assert "\n" not in row and "\r" not in row
    cells = split_gfm_row(row)
    assert len(cells) == 2 and cells[1] == "x"
    # un-escaping gives the text back (line breaks as <br>)
    back = re.sub(r"\\(.)", r"\1", cells[0])
    assert back == text.replace("\r\n", "<br>").replace("\n", "<br>").replace("\r", "<br>").strip()


def test_markdown_table_of_run_summaries_escapes_cells():
    from debiaskit.report.tables import markdown_table

    text = markdown_table(["rule", "acc"], [["best|val\nx", 0.5]])
    rows = text.splitlines()
    assert len(rows) == 3 and split_gfm_row(rows[2]) == ["best\\|val<br>x", "50.00"]


def test_audit_report_tables_survive_group_values_with_pipes(tmp_path, capsys):
    """A protected group called ``x|y`` (or holding a line break) must not break report.md's tables."""
    import numpy as np
    import pandas as pd

    from debiaskit.cli import main

    rng = np.random.default_rng(0)
    n = 200
    df = pd.DataFrame({"target": rng.integers(0, 2, n), "score_1": rng.random(n),
                       "bias": np.where(rng.random(n) < 0.5, "x|y", "multi\nline")})
    f = tmp_path / "p.csv"
    df.to_csv(f, index=False)
    out = tmp_path / "audit"
    assert main(["audit", "predictions", str(f), "--target", "target", "--score", "score_1", "--protected", "bias",
                 "--n-boot", "0", "--no-plots", "--out", str(out)]) == 0
    capsys.readouterr()
    lines = (out / "report.md").read_text().splitlines()
    tables, cur = [], []
    for ln in lines + [""]:
        if ln.startswith("|"):
            cur.append(ln)
        elif cur:
            tables.append(cur)
            cur = []
    assert tables
    for t in tables:
        widths = {len(split_gfm_row(r)) for r in t}
        assert len(widths) == 1, t
    assert any("x\\|y" in r for t in tables for r in t)


def test_collect_csv_and_markdown_escape_hostile_names():
    from debiaskit.experiments.collect import format_table

    cell = {"mean": -0.5, "std": 0.1, "n": 2}
    table = {"metric": "unbiased_accuracy", "split": "test", "weights": "raw", "selection": ["last"],
             "rows": [{"dataset": "=cmd|' /C calc'!A0", "ratio": 0.01, "label": "@SUM(1+1)\nx", "n_runs": 2,
                       "rules": {"last": {"unbiased_accuracy": cell, "labels_consumed": []}}}]}
    rows = list(csv.reader(io.StringIO(format_table(table, fmt="csv"))))
    assert rows[1][0] == "'=cmd|' /C calc'!A0" and rows[1][2] == "'@SUM(1+1)\nx"
    assert rows[1][7] == "-0.500000"  # a negative number stays a number
    md = [ln for ln in format_table(table, fmt="md").splitlines() if ln.startswith("| =")]
    assert len(md) == 1 and len(split_gfm_row(md[0])) == 5
