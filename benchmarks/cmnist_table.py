"""Colored MNIST reproduction table: vanilla / LfF / DisEnt at 0.5, 1, 2, 5 % conflicting, 3 seeds, official budgets.

The grid is ``benchmarks/cmnist_sweep.yaml`` (every hyper-parameter from the registry, as ``debiaskit train``
resolves it; budgets and protocol in docs/methods_lff_disent.md). Finished runs are kept as committed run
records in ``benchmarks/results/records/cmnist/`` (one small JSON per run: its result and every evaluation), so
the grid advances over several sittings and machines and never retrains a recorded cell. The tables are built
from the records alone, in seconds:

* ``benchmarks/results/cmnist.md`` / ``.json``: test unbiased accuracy, mean ± std over seeds, for every honest
  selection rule (``last``, ``best_val_accuracy``, ``best_val_worst_group``, ``best_val_group_mean``,
  ``min_val_loss`` — the last three computed after training from the records), then, separated and labelled with the labels they consume,
  ``best_val_unbiased`` (1,000 uniformly coloured held-out training digits) and the oracle (test-set
  selection); the same for the EMA of the weights (evaluation only); published numbers with their sources;
  per cell the gap of the best honest rule to the DisEnt paper and to our oracle.

Usage::

    python benchmarks/cmnist_table.py                      # rebuild the tables from the records (seconds)
    python benchmarks/cmnist_table.py --train --ratios 0.01 --jobs 2 --data-dir ../shared/data
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
HONEST = ("last", "best_val_accuracy", "best_val_worst_group", "best_val_group_mean", "min_val_loss")
BIAS_LABELLED = ("best_val_unbiased",)
ORACLE = ("oracle_test",)
RULES = HONEST + BIAS_LABELLED + ORACLE
WEIGHTS = ("raw", "ema")
RECORDS = HERE / "results" / "records" / "cmnist"
#: the DisEnt paper's numbers (test-set selected): the goal
PAPER_DISENT = {0.005: 65.22, 0.01: 81.73, 0.02: 84.79, 0.05: 89.66}

#: published Colored MNIST unbiased-test accuracies (%) — (mean, std or None); sources per row
PUBLISHED: list[dict[str, Any]] = [
    {"method": "vanilla", "source": "DisEnt paper (Lee et al., NeurIPS 2021) main table, as reprinted in Liu et al. "
     "(LC, ICLR 2023) Table 1 (means); std from a third-party FG-CCDB summary", "values": {0.005: (35.19, 3.49), 0.01: (52.09, None), 0.02: (65.86, None), 0.05: (82.17, 0.74)}},
    {"method": "lff", "source": "DisEnt paper main table (LfF re-run), Liu et al. Table 1",
     "values": {0.005: (52.5, None), 0.01: (61.89, None), 0.02: (71.03, None), 0.05: (80.57, None)}},
    {"method": "disent", "source": "DisEnt paper main table, Liu et al. Table 1 (best-of-100 TEST evaluations)",
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








def _cells(table: dict[str, Any]) -> dict[str, dict[str, dict[float, dict[str, Any]]]]:
    out: dict[str, dict[str, dict[float, dict[str, Any]]]] = {m: {r: {} for r in RULES} for m in METHODS}
    for row in table["rows"]:
        if row["method"] not in out or row["ratio"] is None:
            continue
        ratio = min(RATIOS, key=lambda x: abs(x - float(row["ratio"])))
        for rule in RULES:
            cell = row["rules"].get(rule, {}).get("unbiased_accuracy")
            if cell:
                out[row["method"]][rule][ratio] = {
                    "mean": 100 * cell["mean"], "std": 100 * cell["std"], "n": cell["n"],
                    "values": [100 * v for v in cell["values"]], "seeds": row["seeds"],
                    "steps_selected": row["rules"][rule]["steps_selected"]}
    return out


def build_tables(records: Path, out_dir: Path, runs: list | None = None) -> dict[str, Any]:
    """Tables from the run records in ``records`` (and the grid status of ``runs``, sweep cells, if given)."""
    from debiaskit import __version__
    from debiaskit.experiments.collect import collect
    from debiaskit.experiments.records import load_runs
    from debiaskit.train.selection import get_selection_rule, rule_label

    have = load_runs([records]) if records.is_dir() else []
    ours: dict[str, Any] = {}
    times: dict[str, dict[float, list[float]]] = {m: {} for m in METHODS}
    impls: dict[str, int] = {}
    if have:
        for w in WEIGHTS:
            ours[w] = _cells(collect([records], selection=list(RULES), weights=w))
        for run in have:
            r = run.result
            ratio = min(RATIOS, key=lambda x: abs(x - float(r["dataset_options"]["ratio"])))
            times[r["method"]].setdefault(ratio, []).append(float(r["wall_time_s"]))
            # records written before train.optimizer_impl existed ran PyTorch's per-tensor loop on CPU
            used = sorted(set((r.get("optimizer_impl") or {}).values())) or ["for_loop"]
            impls["/".join(used)] = impls.get("/".join(used), 0) + 1
    walls = {m: {r: sum(v) / len(v) for r, v in d.items()} for m, d in times.items()}
    head = "| method | selection | labels consumed | " + " | ".join(f"{100 * r:g} %" for r in RATIOS) + " |"
    sep = "|---|---|---|" + "---|" * len(RATIOS)

    def block(w: str, rules: tuple[str, ...]) -> list[str]:
        lines = [head, sep]
        for m in METHODS:
            for rule in rules:
                cells = [ours.get(w, {}).get(m, {}).get(rule, {}).get(r) for r in RATIOS]
                labels = ", ".join(get_selection_rule(rule).labels_consumed) or "none"
                lines.append(f"| {m} | {rule_label(rule)} | {labels} | " + " | ".join(
                    fmt_mean_std(c["mean"], c["std"], c["n"]) if c else "not run" for c in cells) + " |")
        return lines

    n_rec = len(have)
    lines = [
        "# Colored MNIST reproduction (vanilla / LfF / DisEnt)",
        "",
        "Test **unbiased accuracy** (%; mean over the 10×10 (digit, colour) cells of the uniformly coloured MNIST "
        "test set), mean ± sample std over seeds (n = number of finished seeds when not 3). Data: LfF protocol "
        "(severity 4, full MNIST), 1,000 training digits held out *before* colouring as a uniformly coloured "
        "`val_unbiased` split, then 10 % of every (digit, colour) cell of the coloured training pool held out as "
        "the *biased* validation split `val`. Budgets: vanilla 50k steps (DisEnt's 16-d MLP, lr 0.01), LfF 23.5k "
        "steps (100-d MLP, lr 1e-3), DisEnt 50k steps (lr 0.01, λ 10/10/1, curriculum 10k, StepLR 10k×0.5); "
        f"evaluated every 500 steps. Built by `benchmarks/cmnist_table.py` from {n_rec} committed run records "
        "(`benchmarks/results/records/cmnist/`).",
        "",
        "## Ours — honest selection (target labels of the biased validation split; worst-group and group-mean "
        "also read its bias labels)",
        "",
        *block("raw", HONEST),
        "",
        "`best_val_group_mean` (mean (digit, colour)-cell accuracy on the biased validation split) was added "
        "*after* this table was complete, because worst-group selection degenerates here: the biased split has "
        "one to a few samples per conflicting cell, so its worst cell is 0 % at almost every step. A rule added "
        "after seeing test results is optimistic on the seeds that suggested it; it is checked on three new "
        "seeds, trained after the rule was fixed, in `benchmarks/results/cmnist_confirm.md`.",
        "",
        "## Ours — selection that reads extra labels (kept apart)",
        "",
        "`best_val_unbiased` reads targets and bias labels of 1,000 uniformly coloured held-out training digits; "
        "the oracle selects on the **test** set (what the DisEnt code reports).",
        "",
        *block("raw", BIAS_LABELLED + ORACLE),
        "",
        "## Weight averaging (an addition of ours; evaluation only, training unchanged)",
        "",
        "The same runs, evaluating an exponential moving average of the weights (decay 0.999) at every "
        "evaluation (`train.weight_average: ema`, docs/concepts.md).",
        "",
        *block("ema", RULES),
        "",
    ]
    wall_text = "; ".join(f"{m} " + ", ".join(f"{100 * r:g} %: {walls[m][r]:.0f}" for r in RATIOS if r in walls[m])
                          for m in METHODS if walls[m])
    lines += [f"Mean wall time per run (s, on a shared 2-core machine): {wall_text}" if wall_text
              else "No finished runs yet.", ""]
    if impls:
        lines += ["Optimiser implementation (`train.optimizer_impl`; rounding-level differences only, docs/performance.md): "
                  + ", ".join(f"{k} {v} runs" for k, v in sorted(impls.items())) + ".", ""]
    # gap of the best honest rule to the paper and to our oracle (DisEnt)
    gaps = []
    for r in RATIOS:
        for w in WEIGHTS:
            cells = {rule: ours.get(w, {}).get("disent", {}).get(rule, {}).get(r) for rule in RULES}
            honest = {k: v for k, v in cells.items() if k in HONEST and v}
            if not honest:
                continue
            best_rule, best = max(honest.items(), key=lambda kv: kv[1]["mean"])
            oracle = cells.get("oracle_test")
            gaps.append({"ratio": r, "weights": w, "best_honest_rule": best_rule, "best_honest": best["mean"],
                         "paper": PAPER_DISENT[r], "gap_to_paper": best["mean"] - PAPER_DISENT[r],
                         "oracle": oracle["mean"] if oracle else None,
                         "gap_to_oracle": best["mean"] - oracle["mean"] if oracle else None,
                         "target": TARGETS["disent"][r], "target_met": best["mean"] >= TARGETS["disent"][r]})
    if gaps:
        lines += ["## DisEnt: best honest rule vs the paper and our oracle", "",
                  "| ratio | weights | best honest rule | ours | paper (test-selected) | gap | our oracle | gap | target |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for g in gaps:
            orc = "–" if g["oracle"] is None else f"{g['oracle']:.2f}"
            gor = "–" if g["gap_to_oracle"] is None else f"{g['gap_to_oracle']:+.2f}"
            lines.append(f"| {100 * g['ratio']:g} % | {g['weights']} | {g['best_honest_rule']} | {g['best_honest']:.2f} | "
                         f"{g['paper']:.2f} | {g['gap_to_paper']:+.2f} | {orc} | {gor} | "
                         f"≥ {g['target']} {'met' if g['target_met'] else 'NOT met'} |")
        lines.append("")
    lines += ["## Earlier measurement (previous protocol, not from records)", "",
              "Before the records existed, the 1 % column was measured once with the same budgets but without the "
              "`val_unbiased` hold-out (the training pool had 1,000 more digits), at `last`: vanilla 49.19 ± 4.58, "
              "LfF 69.98 ± 1.02, DisEnt 72.60 ± 9.98 (seeds 74.08 / 61.97 / 81.76); oracle DisEnt 75.55 ± 7.43. "
              "Those run directories were not kept, so these numbers cannot be re-selected.", ""]
    lines += ["## Published", "", "Sources: docs/methods_lff_disent.md, \"Published numbers and their sources\".", "",
              "| method | source | " + " | ".join(f"{100 * r:g} %" for r in RATIOS) + " |",
              "|---|---|" + "---|" * len(RATIOS)]
    for p in PUBLISHED:
        lines.append(f"| {p['method']} | {p['source']} | " + " | ".join(
            fmt_mean_std(*p["values"][r]) for r in RATIOS) + " |")
    lines += ["", "Issue targets (mean of 3 seeds, honest selection): " + "; ".join(
        f"{m} ≥ " + " / ".join(str(TARGETS[m][r]) for r in RATIOS) for m in TARGETS) + ".", "",
        "Metric note: LfF reports the mean over (target, bias) cells, DisEnt plain test accuracy; on this test "
        "set (uniform colours, near-equal cells) the two differ by well under a point. The DisEnt paper's numbers "
        "are best-of-100 *test* evaluations — compare them with our oracle rows.", ""]
    status = []
    if runs is not None:
        lines += ["## Grid cells", "", "| run | status | steps done / total |", "|---|---|---|"]
        for run in runs:
            st = {"status": "recorded"} if run.record is not None else cell_status(run.run_dir)
            status.append({"key": run.key, "run_key": run.run_key, **st})
            done = run.config["hparams"]["steps"] if st["status"] in ("recorded", "done") else st.get("last_eval_step", 0)
            lines.append(f"| {run.key} | {st['status']} | {done} / {run.config['hparams']['steps']} |")
    md = "\n".join(lines) + "\n"
    payload = {
        "debiaskit_version": __version__,
        "metric": "test unbiased_accuracy (%)",
        "ratios": list(RATIOS),
        "rules": {"honest": list(HONEST), "bias_labelled": list(BIAS_LABELLED), "oracle": list(ORACLE)},
        "ours": {w: {m: {rule: {str(r): v for r, v in d.items()} for rule, d in rules.items()}
                     for m, rules in per.items()} for w, per in ours.items()},
        "wall_time_s_mean": {m: {str(r): v for r, v in walls[m].items()} for m in METHODS},
        "optimizer_impl_runs": impls,
        "disent_gaps": gaps,
        "published": [{**p, "values": {str(r): {"mean": v[0], "std": v[1]} for r, v in p["values"].items()}}
                      for p in PUBLISHED],
        "targets": {m: {str(r): v for r, v in t.items()} for m, t in TARGETS.items()},
        "n_records": n_rec,
        "cells": status,
    }
    from debiaskit.io import write_json, write_text

    out_dir.mkdir(parents=True, exist_ok=True)
    write_text(out_dir / "cmnist.md", md)
    write_json(out_dir / "cmnist.json", payload)
    return payload


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweep", default=str(HERE / "cmnist_sweep.yaml"))
    ap.add_argument("--records", default=str(RECORDS), help="run records folder (read, and written by --train)")
    ap.add_argument("--runs", default=str(HERE / "runs" / "cmnist"), help="sweep directory for run directories")
    ap.add_argument("--results", default=str(HERE / "results"), help="where cmnist.md / cmnist.json go")
    ap.add_argument("--train", action="store_true", help="train the pending cells first (else only rebuild tables)")
    ap.add_argument("--ratios", default=None, help="comma-separated subset, e.g. 0.01")
    ap.add_argument("--seeds", default=None, help="comma-separated subset, e.g. 0,1")
    ap.add_argument("--methods", default=None, help="comma-separated subset, e.g. lff,disent")
    ap.add_argument("--jobs", type=int, default=1, help="runs in parallel processes")
    ap.add_argument("--threads", type=int, default=None, help="torch threads per run (default: thread policy)")
    ap.add_argument("--data-dir", default=None, help="directory with the MNIST idx files (else $DEBIASKIT_DATA)")
    args = ap.parse_args(argv)
    from debiaskit.errors import DebiaskitError
    from debiaskit.experiments.sweep import expand_sweep, load_sweep, run_sweep

    try:
        spec = load_sweep(args.sweep)
        all_runs = expand_sweep(spec, args.runs, records=args.records)
        if args.train:
            data_dir = args.data_dir or os.environ.get("DEBIASKIT_DATA")
            if not data_dir:
                raise DebiaskitError("set DEBIASKIT_DATA (or --data-dir) to the directory with the full MNIST files")
            sel = expand_sweep(spec, args.runs, ratios=parse_list(args.ratios, float), seeds=parse_list(args.seeds, int),
                               methods=parse_list(args.methods, str), records=args.records, data_dir=data_dir)
            run_sweep(sel, args.runs, jobs=args.jobs, threads=args.threads)
        payload = build_tables(Path(args.records), Path(args.results), all_runs)
    except DebiaskitError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{payload['n_records']}/{len(all_runs)} grid cells recorded; wrote {args.results}/cmnist.md and cmnist.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
