"""Run records: a finished run as one small, self-contained JSON file (no weights).

A record holds the run's ``result.json`` and its evaluation rows (``metrics.jsonl``, without timing fields
and with the per-cell count matrices kept only for the test split at the steps some registered selection rule
picks), so every
selection rule can be applied to it later and ``debiaskit collect`` builds the same tables from records as
from run directories. Records are what a reproduction grid commits to git (``benchmarks/results/records/``)
so that it survives the machine: ``debiaskit sweep --records DIR`` skips every cell whose record exists with
the same run key, and exports a record as each run finishes.

Format (``schema: debiaskit.record/1``)::

    {"schema": "debiaskit.record/1", "run_key": "...", "name": "<run directory name>",
     "result": {...result.json...}, "evaluations": [{"step": 500, "split": "val", "accuracy": ...}, ...]}
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from debiaskit.errors import DebiaskitError
from debiaskit.io import read_jsonl, write_json
from debiaskit.runkey import run_name
from debiaskit.train.selection import list_selection_rules, select

__all__ = [
    "RECORD_SCHEMA",
    "RunData",
    "export_record",
    "find_record",
    "load_record",
    "load_runs",
    "make_record",
    "record_path",
]

RECORD_SCHEMA = "debiaskit.record/1"
_TIMING = ("wall_time_s", "steps_per_s", "peak_memory_mb")
_HEAVY = ("group_count", "group_correct")


@dataclass
class RunData:
    """One finished run, from a run directory or a record: its result and its evaluation rows."""

    result: dict[str, Any]
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    source: str = ""

    @property
    def run_key(self) -> str | None:
        return self.result.get("run_key")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DebiaskitError(f"cannot read {path}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None


def _slim(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop timing fields; keep the per-cell count matrices only on the test split at steps some rule picks."""
    keep_steps: set[int] = set()
    for weights in {r.get("weights", "raw") for r in rows}:
        for name in list_selection_rules():
            sel = select(name, rows, weights=weights)
            if sel.step is not None:
                keep_steps.add(sel.step)
    out = []
    logged: set[int] = set()
    for r in rows:
        r = {k: v for k, v in r.items() if k not in _TIMING}
        step = int(r["step"])
        if step not in keep_steps or r.get("split") != "test":  # per-cell matrices: test split, selected steps
            for k in _HEAVY:
                r.pop(k, None)
        if step in logged:  # the training logs are the same for every split of a step: keep them once
            r.pop("train_logs", None)
        elif "train_logs" in r:
            logged.add(step)
        out.append(r)
    return out


def make_record(run_dir: str | Path) -> dict[str, Any]:
    """The record of a finished run directory."""
    run_dir = Path(run_dir)
    result_file = run_dir / "result.json"
    if not result_file.is_file():
        raise DebiaskitError(f"{run_dir} has not finished (no result.json): no record to export")
    result = _read_json(result_file)
    rows = read_jsonl(run_dir / "metrics.jsonl")
    key = result.get("run_key")
    if not key:
        raise DebiaskitError(f"{result_file} has no run_key (written by debiaskit < 0.2); re-run it to export a record")
    name = run_name(result["config"]) if isinstance(result.get("config"), dict) else f"{run_dir.name}-{key}"
    return {"schema": RECORD_SCHEMA, "run_key": key, "name": name, "result": result, "evaluations": _slim(rows)}


def record_path(records_dir: str | Path, name: str) -> Path:
    return Path(records_dir) / f"{name}.json"


def export_record(run_dir: str | Path, records_dir: str | Path) -> Path:
    """Write the record of ``run_dir`` to ``records_dir/<run name>.json`` (atomically)."""
    rec = make_record(run_dir)
    return write_json(record_path(records_dir, rec["name"]), rec)


def load_record(path: str | Path) -> RunData:
    path = Path(path)
    rec = _read_json(path)
    if not isinstance(rec, dict) or rec.get("schema") != RECORD_SCHEMA:
        raise DebiaskitError(f"{path} is not a debiaskit run record (schema {RECORD_SCHEMA})")
    if not isinstance(rec.get("result"), dict) or not isinstance(rec.get("evaluations"), list):
        raise DebiaskitError(f"{path}: a record needs 'result' and 'evaluations'")
    return RunData(rec["result"], rec["evaluations"], str(path))


def find_record(records_dir: str | Path, key: str) -> Path | None:
    """The record of run key ``key`` in ``records_dir`` (file names end with the key), if any."""
    d = Path(records_dir)
    if not d.is_dir():
        return None
    for p in sorted(d.glob(f"*-{key}.json")):
        try:
            if load_record(p).run_key == key:
                return p
        except DebiaskitError:
            continue
    return None


def _is_record_file(p: Path) -> bool:
    if p.suffix != ".json" or p.name in ("result.json", "sweep.json"):
        return False
    try:
        with p.open("rb") as f:
            head = f.read(64)
    except OSError:
        return False
    return b'"schema"' in head and RECORD_SCHEMA.encode() in head


def load_runs(paths: Iterable[str | Path]) -> list[RunData]:
    """Every finished run below ``paths``: run directories (``result.json`` + ``metrics.jsonl``) and record files.

    A run present both as a directory and as a record (same run key) is counted once (the directory wins).
    """
    runs: list[RunData] = []
    seen: set[str] = set()
    records: list[Path] = []
    for root in paths:
        root = Path(root)
        if root.is_file():
            records.append(root)
            continue
        if not root.is_dir():
            raise DebiaskitError(f"{root} is neither a directory nor a record file")
        for res in sorted(root.rglob("result.json")):
            result = _read_json(res)
            if not isinstance(result, dict):
                raise DebiaskitError(f"{res} does not hold a run result")
            rows = read_jsonl(res.parent / "metrics.jsonl")
            rd = RunData(result, rows, str(res.parent))
            if rd.run_key:
                if rd.run_key in seen:
                    continue
                seen.add(rd.run_key)
            runs.append(rd)
        records += [p for p in sorted(root.rglob("*.json")) if _is_record_file(p)]
    for p in records:
        rd = load_record(p)
        if rd.run_key and rd.run_key in seen:
            continue
        if rd.run_key:
            seen.add(rd.run_key)
        runs.append(rd)
    return runs
