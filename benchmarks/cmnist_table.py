"""Colored MNIST reproduction table: vanilla / LfF / DisEnt at 0.5, 1, 2, 5 % conflicting, 3 seeds.

Runs the grid of ``benchmarks/cmnist_sweep.yaml`` (official budgets: LfF 23.5k steps, DisEnt and DisEnt's
vanilla 50k; spec lff_disent.md §5) through :mod:`debiaskit.experiments.sweep` — content-addressed run
directories, finished runs skipped, interrupted runs resumed — then writes

* ``benchmarks/results/cmnist.md``: our mean ± std of the test unbiased accuracy under each selection rule
  (``last``, ``best_val_accuracy`` = biased validation split carved from training data, and the
  ``oracle_test`` column = best test accuracy over the evaluations, what the DisEnt code reports) next to the
  published numbers (spec §8.1, §8.2, §8.3, with their sources) and the issue's targets;
* ``benchmarks/results/cmnist.json``: the same figures, machine-readable, plus the status of every grid cell.

Runnable in parts::

    DEBIASKIT_DATA=/path/with/mnist python benchmarks/cmnist_table.py --ratios 0.01 --seeds 0 --jobs 1
    python benchmarks/cmnist_table.py --collect-only          # just rebuild the tables from finished runs

Full MNIST is read from ``$DEBIASKIT_DATA`` (or ``--data-dir``; the location is not part of the run hash).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from _grid import cell_status, fmt_mean_std, parse_list

HERE = Path(__file__).resolve().parent
RATIOS = (0.005, 0.01, 0.02, 0.05)
METHODS = ("vanilla", "lff", "disent")
RULES = ("last", "best_val_accuracy", "oracle_test")

#: published Colored MNIST unbiased-test accuracies (%), spec lff_disent.md §8 — (mean, std or None)
PUBLISHED: list[dict[str, Any]] = [
    {"method": "vanilla", "source": "DisEnt paper (Lee et al. 2021) main table, via S2 (LC, Liu et al.) means; "
     "std via S3", "values": {0.005: (35.19, 3.49), 0.01: (52.09, None), 0.02: (65.86, None), 0.05: (82.17, 0.74)}},
    {"method": "lff", "source": "DisEnt paper main table (LfF re-run), via S2",
     "values": {0.005: (52.5, None), 0.01: (61.89, None), 0.02: (71.03, None), 0.05: (80.57, None)}},
    {"method": "disent", "source": "DisEnt paper main table, via S2 (best-of-100 TEST evaluations)",
     "values": {0.005: (65.22, None), 0.01: (81.73, None), 0.02: (84.79, None), 0.05: (89.66, None)}},
    {"method": "vanilla", "source": "LfF paper Table 2 as printed in DeNetDM (NeurIPS 2024) Table 1 'ERM' "
     "(not confirmed against the LfF paper; LfF's 100-d MLP, lr 1e-3)",
     "values": {0.005: (35.34, 0.13), 0.01: (50.34, 0.16), 0.02: (62.29, 1.47), 0.05: (77.63, 0.13)}},
    {"method": "lff", "source": "LfF paper Table 2 as printed in DeNetDM Table 1 'LfF'",
     "values": {0.005: (63.39, 1.97), 0.01: (74.01, 2.21), 0.02: (80.48, 0.45), 0.05: (85.39, 0.94)}},
    {"method": "disent", "source": "DeNetDM re-run of the official DisEnt code (third party)",
     "values": {0.005: (59.12, 3.15), 0.01: (71.04, 1.02), 0.02: (82.86, 2.27), 0.05: (88.29, 1.50)}},
    {"method": "disent", "source": "DGW README re-run of the official DisEnt code (third party, 1 seed, best test)",
     "values": {0.005: (65.7, None), 0.01: (77.1, None), 0.02: (85.2, None), 0.05: (87.7, None)}},
]

#: the issue's quality targets (mean of 3 seeds, last or biased-val selection)
TARGETS = {"disent": {0.005: 59, 0.01: 71, 0.02: 80, 0.05: 86}, "lff": {0.005: 50, 0.01: 58, 0.02: 66, 0.05: 76}}








def build_tables(runs: list, out_dir: Path) -> dict[str, Any]:
    """Aggregate the finished runs of ``runs`` (sweep cells) into the md/json tables."""
    from debiaskit import __version__
    from debiaskit.experiments.collect import ORACLE_LABEL, aggregate

    results = []
    status = []
    for r in runs:
        st = cell_status(r.run_dir)
        status.append({"key": r.key, "run_dir": str(r.run_dir), **st})
        if st["status"] == "done":
            res = json.loads((r.run_dir / "result.json").read_text())
            res["_run_dir"] = str(r.run_dir)
            results.append(res)
    rows = aggregate(results) if results else []
    ours: dict[str, dict[str, dict[float, Any]]] = {m: {rule: {} for rule in RULES} for m in METHODS}
    walls: dict[str, dict[float, float]] = {m: {} for m in METHODS}
    for row in rows:
        if row["method"] not in ours or row["ratio"] is None:
            continue
        ratio = min(RATIOS, key=lambda x: abs(x - float(row["ratio"])))
        for rule in RULES:
            cell = row["rules"].get(rule, {}).get("unbiased_accuracy")
            if cell:
                ours[row["method"]][rule][ratio] = {"mean": 100 * cell["mean"], "std": 100 * cell["std"], "n": cell["n"],
                                                    "values": [100 * v for v in cell["values"]],
                                                    "seeds": row["seeds"]}
        if row.get("wall_time_s_mean") is not None:
            walls[row["method"]][ratio] = row["wall_time_s_mean"]

    head = "| method | selection | " + " | ".join(f"{100 * r:g} %" for r in RATIOS) + " |"
    sep = "|---|---|" + "---|" * len(RATIOS)
    lines = [
        "# Colored MNIST reproduction (vanilla / LfF / DisEnt)",
        "",
        "Test **unbiased accuracy** (%; mean over the 10×10 (digit, colour) cells of the uniformly coloured MNIST "
        "test set), mean ± sample std over seeds (n = number of finished seeds when not 3). Data: LfF protocol "
        "(severity 4, foreground colour, deterministic assignment), 10 % of the aligned and 10 % of the "
        "conflicting training samples held out as the *biased* validation split (same conflict ratio). Budgets: vanilla 50k steps (DisEnt's 16-d MLP, "
        "lr 0.01), LfF 23.5k steps (100-d MLP, lr 1e-3), DisEnt 50k steps (lr 0.01, λ 10/10/1, curriculum 10k, "
        "StepLR 10k×0.5). Produced by `benchmarks/cmnist_table.py`.",
        "",
        "## Ours",
        "",
        head,
        sep,
    ]
    for m in METHODS:
        for rule in RULES:
            label = ORACLE_LABEL if rule == "oracle_test" else rule
            cells = [ours[m][rule].get(r) for r in RATIOS]
            lines.append(f"| {m} | {label} | " + " | ".join(
                fmt_mean_std(c["mean"], c["std"], c["n"]) if c else "not run" for c in cells) + " |")
    wall_text = "; ".join(f"{m} " + ", ".join(f"{100 * r:g} %: {walls[m][r]:.0f}" for r in RATIOS if r in walls[m])
                          for m in METHODS if walls[m])
    lines += ["", f"Mean wall time per run (s): {wall_text}" if wall_text else "No finished runs yet.", ""]
    lines += ["## Published (spec lff_disent.md §8)", "", "| method | source | " +
              " | ".join(f"{100 * r:g} %" for r in RATIOS) + " |", "|---|---|" + "---|" * len(RATIOS)]
    for p in PUBLISHED:
        lines.append(f"| {p['method']} | {p['source']} | " + " | ".join(
            fmt_mean_std(*p["values"][r]) for r in RATIOS) + " |")
    lines += ["", "Issue targets (mean of 3 seeds, `last` or biased-val selection): " + "; ".join(
        f"{m} ≥ " + " / ".join(str(TARGETS[m][r]) for r in RATIOS) for m in TARGETS) + ".", "",
        "Metric note: LfF reports the mean over (target, bias) cells, DisEnt plain test accuracy; on this test "
        "set (uniform colours, near-equal cells) the two differ by well under a point. The DisEnt numbers are "
        "best-of-100 *test* evaluations — compare them with our oracle column.", "",
        "## Grid cells", "", "| run | status | steps done / total | wall time (s) |", "|---|---|---|---|"]
    for s in status:
        steps = (f"{s.get('steps')}" if s["status"] == "done" else f"{s.get('last_eval_step', 0)}")
        total = next(r.config["hparams"]["steps"] for r in runs if r.key == s["key"])
        wall = s.get("wall_time_s")
        lines.append(f"| {s['key']} | {s['status']} | {steps} / {total} | {'' if wall is None else f'{wall:.0f}'} |")
    md = "\n".join(lines) + "\n"
    payload = {
        "debiaskit_version": __version__,
        "generated_unix": time.time(),
        "metric": "test unbiased_accuracy (%)",
        "ratios": list(RATIOS),
        "ours": {m: {rule: {str(r): v for r, v in ours[m][rule].items()} for rule in RULES} for m in METHODS},
        "wall_time_s_mean": {m: {str(r): v for r, v in walls[m].items()} for m in METHODS},
        "published": [{**p, "values": {str(r): {"mean": v[0], "std": v[1]} for r, v in p["values"].items()}}
                      for p in PUBLISHED],
        "targets": {m: {str(r): v for r, v in t.items()} for m, t in TARGETS.items()},
        "cells": status,
        "oracle_label": ORACLE_LABEL,
    }
    from debiaskit.io import write_json, write_text

    out_dir.mkdir(parents=True, exist_ok=True)
    write_text(out_dir / "cmnist.md", md)
    write_json(out_dir / "cmnist.json", payload)
    return payload


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweep", default=str(HERE / "cmnist_sweep.yaml"))
    ap.add_argument("--runs", default=str(HERE / "runs" / "cmnist"), help="sweep directory (run dirs below it)")
    ap.add_argument("--results", default=str(HERE / "results"), help="where cmnist.md / cmnist.json go")
    ap.add_argument("--ratios", default=None, help="comma-separated subset, e.g. 0.01")
    ap.add_argument("--seeds", default=None, help="comma-separated subset, e.g. 0,1")
    ap.add_argument("--methods", default=None, help="comma-separated subset, e.g. lff,disent")
    ap.add_argument("--jobs", type=int, default=1, help="runs in parallel processes")
    ap.add_argument("--threads", type=int, default=None, help="torch threads per run")
    ap.add_argument("--data-dir", default=None, help="directory with the MNIST idx files (else $DEBIASKIT_DATA)")
    ap.add_argument("--collect-only", action="store_true", help="train nothing; rebuild the tables")
    args = ap.parse_args(argv)
    if args.data_dir:
        os.environ["DEBIASKIT_DATA"] = args.data_dir
    from debiaskit.errors import DebiaskitError
    from debiaskit.experiments.sweep import expand_sweep, load_sweep, run_sweep

    try:
        spec = load_sweep(args.sweep)
        all_runs = expand_sweep(spec, args.runs)
        if not args.collect_only:
            if not os.environ.get("DEBIASKIT_DATA"):
                raise DebiaskitError("set DEBIASKIT_DATA (or --data-dir) to the directory with the full MNIST files")
            sel = expand_sweep(spec, args.runs, ratios=parse_list(args.ratios, float),
                               seeds=parse_list(args.seeds, int), methods=parse_list(args.methods, str))
            run_sweep(sel, args.runs, jobs=args.jobs, threads=args.threads)
        payload = build_tables(all_runs, Path(args.results))
    except DebiaskitError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    done = sum(c["status"] == "done" for c in payload["cells"])
    print(f"{done}/{len(payload['cells'])} grid cells finished; wrote {args.results}/cmnist.md and cmnist.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
