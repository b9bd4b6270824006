"""``debiaskit sweep`` (run a grid of runs) and ``debiaskit collect`` (aggregate their results)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from debiaskit.commands.argtypes import (
    comma_list,
    non_negative_float,
    non_negative_int,
    open_unit_float,
    positive_float,
    positive_int,
    seconds_arg,
    threads_arg,
)
from debiaskit.experiments.backends import execute_sweep
from debiaskit.experiments.collect import collect, format_table
from debiaskit.experiments.sweep import expand_sweep, load_sweep
from debiaskit.experiments.tracking import add_tracker_arguments, mirror_runs
from debiaskit.io import write_text
from debiaskit.report.html import write_report


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="run a grid of training runs (resumable)",
                       description="Run datasets x ratios x methods x seeds from a sweep YAML file. Finished runs "
                                   "are skipped, interrupted ones resumed.")
    p.add_argument("file", help="sweep YAML file (see docs/methods_lff_disent.md)")
    p.add_argument("--out", default=None, help="sweep directory (default: sweeps/<name of the file>)")
    p.add_argument("--jobs", type=positive_int, default=None,
                   help="local: runs in parallel processes (default 1); ray: at most this many runs at once "
                        "(default: as many as the cluster's resources allow)")
    p.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="local processes (default) or Ray tasks on this machine or a Ray cluster (docs/scaling.md)")
    p.add_argument("--address", default=None,
                   help="ray: the cluster to join: auto, HOST:PORT or ray://HOST:10001 (default: start Ray here)")
    p.add_argument("--cpus-per-run", type=positive_float, default=None, help="ray: CPUs each run reserves (default 1)")
    p.add_argument("--gpus-per-run", type=non_negative_float, default=None,
                   help="ray: GPUs each run reserves, fractions share a GPU (default 0)")
    p.add_argument("--threads", type=threads_arg, default=None,
                   help="torch threads per run: a positive integer or auto (default auto: $DEBIASKIT_NUM_THREADS or "
                        "cores/jobs)")
    p.add_argument("--ratios", type=comma_list(open_unit_float, "numbers in (0, 1)"), default=None,
                   help="only these ratios of the grid, e.g. 0.01")
    p.add_argument("--seeds", type=comma_list(non_negative_int, "non-negative integers"), default=None,
                   help="only these seeds of the grid, e.g. 0,1")
    p.add_argument("--methods", default=None, help="only these methods of the grid, e.g. lff,disent")
    p.add_argument("--records", default=None, metavar="DIR",
                   help="run records folder: skip cells recorded there (same run key), export a record per finished run")
    p.add_argument("--data-dir", default=None, help="raw data directory for every run (else $DEBIASKIT_DATA)")
    p.add_argument("--dry-run", action="store_true", help="list the runs and their directories, train nothing")
    p.add_argument("--wait-lock", nargs="?", type=seconds_arg, const=math.inf, default=None, metavar="SECONDS",
                   help="local: a run another process is training is retried after the other runs, waiting for that "
                        "process (at most SECONDS per run; no value: no limit) instead of being skipped")
    add_tracker_arguments(p)  # --tracker tensorboard|mlflow, --tracker-uri (debiaskit.experiments.tracking)
    p.set_defaults(func=run_sweep_cmd)

    c = sub.add_parser("collect", help="aggregate finished runs (run directories or records) into mean ± std tables",
                       description="Aggregate every finished run under PATH (run directories with result.json and "
                                   "metrics.jsonl, and run record files) into mean ± std over seeds, per "
                                   "(dataset, ratio, method) and selection rule. Any registered rule can be "
                                   "applied after training.")
    c.add_argument("dir", nargs="+", help="sweep directories, records folders, run directories or record files")
    c.add_argument("--selection", default=None, metavar="RULE[,RULE...]",
                   help="selection rules to apply (default: those the runs were trained with); "
                        "see `debiaskit methods rules`")
    c.add_argument("--format", choices=("md", "csv", "json"), default="md")
    c.add_argument("--metric", default="unbiased_accuracy", help="metric to aggregate (default unbiased_accuracy)")
    c.add_argument("--split", default="test", help="split the metric is read on (default test)")
    c.add_argument("--weights", default="raw", help="raw (default) or ema: evaluate the averaged weights' rows")
    c.add_argument("--output", default=None, help="write to this file instead of stdout")
    c.add_argument("--html", default=None, metavar="FILE",
                   help="also write the HTML report (docs/report.md) to FILE (default with --output: next to it, "
                        "same name with .html)")
    c.add_argument("--no-html", action="store_true", help="write no HTML report")
    c.set_defaults(func=run_collect_cmd)


def run_sweep_cmd(args: argparse.Namespace) -> int:
    spec = load_sweep(args.file)
    out = Path(args.out) if args.out else Path("sweeps") / (str(spec.get("name") or Path(args.file).stem))
    threads = None if args.threads == "auto" else args.threads
    methods = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else None
    runs = expand_sweep(spec, out, ratios=args.ratios, seeds=args.seeds, methods=methods, records=args.records,
                        data_dir=args.data_dir)
    if args.dry_run:
        for r in runs:
            where = " (recorded)" if r.records_dir is not None and r.record is not None else ""
            print(f"{'done   ' if r.done else 'pending'} {r.run_dir}{where}")
        return 0

    kw = {"wait_lock": args.wait_lock} if args.wait_lock is not None else {}
    follow = [(r.key, r.run_dir, r.config) for r in runs if not r.done]  # optional tracker mirror of metrics.jsonl
    with mirror_runs(args.tracker, follow, uri=args.tracker_uri, experiment=str(spec.get("name") or out.name)):
        manifest = execute_sweep(runs, out, backend=args.backend, jobs=args.jobs, threads=threads,
                                 address=args.address, cpus_per_run=args.cpus_per_run, gpus_per_run=args.gpus_per_run,
                                 **kw)
    print(f"sweep directory: {out}")
    return 1 if manifest.get("n_failed") else 0


def run_collect_cmd(args: argparse.Namespace) -> int:
    selection = [s.strip() for s in args.selection.split(",") if s.strip()] if args.selection else None
    table = collect(args.dir, selection=selection, metric=args.metric, split=args.split, weights=args.weights)
    text = format_table(table, fmt=args.format)
    if args.output:
        write_text(args.output, text)
    else:
        print(text, end="" if text.endswith("\n") else "\n")
    html = args.html or (str(Path(args.output).with_suffix(".html")) if args.output else None)
    if html and not args.no_html and html != args.output:
        import sys

        out = write_report(args.dir, html, selection=selection, metric=args.metric)
        print(f"wrote {out}", file=sys.stderr)
    return 0
