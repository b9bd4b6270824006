"""Helpers shared by the reproduction-table benchmarks (cmnist_table.py, cifar10c_table.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def parse_list(text: str | None, kind: type) -> list | None:
    """``"0.01,0.05"`` → ``[0.01, 0.05]``; ``None`` stays ``None`` (= the whole grid)."""
    if text is None:
        return None
    return [kind(t) for t in text.split(",") if t.strip()]


def cell_status(run_dir: Path) -> dict[str, Any]:
    """done / in progress (last evaluated step) / started / pending, from a run directory's files."""
    if (run_dir / "result.json").exists():
        r = json.loads((run_dir / "result.json").read_text())
        return {"status": "done", "wall_time_s": r.get("wall_time_s"), "steps": r.get("steps"),
                "steps_per_s": r.get("steps_per_s")}
    last = None
    mfile = run_dir / "metrics.jsonl"
    if mfile.exists():
        for line in mfile.read_text().splitlines():
            if line.strip():
                try:
                    last = json.loads(line)
                except json.JSONDecodeError:
                    pass
    if last is None:
        return {"status": "pending" if not run_dir.exists() else "started"}
    return {"status": "in progress", "last_eval_step": last.get("step"), "wall_time_s": last.get("wall_time_s"),
            "steps_per_s": last.get("steps_per_s")}


def fmt_mean_std(mean: float | None, std: float | None, n: int | None = None) -> str:
    """``mean ± std`` with ``(n=…)`` when not 3 seeds; ``–`` for a missing cell."""
    if mean is None:
        return "–"
    s = f"{mean:.2f}" + (f" ± {std:.2f}" if std is not None and n != 1 else "")
    return s + (f" (n={n})" if n is not None and n != 3 else "")
