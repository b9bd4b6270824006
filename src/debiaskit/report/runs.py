"""The report context of training runs: one run directory, a sweep directory or a folder of run records.

Everything is computed from what a run writes (``result.json`` + ``metrics.jsonl``, or a record holding
both): every selection rule is re-applied to the evaluation rows with :func:`debiaskit.train.selection.select`,
the method comparison is :func:`debiaskit.experiments.collect.aggregate` (mean ± sample std over seeds), and
the per-(target, bias) accuracy maps come from the ``group_count`` / ``group_correct`` matrices of the test
rows at the selected steps. See ``docs/report.md``.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from debiaskit.data.cifar10_source import CIFAR10_CLASSES
from debiaskit.data.colored_mnist import COLOR_NAMES, PALETTE
from debiaskit.data.corruptions import CORRUPTION_TYPES
from debiaskit.errors import DebiaskitError
from debiaskit.experiments.collect import aggregate, sweep_selection
from debiaskit.experiments.records import RunData
from debiaskit.io import read_jsonl
from debiaskit.report import plots
from debiaskit.report.published import published_for
from debiaskit.train.selection import get_selection_rule, list_selection_rules, rule_label, select

__all__ = ["axis_names", "fmt_ratio", "partial_run", "runs_context"]

_METRIC_NAMES = {"unbiased_accuracy": "unbiased accuracy", "accuracy": "accuracy", "mAP": "mAP",
                 "worst_group_accuracy": "worst-group accuracy", "aligned_accuracy": "aligned accuracy",
                 "conflicting_accuracy": "conflicting accuracy"}
_TEST_COLUMNS = ("accuracy", "unbiased_accuracy", "aligned_accuracy", "conflicting_accuracy", "worst_group_accuracy",
                 "mAP")


def fmt_ratio(r: Any) -> str:
    """A bias-conflicting ratio as a percentage label: 0.005 -> '0.5 %'."""
    if r is None:
        return "–"
    return f"{100 * float(r):g} %"


def _pct(v: Any, digits: int = 1) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "–"
    return "–" if not math.isfinite(f) else f"{100 * f:.{digits}f}"


def metric_name(m: str) -> str:
    return _METRIC_NAMES.get(m, m.replace("_", " "))


# ------------------------------------------------------------------------------------------ axes names
def axis_names(dataset: str | None, options: dict[str, Any], num_classes: int, num_bias: int
               ) -> tuple[list[str], list[str], str, str, np.ndarray | None, np.ndarray | None]:
    """(class names, bias names, y label, x label, bias palette, aligned-cell mask) for a heat map.

    Colored MNIST: digit x colour with the protocol's ten colours; Corrupted CIFAR-10: class x corruption;
    other datasets: indices (aligned cells are only marked where the dataset defines them as the diagonal).
    """
    classes = [str(i) for i in range(num_classes)]
    biases = [str(i) for i in range(num_bias)]
    if dataset == "colored_mnist" and num_classes == 10 and num_bias == 10:
        return classes, list(COLOR_NAMES), "digit (target)", "colour (bias)", np.asarray(PALETTE), np.eye(10, dtype=bool)
    if dataset == "corrupted_cifar10" and num_classes == 10 and num_bias == 10:
        names = CORRUPTION_TYPES.get(int(options.get("type", 0) or 0), tuple(biases))
        return list(CIFAR10_CLASSES), list(names), "class (target)", "corruption (bias)", None, np.eye(10, dtype=bool)
    return classes, biases, "target class", "bias value", None, None


def _cells(row: dict[str, Any] | None) -> tuple[np.ndarray, np.ndarray] | None:
    if not row or "group_count" not in row or "group_correct" not in row:
        return None
    try:
        cnt = np.asarray(row["group_count"], dtype=float)
        ok = np.asarray(row["group_correct"], dtype=float)
    except (TypeError, ValueError):
        return None
    if cnt.ndim != 2 or cnt.shape != ok.shape:
        return None
    return cnt, ok


def _acc(cnt: np.ndarray, ok: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 0, ok / np.maximum(cnt, 1), np.nan)


# ------------------------------------------------------------------------------------------ helpers
def partial_run(run_dir: Path) -> RunData | None:
    """An unfinished run directory (``config.yaml`` + ``metrics.jsonl``, no ``result.json``) as RunData."""
    cfg_file, rows_file = run_dir / "config.yaml", run_dir / "metrics.jsonl"
    if not cfg_file.is_file() or not rows_file.is_file():
        return None
    try:
        cfg = yaml.safe_load(cfg_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise DebiaskitError(f"{cfg_file} is not a readable run config ({type(e).__name__})") from None
    if not isinstance(cfg, dict):
        raise DebiaskitError(f"{cfg_file} does not hold a run config mapping")
    rows = read_jsonl(rows_file)
    ds = cfg.get("dataset") or {}
    result = {
        "method": cfg.get("method"), "dataset": ds.get("name"),
        "dataset_options": {k: v for k, v in ds.items() if k != "name"}, "seed": cfg.get("seed"),
        "hparams_seed": cfg.get("hparams_seed", 0), "steps": (cfg.get("hparams") or {}).get("steps"),
        "selection_rules": (cfg.get("train") or {}).get("selection") or [], "config": cfg, "_partial": True,
    }
    return RunData(result, rows, str(run_dir))


def _rules_of(runs: list[RunData], selection: list[str] | None) -> list[str]:
    if selection:
        for r in selection:
            get_selection_rule(r)
        return list(selection)
    present = {r for run in runs for r in (run.result.get("selection_rules") or run.result.get("selection") or [])}
    rules = [r for r in list_selection_rules() if r in present] or ["last"]
    splits = {e.get("split") for run in runs for e in run.evaluations}
    return [r for r in rules if get_selection_rule(r).split in (None, *splits)]


def _focus_rule(runs: list[RunData], rules: list[str], rule: str | None) -> str:
    """The rule whose step the summary and heat maps use: ``rule``, else the runs' most common reported rule."""
    if rule:
        get_selection_rule(rule)
        return rule
    counts = Counter(r.result.get("reported_selection") for r in runs if r.result.get("reported_selection") in rules)
    if counts:
        return counts.most_common(1)[0][0]
    return next((r for r in rules if r != "last" and not get_selection_rule(r).oracle), rules[0])


