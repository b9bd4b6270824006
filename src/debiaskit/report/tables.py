"""Plain-text / markdown tables for run results."""

from __future__ import annotations

import math
from typing import Any

from debiaskit.io import md_cell

HEADLINE = ("accuracy", "unbiased_accuracy", "aligned_accuracy", "conflicting_accuracy", "worst_group_accuracy", "mAP")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{100 * v:.2f}"
    return str(v)


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table; every cell is escaped (``|``, backslashes, line breaks) by :func:`debiaskit.io.md_cell`."""
    lines = ["| " + " | ".join(md_cell(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(md_cell(_fmt(c)) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def format_run_summary(result: dict[str, Any]) -> str:
    """Test-split metrics (in %) under every selection rule of a run's ``result.json``."""
    sel = result.get("selection", {})
    cols = [c for c in HEADLINE if any(c in r.get("metrics", {}).get("test", {}) for r in sel.values())]
    rows = []
    for name, r in sel.items():
        test = r.get("metrics", {}).get("test", {})
        label = f"{name} (step {r['step']})"
        if r.get("label", name) != name:  # oracle rules carry their label
            label += f" [{r['label']}]"
        rows.append([label, *[test.get(c, math.nan) for c in cols]])
    ratio = (result.get("dataset_options") or {}).get("ratio")
    at = f" ratio {ratio:g}" if isinstance(ratio, (int, float)) and not isinstance(ratio, bool) else ""
    head = (
        f"{result['method']} on {result['dataset']}{at} "
        f"seed {result['seed']}: test metrics (%) by model-selection rule; reported: {result['reported_selection']}"
    )
    return head + "\n" + markdown_table(["selection", *cols], rows)
