"""Aggregate finished runs (run directories or records) into mean ± std over seeds, per selection rule.

Runs are grouped by their run key without the seed (:func:`debiaskit.runkey.group_key`): runs that
differ only in the seed pool together and a changed hyper-parameter forms its own group. For every group and
every selection rule, the rule is applied to each run's evaluation records (so a rule need not have been chosen
at train time), the test metric at the selected step is taken, and mean ± sample standard deviation over seeds
(``ddof = 1``; 0 for a single seed) is reported, with the steps chosen and the labels the rule consumed.

**Sweep-level selection** (DomainBed style): groups that differ only in their hyper-parameters (e.g. the
``n_hparams`` draws of a sweep) form one *cell*; for every rule with a validation split the setting with the
best seed-averaged validation score is chosen and its test metric reported. Oracle rules are labelled
"oracle (test-set selection)" in every output.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from debiaskit.errors import DebiaskitError
from debiaskit.experiments.records import RunData, load_runs
from debiaskit.runkey import group_key, setting_key
from debiaskit.io import csv_safe, md_cell, to_json
from debiaskit.train.selection import (
    ORACLE_LABEL,
    Selection,
    get_selection_rule,
    list_selection_rules,
    rule_label,
    select,
)

__all__ = ["ORACLE_LABEL", "aggregate", "collect", "fmt_pct", "format_table"]

SUMMARY_METRICS = ("unbiased_accuracy", "aligned_accuracy", "conflicting_accuracy", "accuracy", "worst_group_accuracy")


def _mean_std(values: list[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return mean, std


def _cell(values: list[float]) -> dict[str, Any] | None:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return None
    mean, std = _mean_std(vals)
    return {"mean": mean, "std": std, "n": len(vals), "values": vals}


def default_selection(runs: Iterable[RunData]) -> list[str]:
    """The rules the runs were trained with (in registry order), ``last`` first."""
    present = {r for run in runs for r in (run.result.get("selection_rules") or run.result.get("selection") or [])}
    return [r for r in list_selection_rules() if r in present] or ["last"]


def _applicable(rule: str, run: RunData, weights: str) -> bool:
    r = get_selection_rule(rule)
    return r.split is None or any(e.get("split") == r.split and e.get("weights", "raw") == weights
                                  for e in run.evaluations)


def _value(sel: Selection, split: str, metric: str) -> float | None:
    """``split``/``metric`` at the step a rule selected (None when the run lacks it)."""
    v = sel.metrics.get(split, {}).get(metric)
    try:
        return float(v) if v is not None else None
    except (TypeError, ValueError):
        return None


def aggregate(
    runs: list[RunData], *, selection: list[str] | None = None, metric: str = "unbiased_accuracy",
    split: str = "test", weights: str = "raw",
) -> list[dict[str, Any]]:
    """One row per group of runs (same config up to the seed) with, per rule, mean ± std of ``split``/``metric``."""
    rules = selection or default_selection(runs)
    for r in rules:
        get_selection_rule(r)  # unknown names fail here
    groups: dict[str, dict[str, Any]] = {}
    for run in runs:
        cfg = run.result.get("config") or {}
        h = group_key(cfg) if cfg else str(run.run_key)
        g = groups.setdefault(h, {
            "group": h, "setting": setting_key(cfg) if cfg else h, "dataset": run.result.get("dataset"),
            "ratio": (run.result.get("dataset_options") or {}).get("ratio"), "method": run.result.get("method"),
            "steps": run.result.get("steps"), "hparams_seed": run.result.get("hparams_seed", 0), "runs": [],
        })
        g["runs"].append(run)
    rows = []
    for h, g in groups.items():
        entries: dict[str, Any] = {}
        for rule in rules:
            runs_ok = [run for run in g["runs"] if _applicable(rule, run, weights)]
            if not runs_ok:
                continue
            entry: dict[str, Any] = {"label": rule_label(rule),
                                     "labels_consumed": list(get_selection_rule(rule).labels_consumed)}
            sels = [select(rule, run.evaluations, weights=weights) for run in runs_ok]  # once per run and rule
            for m in dict.fromkeys((metric, *SUMMARY_METRICS)):
                cell = _cell([_value(sel, split, m) for sel in sels])
                if cell:
                    entry[m] = cell
            entry["n"] = entry.get(metric, {}).get("n", 0)
            entry["steps_selected"] = [sel.step for sel in sels]
            entry["val_score"] = _cell([sel.score for sel in sels if sel.score is not None])
            entries[rule] = entry
        walls = [float(r.result["wall_time_s"]) for r in g["runs"] if r.result.get("wall_time_s") is not None]
        rows.append({
            "group": h, "setting": g["setting"], "dataset": g["dataset"], "ratio": g["ratio"], "method": g["method"],
            "steps": g["steps"], "hparams_seed": g["hparams_seed"],
            "seeds": sorted(r.result.get("seed") for r in g["runs"]), "n_runs": len(g["runs"]),
            "metric": metric, "split": split, "weights": weights, "rules": entries,
            "wall_time_s_mean": sum(walls) / len(walls) if walls else None,
            "sources": [r.source for r in g["runs"]],
        })
    rows.sort(key=lambda x: (str(x["dataset"]), float(x["ratio"]) if x["ratio"] is not None else -1.0,
                             str(x["method"]), x["hparams_seed"] or 0, x["group"]))
    _disambiguate(rows)
    return rows


def sweep_selection(rows: list[dict[str, Any]], rules: list[str]) -> list[dict[str, Any]]:
    """Per cell (groups differing only in hyper-parameters) and rule: the setting with the best mean val score."""
    cells: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        cells.setdefault(r["setting"], []).append(r)
    out = []
    for setting, groups in cells.items():
        if len(groups) < 2:
            continue
        for rule in rules:
            rr = get_selection_rule(rule)
            if rr.split is None:
                continue
            cands = [(g, g["rules"][rule]) for g in groups if rule in g["rules"] and g["rules"][rule].get("val_score")]
            if not cands:
                continue
            sign = 1 if rr.mode == "max" else -1
            best_g, best_e = max(cands, key=lambda ge: (sign * ge[1]["val_score"]["mean"], -(ge[0]["hparams_seed"] or 0)))
            out.append({
                "setting": setting, "dataset": best_g["dataset"], "ratio": best_g["ratio"], "method": best_g["method"],
                "rule": rule, "label": rr.label, "n_settings": len(groups), "chosen_group": best_g["group"],
                "chosen_hparams_seed": best_g["hparams_seed"], "val_score": best_e["val_score"],
                "test": best_e.get(best_g["metric"]), "metric": best_g["metric"],
                "labels_consumed": list(rr.labels_consumed),
            })
    return out


def _disambiguate(rows: list[dict[str, Any]]) -> None:
    """Label groups; two configs of the same method on the same data get their hparams seed or key appended."""
    count: dict[tuple, int] = {}
    for r in rows:
        k = (r["dataset"], r["ratio"], r["method"])
        count[k] = count.get(k, 0) + 1
    for r in rows:
        k = (r["dataset"], r["ratio"], r["method"])
        if count[k] == 1:
            r["label"] = r["method"]
        elif r["hparams_seed"]:
            r["label"] = f"{r['method']} [h{r['hparams_seed']}]"
        else:
            r["label"] = f"{r['method']} [{r['group']}]"


def available_metrics(runs: list[RunData], split: str) -> list[str]:
    names: set[str] = set()
    for run in runs:
        for e in run.evaluations:
            if e.get("split") == split:
                names.update(k for k, v in e.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
                             and k not in ("step", "wall_time_s", "steps_per_s", "peak_memory_mb"))
    return sorted(names)


def collect(
    paths: str | Path | Iterable[str | Path], *, selection: list[str] | None = None,
    metric: str = "unbiased_accuracy", split: str = "test", weights: str = "raw",
) -> dict[str, Any]:
    """Load and aggregate every finished run (directory or record) below ``paths``."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    runs = load_runs(paths)
    if not runs:
        raise DebiaskitError(f"no finished run (result.json or record) found under {', '.join(map(str, paths))}")
    splits = sorted({e.get("split") for run in runs for e in run.evaluations})
    if split not in splits:
        raise DebiaskitError(f"no run was evaluated on split {split!r}; available: {', '.join(map(str, splits))}")
    have = available_metrics(runs, split)
    if metric not in have:
        raise DebiaskitError(f"unknown metric {metric!r} for split {split!r}; available: {', '.join(have)}")
    w_have = sorted({e.get("weights", "raw") for run in runs for e in run.evaluations})
    if weights not in w_have:
        raise DebiaskitError(f"no run has {weights!r} weights evaluated; available: {', '.join(w_have)}")
    rules = selection or default_selection(runs)
    rows = aggregate(runs, selection=rules, metric=metric, split=split, weights=weights)
    return {"roots": [str(p) for p in paths], "metric": metric, "split": split, "weights": weights,
            "selection": rules, "rows": rows, "sweep_selection": sweep_selection(rows, rules)}