def _headline_metric(runs: list[RunData], metric: str | None) -> str:
    if metric:
        return metric
    keys = {k for run in runs for e in run.evaluations if e.get("split") == "test" for k in e}
    for m in ("unbiased_accuracy", "mAP", "accuracy"):
        if m in keys:
            return m
    return "accuracy"


def _labels(rules: list[str]) -> dict[str, str]:
    return {r: rule_label(r) for r in rules}


def _config_yaml(cfg: dict[str, Any] | None) -> str:
    if not cfg:
        return ""
    return yaml.safe_dump(json.loads(json.dumps(cfg, default=str)), sort_keys=False, allow_unicode=True)


def _run_title(res: dict[str, Any]) -> str:
    ratio = (res.get("dataset_options") or {}).get("ratio")
    bits = [str(res.get("method")), "on", str(res.get("dataset"))]
    if ratio is not None:
        bits.append(f"({fmt_ratio(ratio)} conflicting)")
    bits.append(f"seed {res.get('seed')}")
    if res.get("hparams_seed"):
        bits.append(f"hparams {res['hparams_seed']}")
    return " ".join(bits)


def _dims(run: RunData) -> tuple[int, int] | None:
    for e in run.evaluations:
        c = _cells(e)
        if c is not None:
            return c[0].shape  # type: ignore[return-value]
    sp = ((run.result.get("data") or {}).get("splits") or {}).get("test")
    if sp and sp.get("num_classes") and sp.get("num_bias"):
        return int(sp["num_classes"]), int(sp["num_bias"])
    return None


