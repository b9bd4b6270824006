"""``debiaskit train``: one training run into a run directory."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from debiaskit.commands.argtypes import non_negative_int, open_unit_float, positive_int, seconds_arg, threads_arg
from debiaskit.commands.methods import dataset_choices_help, method_choices_help
from debiaskit.experiments.config import apply_overrides, load_config_file, resolve_config
from debiaskit.experiments.records import export_record
from debiaskit.experiments.tracking import add_tracker_arguments, mirror_runs
from debiaskit.report.tables import format_run_summary
from debiaskit.train.trainer import run_training


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train one method on one dataset", description="Train one method on one dataset.")
    p.add_argument("--config", help="YAML run config (see docs/cli.md); flags below override it")

    p.add_argument("--dataset", help=dataset_choices_help())
    p.add_argument("--ratio", type=open_unit_float, help="bias-conflicting ratio of the training set, in (0, 1)")
    p.add_argument("--data-dir", help="directory with the raw data (else $DEBIASKIT_DATA)")
    p.add_argument("--method", help=method_choices_help())
    p.add_argument("--seed", type=non_negative_int, help="random seed (default 0)")
    p.add_argument("--steps", type=positive_int, help="number of optimisation steps")
    p.add_argument("--device", help="auto | cpu | cuda[:N] (default auto)")
    p.add_argument("--augment", metavar="DIR", help="augmentation directory from `debiaskit augment` (method latent_aug)")
    p.add_argument("--select", help="comma-separated model-selection rules whose weights are kept (e.g. "
                   "last,best_val_accuracy,oracle_test); any rule can still be applied later with `debiaskit collect`")
    p.add_argument("--threads", type=threads_arg, help="intra-op threads: a positive integer or auto (default: auto, "
                   "see docs/concepts.md)")
    p.add_argument("--records", metavar="DIR", help="also export the finished run's record to DIR")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key, e.g. --set hparams.lr=0.01 --set dataset.severity=3")
    p.add_argument("--out", required=True, help="run directory (created; an interrupted run there is resumed)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_tracker_arguments(p)  # --tracker tensorboard|mlflow, --tracker-uri (debiaskit.experiments.tracking)
    p.add_argument("--wait-lock", nargs="?", type=seconds_arg, const=math.inf, default=None, metavar="SECONDS",
                   help="if another process is training this run directory, wait for it (at most SECONDS; no "
                        "value: no limit) instead of failing; a run it finished is then shown as done")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> dict[str, Any]:
    raw: dict[str, Any] = load_config_file(args.config) if args.config else {}
    ds = raw.get("dataset") or {}
    if isinstance(ds, str):
        ds = {"name": ds}
    ds = dict(ds)
    if args.dataset:
        if ds.get("name") and ds["name"] != args.dataset:
            ds = {}
        ds["name"] = args.dataset
    if args.ratio is not None:
        ds["ratio"] = args.ratio
    if args.data_dir:
        ds["data_dir"] = args.data_dir
    raw["dataset"] = ds
    if args.method:
        raw["method"] = args.method
    if args.seed is not None:
        raw["seed"] = args.seed
    if args.device:
        raw["device"] = args.device
    if args.steps is not None:
        raw.setdefault("hparams", {})["steps"] = args.steps
    if args.augment:
        raw.setdefault("hparams", {})["augment"] = args.augment
    if args.select:
        raw.setdefault("train", {})["selection"] = [s.strip() for s in args.select.split(",") if s.strip()]
    if getattr(args, "threads", None) is not None:
        raw.setdefault("train", {})["threads"] = args.threads
    if getattr(args, "no_progress", False):
        raw.setdefault("train", {})["progress"] = False
    raw = apply_overrides(raw, args.set)
    return resolve_config(raw)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    out = Path(args.out)
    follow = [] if (out / "result.json").exists() else [(out.resolve().name, out, cfg)]  # a finished run: not again
    with mirror_runs(args.tracker, follow, uri=args.tracker_uri):  # optional tracker mirror of metrics.jsonl
        res = run_training(cfg, args.out, wait_lock=args.wait_lock)
    if res.already_done:
        print(f"{args.out}: this run has already finished (result.json exists); showing its result")
    elif res.resumed_from:
        print(f"resumed from step {res.resumed_from}")
    print(format_run_summary(res.result))
    if args.records:
        print(f"record: {export_record(args.out, args.records)}")
    print(f"run directory: {args.out}")
    return 0
