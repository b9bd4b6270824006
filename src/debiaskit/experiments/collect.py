"""Aggregate run results (``result.json``) into mean ± std over seeds, per selection rule.

Runs are grouped by their resolved config with the seed (and the data location) removed, so runs that differ
only in the seed pool together and a changed hyper-parameter forms its own group. For every group and every
selection rule the test metric at the selected checkpoint is averaged; the standard deviation is the sample
standard deviation over seeds (``ddof = 1``; 0 for a single seed). The ``oracle_test`` rule (best *test*
accuracy, what the DisEnt code reports) is labelled "oracle (test-set selection)" in every output.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from pathlib import Path
from typing import Any

from debiaskit.errors import DebiaskitError
from debiaskit.io import to_json

RULE_ORDER = ("last", "best_val_accuracy", "best_val_unbiased", "best_val_map", "oracle_test")
ORACLE_LABEL = "oracle (test-set selection)"
SUMMARY_METRICS = ("unbiased_accuracy", "aligned_accuracy", "conflicting_accuracy", "accuracy", "worst_group_accuracy")


def _group_key(result: dict[str, Any]) -> tuple[str, str]:
    cfg = dict(result.get("config") or {})
    cfg.pop("seed", None)
    ds = {k: v for k, v in (cfg.get("dataset") or {}).items() if k not in ("data_dir", "source")}
    cfg["dataset"] = ds
    h = hashlib.sha256(to_json(cfg, indent=None).encode()).hexdigest()[:8]
    return h, to_json(cfg, indent=None)


def load_results(root: str | Path) -> list[dict[str, Any]]:
    """Every ``result.json`` below ``root`` (sorted by path), each with ``_run_dir`` added."""
    root = Path(root)
    if not root.is_dir():
        raise DebiaskitError(f"{root} is not a directory")
    out = []
    for p in sorted(root.rglob("result.json")):
        try:
            r = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise DebiaskitError(f"cannot read {p}: {e}") from None
        r["_run_dir"] = str(p.parent)
        out.append(r)
    return out


def _mean_std(values: list[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return mean, std


def aggregate(results: list[dict[str, Any]], *, metric: str = "unbiased_accuracy", split: str = "test") -> list[dict[str, Any]]:
    """Group results and compute mean ± std of ``split``/``metric`` (and a few companions) per selection rule."""
    groups: dict[str, dict[str, Any]] = {}
    for r in results:
        h, _ = _group_key(r)
        g = groups.setdefault(h, {
            "group": h, "dataset": r.get("dataset"), "ratio": (r.get("dataset_options") or {}).get("ratio"),
            "method": r.get("method"), "steps": r.get("steps"), "runs": [],
        })
        g["runs"].append(r)
    rows = []
    for h, g in groups.items():
        seeds = sorted(r.get("seed") for r in g["runs"])
        rules: dict[str, Any] = {}
        present = {rule for r in g["runs"] for rule in (r.get("selection") or {})}
        for rule in [*[x for x in RULE_ORDER if x in present], *sorted(present - set(RULE_ORDER))]:
            entry: dict[str, Any] = {"label": ORACLE_LABEL if rule == "oracle_test" else rule, "n": 0}
            for m in dict.fromkeys((metric, *SUMMARY_METRICS)):
                vals = [float(r["selection"][rule]["metrics"][split][m]) for r in g["runs"]
                        if rule in r.get("selection", {}) and m in r["selection"][rule].get("metrics", {}).get(split, {})]
                vals = [v for v in vals if not math.isnan(v)]
                if vals:
                    mean, std = _mean_std(vals)
                    entry[m] = {"mean": mean, "std": std, "n": len(vals), "values": vals}
            entry["n"] = entry.get(metric, {}).get("n", 0)
            entry["steps_selected"] = [r["selection"][rule].get("step") for r in g["runs"] if rule in r.get("selection", {})]
            rules[rule] = entry
        walls = [float(r["wall_time_s"]) for r in g["runs"] if r.get("wall_time_s") is not None]
        rows.append({
            "group": h, "dataset": g["dataset"], "ratio": g["ratio"], "method": g["method"], "steps": g["steps"],
            "seeds": seeds, "n_runs": len(g["runs"]), "metric": metric, "split": split, "rules": rules,
            "wall_time_s_mean": sum(walls) / len(walls) if walls else None,
            "run_dirs": [r["_run_dir"] for r in g["runs"]],
        })
    rows.sort(key=lambda x: (str(x["dataset"]), float(x["ratio"]) if x["ratio"] is not None else -1.0,
                             str(x["method"]), x["group"]))
    _disambiguate(rows)
    return rows


def _disambiguate(rows: list[dict[str, Any]]) -> None:
    """Label groups; two configs of the same method on the same data get their config hash appended."""
    count: dict[tuple, int] = {}
    for r in rows:
        k = (r["dataset"], r["ratio"], r["method"])
        count[k] = count.get(k, 0) + 1
    for r in rows:
        k = (r["dataset"], r["ratio"], r["method"])
        r["label"] = r["method"] if count[k] == 1 else f"{r['method']} [{r['group']}]"


def collect(root: str | Path, *, metric: str = "unbiased_accuracy", split: str = "test") -> dict[str, Any]:
    """Load and aggregate every run below ``root``."""
    results = load_results(root)
    if not results:
        raise DebiaskitError(f"no result.json found under {root}")
    return {"root": str(root), "metric": metric, "split": split, "rows": aggregate(results, metric=metric, split=split)}


def _rules_of(rows: list[dict[str, Any]]) -> list[str]:
    present = {k for r in rows for k in r["rules"]}
    return [*[x for x in RULE_ORDER if x in present], *sorted(present - set(RULE_ORDER))]


def fmt_pct(cell: dict[str, Any] | None) -> str:
    """``mean ± std`` in percent (``n=k`` appended when fewer than the group's seeds)."""
    if not cell:
        return "–"
    return f"{100 * cell['mean']:.2f} ± {100 * cell['std']:.2f}"


def format_table(table: dict[str, Any], *, fmt: str = "md") -> str:
    """Render :func:`collect` output as a markdown table, CSV or JSON."""
    rows, metric = table["rows"], table["metric"]
    if fmt == "json":
        return to_json(table) + "\n"
    rules = _rules_of(rows)
    headers = ["dataset", "ratio", "method", "seeds"] + [ORACLE_LABEL if r == "oracle_test" else r for r in rules]
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["dataset", "ratio", "method", "n_seeds", "rule", "metric", "mean", "std", "n"])
        for r in rows:
            for rule in rules:
                cell = r["rules"].get(rule, {}).get(metric)
                if cell:
                    label = ORACLE_LABEL if rule == "oracle_test" else rule
                    w.writerow([r["dataset"], r["ratio"], r["label"], r["n_runs"], label, metric,
                                f"{cell['mean']:.6f}", f"{cell['std']:.6f}", cell["n"]])
        return buf.getvalue()
    if fmt != "md":
        raise DebiaskitError(f"unknown format {fmt!r}; choose md, csv or json")
    lines = [f"Test {metric} (%), mean ± std over seeds.", "",
             "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for r in rows:
        cells = [str(r["dataset"]), "" if r["ratio"] is None else f"{r['ratio']:g}", r["label"], str(r["n_runs"])]
        cells += [fmt_pct(r["rules"].get(rule, {}).get(metric)) for rule in rules]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