def _test_row_at(run: RunData, step: int | None) -> dict[str, Any] | None:
    if step is None:
        return None
    for e in run.evaluations:
        if int(e.get("step", -1)) == step and e.get("split") == "test" and e.get("weights", "raw") == "raw":
            return e
    return None


# ------------------------------------------------------------------------------------------ one run
def _single_run(run: RunData, rules: list[str], focus: str, metric: str) -> dict[str, Any]:
    res = run.result
    rows = [e for e in run.evaluations if e.get("weights", "raw") == "raw"]
    sels = {r: select(r, rows) for r in rules}
    selected = {r: s.step for r, s in sels.items() if s.step is not None}
    labels = _labels(rules)
    findings: list[dict[str, str]] = []
    steps_total = res.get("steps")
    last_step = max((int(e["step"]) for e in rows), default=None)
    if res.get("_partial"):
        findings.append({"level": "warn", "text": f"This run has not finished: last evaluation at step "
                         f"{last_step if last_step is not None else '–'} of {steps_total}. Curves and selections use "
                         "the evaluations so far."})
    fs = sels.get(focus)
    test = (fs.metrics.get("test") if fs else None) or {}
    if fs and fs.step is not None:
        findings.append({"level": "info", "text": f"Test {metric_name(metric)} {_pct(test.get(metric))} % at step "
                         f"{fs.step:,} of {steps_total if steps_total is not None else '?'}, picked by "
                         f"{labels.get(focus, focus)} (labels it read: "
                         f"{', '.join(get_selection_rule(focus).labels_consumed) or 'none'})."})
    al, co = test.get("aligned_accuracy"), test.get("conflicting_accuracy")
    if al is not None and co is not None:
        gap = 100 * (float(al) - float(co))
        lvl = "warn" if gap > 10 else "good"
        findings.append({"level": lvl, "text": f"Bias-aligned test cells {_pct(al)} %, bias-conflicting {_pct(co)} %: "
                         f"a gap of {gap:.1f} points" + (" — the model leans on the bias attribute; look at the "
                                                         "heat map's off-diagonal cells." if gap > 10 else ".")})
    sp = ((res.get("data") or {}).get("splits") or {}).get("test") or {}
    heat = None
    dims = _dims(run)
    if dims:
        cn, bn, ylab, xlab, pal, aligned = axis_names(res.get("dataset"), res.get("dataset_options") or {}, *dims)
        panels, seen = [], {}
        for r, step in selected.items():
            if step in seen:
                seen[step]["title"] += f" = {labels[r]}"
                continue
            c = _cells(_test_row_at(run, step))
            if c is None:
                continue
            p = {"title": f"{labels[r]} (step {step:,})", "acc": _acc(*c), "count": c[0]}
            seen[step] = p
            panels.append(p)
        if panels:
            heat = plots.cell_heatmaps(panels, class_names=cn, bias_names=bn, ylabel=ylab, xlabel=xlab, palette=pal,
                                       aligned=aligned, ncols=min(4, len(panels)))
            fc = _cells(_test_row_at(run, selected.get(focus)))
            if fc is not None:
                acc = _acc(*fc)
                if np.isfinite(acc).any():
                    i, j = np.unravel_index(int(np.nanargmin(acc)), acc.shape)
                    findings.append({"level": "info", "text": f"Worst test cell under {labels.get(focus, focus)}: "
                                     f"{ylab.split(' ')[0]} {cn[i]} × {xlab.split(' ')[0]} {bn[j]}: "
                                     f"{100 * acc[i, j]:.1f} % (n = {int(fc[0][i, j])})."})
    if fs and fs.step is not None and last_step is not None and fs.step == last_step and focus != "last" \
            and not res.get("_partial"):
        findings.append({"level": "info", "text": f"{labels.get(focus, focus)} picked the final evaluation: the "
                         "validation score was still improving; a longer budget may help."})
    if "oracle_test" in sels and sels["oracle_test"].step is not None and fs and focus != "oracle_test":
        o = (sels["oracle_test"].metrics.get("test") or {}).get(metric)
        if o is not None and test.get(metric) is not None:
            findings.append({"level": "info", "text": f"{rule_label('oracle_test')} would report "
                             f"{_pct(o)} % ({100 * (float(o) - float(test[metric])):+.1f} points); numbers selected on "
                             "the test set are optimistic."})
    sel_rows = []
    for r in rules:
        s = sels[r]
        if s.step is None:
            continue
        t = s.metrics.get("test") or {}
        sel_rows.append({"rule": labels[r], "step": f"{s.step:,}",
                         "score": "–" if s.score is None else f"{s.score:.4f}",
                         "labels": ", ".join(get_selection_rule(r).labels_consumed) or "none",
                         "cells": [_pct(t.get(c), 2) for c in _TEST_COLUMNS if any(c in (x.metrics.get("test") or {})
                                                                                    for x in sels.values())]})
    cols = [metric_name(c) for c in _TEST_COLUMNS if any(c in (x.metrics.get("test") or {}) for x in sels.values())]
    curves = plots.training_curves(run.evaluations, selected, labels=labels)  # raw and EMA rows, separate series
    prov = _provenance(res)
    return {
        "title": _run_title(res), "findings": findings,
        "selection_table": {"columns": ["rule", "step", "score", "labels read", *[f"test {c} (%)" for c in cols]],
                            "rows": [[r["rule"], r["step"], r["score"], r["labels"], *r["cells"]] for r in sel_rows]},
        "curves": curves, "heatmap": heat, "provenance": prov, "config_yaml": _config_yaml(res.get("config")),
        "test_size": sp.get("size"), "examples": [],
    }


