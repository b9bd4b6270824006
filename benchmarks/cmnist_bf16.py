"""Does bfloat16 autocast keep Colored MNIST accuracy within seed noise? (docs/performance.md)

Compares the run records of ``benchmarks/cmnist_bf16_sweep.yaml`` (the table's grid with ``train.amp: bf16``)
with the float32 records of the same cells (``benchmarks/cmnist_sweep.yaml``), seed by seed: same data, same
seed, same budget, only the autocast differs. For every selection rule and both weight sets (raw, EMA) it
reports the float32 and bf16 means ± sample std over seeds and the paired difference (bf16 − float32) with its
standard error. *Within noise* means: the mean paired difference is smaller than the float32 seed-to-seed
standard deviation **and** at most two standard errors of the paired difference.

Speed is not measured here (the runs share a loaded machine); it comes from ``benchmarks/train_speed.py --amp
none,bf16`` (``benchmarks/results/train_speed_bf16.json``), quoted in the output when present.

Usage::

    DEBIASKIT_NUM_THREADS=1 debiaskit sweep benchmarks/cmnist_bf16_sweep.yaml --ratios 0.01 --methods disent \\
        --records benchmarks/results/records/cmnist_bf16 --data-dir ../shared/data
    python benchmarks/cmnist_bf16.py        # writes benchmarks/results/cmnist_bf16.md / .json
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path
from typing import Any

from cmnist_table import METHODS, RATIOS, RULES, WEIGHTS, _cells

HERE = Path(__file__).resolve().parent
FP32 = HERE / "results" / "records" / "cmnist"
BF16 = HERE / "results" / "records" / "cmnist_bf16"


def _per_seed(records: Path, weights: str) -> dict[tuple[str, str, float], dict[int, float]]:
    """(method, rule, ratio) -> {seed: unbiased accuracy %} from the records in ``records``."""
    from debiaskit.experiments.collect import collect

    table = collect([records], selection=list(RULES), weights=weights)
    out: dict[tuple[str, str, float], dict[int, float]] = {}
    for m, rules in _cells(table).items():
        for rule, by_ratio in rules.items():
            for ratio, cell in by_ratio.items():
                out[(m, rule, ratio)] = dict(zip(cell["seeds"], cell["values"]))
    return out


def _mean_std(xs: list[float]) -> tuple[float, float]:
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else float("nan"))


def compare(fp32: Path, bf16: Path) -> dict[str, Any]:
    rows = []
    for w in WEIGHTS:
        a, b = _per_seed(fp32, w), _per_seed(bf16, w)
        for key in sorted(b, key=lambda k: (METHODS.index(k[0]), k[2], RULES.index(k[1]))):
            seeds = sorted(set(a.get(key, {})) & set(b[key]))
            if not seeds:
                continue
            xa = [a[key][s] for s in seeds]
            xb = [b[key][s] for s in seeds]
            diff = [y - x for x, y in zip(xa, xb)]
            ma, sa = _mean_std(xa)
            mb, sb = _mean_std(xb)
            md, sd = _mean_std(diff)
            se = sd / math.sqrt(len(diff)) if len(diff) > 1 else float("nan")
            within = len(diff) > 1 and abs(md) <= sa and abs(md) <= 2 * se
            rows.append({"method": key[0], "rule": key[1], "ratio": key[2], "weights": w, "seeds": seeds,
                         "float32": xa, "bf16": xb, "float32_mean": ma, "float32_std": sa, "bf16_mean": mb,
                         "bf16_std": sb, "diff_mean": md, "diff_std": sd, "diff_se": se, "within_noise": within})
    return {"rows": rows}


def _fmt(m: float, s: float) -> str:
    return f"{m:.2f}" if math.isnan(s) else f"{m:.2f} ± {s:.2f}"


def _verdict(row: dict[str, Any]) -> str:
    if len(row["seeds"]) < 2:
        return "– (one seed)"
    return "yes" if row["within_noise"] else "no"


def render(payload: dict[str, Any], speed: dict[str, Any] | None) -> str:
    from debiaskit.train.selection import rule_label

    lines = ["# bfloat16 autocast on Colored MNIST: accuracy against float32, seed by seed", "",
             "Test unbiased accuracy (%) of the same cells (same data, seed and budget) trained with float32 and with "
             "`train.amp: bf16`; the bf16 runs come from `benchmarks/cmnist_bf16_sweep.yaml`, the float32 runs are "
             "the records of the main table (`benchmarks/results/cmnist.md`). Δ = bf16 − float32 per seed, mean ± "
             "std, SE = std/√n. *Within noise*: |mean Δ| ≤ float32 seed std and ≤ 2 SE. Built by "
             "`benchmarks/cmnist_bf16.py`.", "",
             "| method | ratio | weights | selection | seeds | float32 | bf16 | Δ | SE | within noise |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in payload["rows"]:
        lines.append(f"| {r['method']} | {100 * r['ratio']:g} % | {r['weights']} | {rule_label(r['rule'])} | "
                     f"{','.join(map(str, r['seeds']))} | {_fmt(r['float32_mean'], r['float32_std'])} | "
                     f"{_fmt(r['bf16_mean'], r['bf16_std'])} | {_fmt(r['diff_mean'], r['diff_std'])} | "
                     f"{'–' if math.isnan(r['diff_se']) else format(r['diff_se'], '.2f')} | {_verdict(r)} |")
    if not payload["rows"]:
        lines.append("| – | – | – | – | – | no bf16 records yet | | | | |")
    lines.append("")
    if speed:
        parts = []
        by = {(x["case"], x["amp"]): x["ms_per_step"] for x in speed.get("results", [])}
        for case in METHODS:
            if (case, "none") in by and (case, "bf16") in by:
                parts.append(f"{case} {by[(case, 'none')]:.2f} → {by[(case, 'bf16')]:.2f} ms/step "
                             f"({by[(case, 'none')] / by[(case, 'bf16')]:.2f}×)")
        cpu = speed.get("machine", {}).get("cpu_model", "?")
        lines += [f"Speed (one thread, idle, {cpu}; `benchmarks/results/train_speed_bf16.json`): " + "; ".join(parts)
                  + ".", ""]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fp32", default=str(FP32), help="float32 run records")
    ap.add_argument("--bf16", default=str(BF16), help="bf16 run records")
    ap.add_argument("--results", default=str(HERE / "results"))
    args = ap.parse_args(argv)
    from debiaskit.io import write_json, write_text

    for p in (args.fp32, args.bf16):
        if not Path(p).is_dir():
            print(f"error: no run records folder {p}", file=sys.stderr)
            return 2
    payload = compare(Path(args.fp32), Path(args.bf16))
    speed_file = Path(args.results) / "train_speed_bf16.json"
    speed = json.loads(speed_file.read_text()) if speed_file.is_file() else None
    out = Path(args.results)
    write_text(out / "cmnist_bf16.md", render(payload, speed))
    # strict JSON: undefined spreads (one seed) are null
    write_json(out / "cmnist_bf16.json", {"rows": [{k: (None if isinstance(v, float) and math.isnan(v) else v)
                                                   for k, v in r.items()} for r in payload["rows"]]})
    print(f"{len(payload['rows'])} rows; wrote {out}/cmnist_bf16.md and cmnist_bf16.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