def _rules_of(table: dict[str, Any]) -> list[str]:
    present = {k for r in table["rows"] for k in r["rules"]}
    return [r for r in table.get("selection") or list_selection_rules() if r in present]


def fmt_pct(cell: dict[str, Any] | None) -> str:
    """``mean ± std`` in percent."""
    if not cell:
        return "–"
    return f"{100 * cell['mean']:.2f} ± {100 * cell['std']:.2f}"


def _csv_safe(v: Any) -> Any:
    """OWASP CSV-injection rule (see :func:`debiaskit.io.csv_safe`)."""
    return csv_safe(v)


def _md(v: Any) -> str:
    return md_cell(v)


def format_table(table: dict[str, Any], *, fmt: str = "md") -> str:
    """Render :func:`collect` output as a markdown table, CSV or JSON."""
    rows, metric = table["rows"], table["metric"]
    if fmt == "json":
        return to_json(table) + "\n"
    rules = _rules_of(table)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["dataset", "ratio", "method", "n_seeds", "rule", "labels_consumed", "metric", "mean", "std", "n"])
        for r in rows:
            for rule in rules:
                e = r["rules"].get(rule, {})
                cell = e.get(metric)
                if cell:
                    w.writerow([_csv_safe(x) for x in (r["dataset"], r["ratio"], r["label"], r["n_runs"], rule_label(rule),
                                " ".join(e.get("labels_consumed", [])), metric, f"{cell['mean']:.6f}",
                                f"{cell['std']:.6f}", cell["n"])])
        return buf.getvalue()
    if fmt != "md":
        raise DebiaskitError(f"unknown format {fmt!r}; choose md, csv or json")
    headers = ["dataset", "ratio", "method", "seeds"] + [rule_label(r) for r in rules]
    w_note = "" if table.get("weights", "raw") == "raw" else f" ({table['weights']} weights)"
    lines = [f"{table['split'].capitalize()} {metric} (%){w_note}, mean ± std over seeds, at the step each rule selects.",
             "", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for r in rows:
        cells = [_md(r["dataset"]), "" if r["ratio"] is None else f"{r['ratio']:g}", _md(r["label"]), str(r["n_runs"])]
        cells += [fmt_pct(r["rules"].get(rule, {}).get(metric)) for rule in rules]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Labels each rule consumed: " + "; ".join(
        f"{rule_label(r)}: {', '.join(get_selection_rule(r).labels_consumed) or 'none'}" for r in rules) + ".")
    if table.get("sweep_selection"):
        lines += ["", "Sweep-level selection (the hyper-parameter setting with the best seed-averaged score of each rule):",
                  "", "| dataset | ratio | method | rule | settings | chosen | val score | test |", "|---|---|---|---|---|---|---|---|"]
        for s in table["sweep_selection"]:
            lines.append(f"| {_md(s['dataset'])} | {'' if s['ratio'] is None else format(s['ratio'], 'g')} | "
                         f"{_md(s['method'])} | {_md(s['label'])} | {s['n_settings']} | h{s['chosen_hparams_seed']} | "
                         f"{fmt_pct(s['val_score'])} | {fmt_pct(s['test'])} |")
    return "\n".join(lines) + "\n"