def _provenance(res: dict[str, Any]) -> list[tuple[str, str]]:
    data = res.get("data") or {}
    out = [
        ("method", str(res.get("method"))),
        ("dataset", f"{res.get('dataset')} {json.dumps(res.get('dataset_options') or {}, sort_keys=True)}"),
        ("seed / hparams seed", f"{res.get('seed')} / {res.get('hparams_seed', 0)}"),
        ("steps", str(res.get("steps"))),
        ("reported selection", rule_label(res["reported_selection"]) if res.get("reported_selection") else "–"),
        ("selection rules kept at train time", ", ".join(rule_label(r) for r in res.get("selection_rules") or []) or "–"),
        ("labels the method consumed", ", ".join(res.get("labels_consumed") or []) or "–"),
        ("run key", str(res.get("run_key") or "–")),
        ("data fingerprint", str(data.get("fingerprint") or "–")),
        ("debiaskit / torch", f"{res.get('debiaskit_version', '–')} / {res.get('torch_version', '–')}"),
        ("device, threads", f"{res.get('device', '–')}, {(res.get('threads') or {}).get('threads', '–')} thread(s)"),
        ("wall time", f"{float(res['wall_time_s']):.0f} s" if res.get("wall_time_s") is not None else "–"),
    ]
    if res.get("early_stopped_at_step"):
        out.append(("stopped early at step", str(res["early_stopped_at_step"])))
    for name, sp in (data.get("splits") or {}).items():
        cr = sp.get("conflict_ratio")
        out.append((f"split {name}", f"{sp.get('size')} samples, {sp.get('num_classes')} classes × "
                    f"{sp.get('num_bias')} bias values, conflicting {_pct(cr, 2)} %, fingerprint {sp.get('fingerprint')}"))
    return out


# ------------------------------------------------------------------------------------------ many runs
def _sweep_status(root: Path) -> dict[str, Any] | None:
    f = root / "sweep.json"
    if not f.is_file():
        return None
    try:
        manifest = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    runs = manifest.get("runs") if isinstance(manifest, dict) else None
    if not isinstance(runs, list):
        return None
    counts = Counter(str(r.get("status")) for r in runs if isinstance(r, dict))
    failed = [{"key": r.get("key"), "error": str(r.get("error") or "")[:300]} for r in runs
              if isinstance(r, dict) and r.get("status") == "failed"]
    return {"counts": dict(counts), "failed": failed, "n": len(runs)}


def _many_runs(runs: list[RunData], rules: list[str], focus: str, metric: str, root: Path | None) -> dict[str, Any]:
    labels = _labels(rules)
    rows = aggregate(runs, selection=rules, metric=metric)
    sweep_sel = sweep_selection(rows, rules)
    by_key = {}
    for run in runs:
        by_key.setdefault(run.source, run)
    findings: list[dict[str, str]] = []
    datasets: list[dict[str, Any]] = []
    n_seeds_max = max((r["n_runs"] for r in rows), default=0)
    for ds in dict.fromkeys(str(r["dataset"]) for r in rows):
        ds_rows = [r for r in rows if str(r["dataset"]) == ds]
        ratios = list(dict.fromkeys(r["ratio"] for r in ds_rows))
        x_labels = [fmt_ratio(r) for r in ratios]
        methods = list(dict.fromkeys(r["label"] for r in ds_rows))
        series, table_rows, published_pts, published_notes = [], [], {}, []
        for m in methods:
            vals: dict[str, dict[str, tuple[float, float, int]]] = {}
            for r in (x for x in ds_rows if x["label"] == m):
                for rule in rules:
                    cell = r["rules"].get(rule, {}).get(metric)
                    if cell:
                        vals.setdefault(rule, {})[fmt_ratio(r["ratio"])] = (cell["mean"], cell["std"], cell["n"])
                pubs = published_for(ds, r["method"], r["ratio"]) if metric == "unbiased_accuracy" else []
                if pubs:
                    published_pts.setdefault(m, {})[fmt_ratio(r["ratio"])] = pubs[0]["mean"]
                    published_notes += [f"{r['method']} at {fmt_ratio(r['ratio'])}: {p['mean']:.2f}"
                                        + (f" ± {p['std']:.2f}" if p["std"] is not None else "") + f" ({p['source']})"
                                        for p in pubs]
                table_rows.append({
                    "ratio": fmt_ratio(r["ratio"]), "method": m, "seeds": ", ".join(map(str, r["seeds"])),
                    "cells": [_fmt_cell(r["rules"].get(rule, {}).get(metric), n_seeds_max) for rule in rules],
                    "steps": [", ".join(f"{s:,}" for s in r["rules"].get(rule, {}).get("steps_selected") or [] if s is not None)
                              for rule in rules],
                    "published": (f"{pubs[0]['mean']:.2f}" + (f" ± {pubs[0]['std']:.2f}" if pubs[0]["std"] is not None else ""))
                    if pubs else "",
                })
            series.append({"method": m, "values": vals})
        chart = plots.comparison_chart(series, x_labels=x_labels, rules=rules, rule_labels=labels,
                                       ylabel=f"test {metric_name(metric)} (%)",
                                       published=[{"method": m, "values": v} for m, v in published_pts.items()])
        curves = _group_curves(ds_rows, runs, rules, metric, labels)
        heat = _group_heatmaps(ds, ds_rows, runs, focus, labels)
        findings += _sweep_findings(ds, ds_rows, rules, focus, metric, labels, n_seeds_max)
        datasets.append({
            "name": ds, "chart": chart, "curves": curves, "heatmap": heat,
            "table": {"columns": ["ratio", "method", "seeds", *[labels[r] for r in rules], "published"],
                      "rows": [[t["ratio"], t["method"], t["seeds"], *t["cells"], t["published"]] for t in table_rows]},
            "steps_table": {"columns": ["ratio", "method", *[f"steps: {labels[r]}" for r in rules]],
                            "rows": [[t["ratio"], t["method"], *t["steps"]] for t in table_rows]},
            "published_notes": published_notes, "has_published": bool(published_notes),
        })
    sweep_rows = [[str(s["dataset"]), fmt_ratio(s["ratio"]), str(s["method"]), str(s["label"]), str(s["n_settings"]),
                   f"h{s['chosen_hparams_seed']}", _fmt_cell(s["val_score"]), _fmt_cell(s["test"])] for s in sweep_sel]
    status = _sweep_status(root) if root is not None else None
    if status and status["failed"]:
        findings.insert(0, {"level": "warn", "text": f"{len(status['failed'])} of {status['n']} sweep runs failed "
                            f"(first: {status['failed'][0]['key']}); see the sweep status below."})
    run_rows = []
    for run in sorted(runs, key=lambda x: (str(x.result.get("dataset")), float((x.result.get("dataset_options") or {})
                                                                             .get("ratio") or -1),
                                           str(x.result.get("method")), int(x.result.get("seed") or 0))):
        res = run.result
        s = select(focus, run.evaluations)
        v = (s.metrics.get("test") or {}).get(metric) if s.step is not None else None
        run_rows.append([str(res.get("method")), str(res.get("dataset")), fmt_ratio((res.get("dataset_options") or {})
                                                                                    .get("ratio")),
                         str(res.get("seed")), str(res.get("steps")), _pct(v, 2),
                         f"{s.step:,}" if s.step is not None else "–",
                         ", ".join(res.get("labels_consumed") or []) or "–", str((res.get("data") or {}).get("fingerprint")
                                                                                 or "–"),
                         str(res.get("debiaskit_version") or "–"), str(res.get("run_key") or "–")])
    configs = []
    seen_groups = set()
    for r in rows:
        if r["group"] in seen_groups:
            continue
        seen_groups.add(r["group"])
        src = r["sources"][0] if r["sources"] else None
        run = by_key.get(src)
        if run is not None:
            cfg = dict(run.result.get("config") or {})
            cfg.pop("seed", None)
            configs.append({"title": f"{r['dataset']} {fmt_ratio(r['ratio'])} {r['label']}", "yaml": _config_yaml(cfg)})
    return {
        "datasets": datasets, "findings": findings, "sweep_selection": sweep_rows, "status": status,
        "runs_table": {"columns": ["method", "dataset", "ratio", "seed", "steps", f"test {metric_name(metric)} (%)",
                                   f"step ({labels.get(focus, focus)})", "labels consumed", "data fingerprint",
                                   "version", "run key"], "rows": run_rows},
        "configs": configs, "n_groups": len(rows),
    }


def _fmt_cell(cell: dict[str, Any] | None, n_expected: int | None = None) -> str:
    """``mean ± std`` in %, with ``(n=k)`` when fewer seeds than ``n_expected`` went into it."""
    if not cell:
        return "–"
    n = cell.get("n")
    short = n is not None and n_expected is not None and n < n_expected
    return f"{100 * cell['mean']:.2f} ± {100 * cell['std']:.2f}" + (f" (n={n})" if short else "")


def _runs_of(row: dict[str, Any], runs: list[RunData]) -> list[RunData]:
    src = set(row["sources"])
    return sorted((r for r in runs if r.source in src), key=lambda r: int(r.result.get("seed") or 0))


def _grid(ds_rows: list[dict[str, Any]]) -> tuple[list[str], list[Any], dict[tuple[str, Any], dict[str, Any]]]:
    """Methods (rows: vanilla first) x ratios (columns, ascending) of one dataset's groups."""
    methods = sorted(dict.fromkeys(r["label"] for r in ds_rows), key=lambda m: (not m.startswith("vanilla"), m))
    ratios = sorted(dict.fromkeys(r["ratio"] for r in ds_rows), key=lambda x: -1.0 if x is None else float(x))
    return methods, ratios, {(r["label"], r["ratio"]): r for r in ds_rows}


def _group_curves(ds_rows: list[dict[str, Any]], runs: list[RunData], rules: list[str], metric: str,
                  labels: dict[str, str]) -> str | None:
    methods, ratios, cell = _grid(ds_rows)
    panels: list[dict[str, Any] | None] = []
    for m in methods:
        for ratio in ratios:
            r = cell.get((m, ratio))
            if r is None:
                panels.append(None)
                continue
            pr = []
            for run in _runs_of(r, runs):
                rows = [e for e in run.evaluations if e.get("weights", "raw") == "raw" and e.get("split") == "test"
                        and metric in e]
                if not rows:
                    continue
                rows.sort(key=lambda e: int(e["step"]))
                by_step = {int(e["step"]): float(e[metric]) for e in rows}
                sel = {}
                for rule in rules:
                    s = select(rule, run.evaluations)
                    if s.step is not None:
                        sel[rule] = (s.step, by_step.get(s.step))
                pr.append({"seed": run.result.get("seed"), "x": list(by_step), "y": list(by_step.values()),
                           "selected": sel})
            panels.append({"title": f"{m}, {fmt_ratio(ratio)}", "runs": pr, "labels": labels})
    return plots.group_curves(panels, metric=metric, split="test", ylabel=f"test {metric_name(metric)} (%)",
                              ncols=len(ratios))


def _group_heatmaps(ds: str, ds_rows: list[dict[str, Any]], runs: list[RunData], focus: str,
                    labels: dict[str, str]) -> dict[str, Any] | None:
    methods, ratios, cell = _grid(ds_rows)
    panels: list[dict[str, Any] | None] = []
    dims, opts = None, {}
    for m in methods:
        for ratio in ratios:
            r = cell.get((m, ratio))
            tot = None
            for run in _runs_of(r, runs) if r is not None else []:
                c = _cells(_test_row_at(run, select(focus, run.evaluations).step))
                if c is None or (dims is not None and c[0].shape != dims):
                    continue
                tot = (c[0].copy(), c[1].copy()) if tot is None else (tot[0] + c[0], tot[1] + c[1])
                dims, opts = c[0].shape, run.result.get("dataset_options") or {}
            panels.append(None if tot is None else {"title": f"{m}, {fmt_ratio(ratio)}", "acc": _acc(*tot),
                                                    "count": tot[0]})
    if dims is None:
        return None
    cn, bn, ylab, xlab, pal, aligned = axis_names(ds, opts, *dims)
    many = len(panels) > 3
    uri = plots.cell_heatmaps(panels, class_names=cn, bias_names=bn, ylabel=ylab, xlabel=xlab, palette=pal,
                              aligned=aligned, ncols=len(ratios), annotate=None if not many else False)
    return {"uri": uri, "rule": labels.get(focus, focus)}


def _sweep_findings(ds: str, ds_rows: list[dict[str, Any]], rules: list[str], focus: str, metric: str,
                    labels: dict[str, str], n_seeds_max: int) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    mname = metric_name(metric)
    for ratio in dict.fromkeys(r["ratio"] for r in ds_rows):
        cand = [(r, r["rules"].get(focus, {}).get(metric)) for r in ds_rows if r["ratio"] == ratio]
        cand = [(r, c) for r, c in cand if c]
        if not cand:
            continue
        cand.sort(key=lambda rc: -rc[1]["mean"])
        best, bc = cand[0]
        seeds = f"{bc['n']} seed{'s' if bc['n'] != 1 else ''}"
        if len(cand) == 1:
            out.append({"level": "info", "text": f"{ds} at {fmt_ratio(ratio)}: only {best['label']} has finished runs; "
                        f"test {mname} under {labels.get(focus, focus)} {100 * bc['mean']:.2f} ± "
                        f"{100 * bc['std']:.2f} ({seeds})."})
            continue
        text = (f"{ds} at {fmt_ratio(ratio)}: best test {mname} under {labels.get(focus, focus)} is {best['label']} "
                f"with {100 * bc['mean']:.2f} ± {100 * bc['std']:.2f} ({seeds})")
        if len(cand) > 1:
            r2, c2 = cand[1]
            text += f", {100 * (bc['mean'] - c2['mean']):+.2f} points over {r2['label']}"
        second = cand[1][0] if len(cand) > 1 else None
        van = next(((r, c) for r, c in cand if r["method"] == "vanilla" and r is not best and r is not second), None)
        if van is not None:
            text += f" and {100 * (bc['mean'] - van[1]['mean']):+.2f} over vanilla"
        out.append({"level": "info", "text": text + "."})
    short, noisy, off = [], [], []
    for r in ds_rows:
        where = f"{r['label']} {fmt_ratio(r['ratio'])}"
        if r["n_runs"] < n_seeds_max:
            short.append(f"{where} ({r['n_runs']}/{n_seeds_max})")
        c = r["rules"].get(focus, {}).get(metric)
        if c and c["n"] > 1 and 100 * c["std"] > 5:
            noisy.append(f"{where} (std {100 * c['std']:.1f})")
        if metric == "unbiased_accuracy" and c:
            pubs = published_for(ds, r["method"], r["ratio"])
            if pubs:
                d = 100 * c["mean"] - pubs[0]["mean"]
                if abs(d) > max(3.0, 2 * 100 * c["std"]):
                    off.append((abs(d), f"{where}: {100 * c['mean']:.2f} vs {pubs[0]['mean']:.2f} ({d:+.2f})"))
    if short:
        out.append({"level": "warn", "text": f"{ds}: fewer seeds finished for {', '.join(short)}; their mean ± std "
                    "is less certain."})
    if noisy:
        out.append({"level": "warn", "text": f"{ds}: seeds disagree by more than 5 points (std) under "
                    f"{labels.get(focus, focus)} for {', '.join(noisy)}."})
    if off:
        off.sort(key=lambda x: -x[0])
        more = f" and {len(off) - 3} more" if len(off) > 3 else ""
        out.append({"level": "warn", "text": f"{ds}: {len(off)} setting(s) differ from the first published number by "
                    f"more than max(3 points, 2 std) under {labels.get(focus, focus)}: "
                    f"{'; '.join(t for _, t in off[:3])}{more} (sources in the comparison table)."})
    if "oracle_test" in rules and focus != "oracle_test":
        gaps = [r["rules"]["oracle_test"][metric]["mean"] - r["rules"][focus][metric]["mean"] for r in ds_rows
                if metric in r["rules"].get("oracle_test", {}) and metric in r["rules"].get(focus, {})]
        if gaps:
            out.append({"level": "info", "text": f"{ds}: {rule_label('oracle_test')} adds {100 * np.mean(gaps):+.2f} "
                        f"points on average over {labels.get(focus, focus)} ({len(gaps)} "
                        f"setting{'s' if len(gaps) != 1 else ''}) — the optimism of "
                        "test-set selection."})
    return out


# ------------------------------------------------------------------------------------------ entry point
def runs_context(runs: list[RunData], *, kind: str, root: Path | None, selection: list[str] | None = None,
                 rule: str | None = None, metric: str | None = None) -> dict[str, Any]:
    """The template context of a report over ``runs`` (one run: curves + heat maps; several: the comparison)."""
    if not runs:
        raise DebiaskitError("no run to report on")
    rules = _rules_of(runs, selection)
    focus = _focus_rule(runs, rules, rule)
    if focus not in rules:
        rules.append(focus)
    metric = _headline_metric(runs, metric)
    ctx: dict[str, Any] = {"kind": kind, "metric": metric, "metric_name": metric_name(metric),
                           "focus": rule_label(focus), "rules": [rule_label(r) for r in rules], "n_runs": len(runs)}
    if len(runs) == 1:
        ctx["run"] = _single_run(runs[0], rules, focus, metric)
        ctx["findings"] = ctx["run"]["findings"]
        ctx["title"] = ctx["run"]["title"]
    else:
        ctx["sweep"] = _many_runs(runs, rules, focus, metric, root)
        ctx["findings"] = ctx["sweep"]["findings"]
        dsets = ", ".join(d["name"] for d in ctx["sweep"]["datasets"])
        ctx["title"] = f"{len(runs)} runs ({ctx['sweep']['n_groups']} settings) on {dsets}"
    return ctx
