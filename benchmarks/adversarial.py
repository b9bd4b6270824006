"""Benchmark: adversarial debiasing (Wang et al. ICCV 2019) vs the bias-supervised baselines.

Datasets: Colored MNIST at 1 % and 5 % conflicting samples (protected = colour, 10 values) and
``celeba64_mini`` (targets Blond_Hair and Smiling, protected Male). Methods: vanilla, reweight, groupdro,
adversarial on two taps (CMNIST MLP: ``layers.0`` / ``features``; CelebA cnn64: ``conv4`` = layer3 /
``conv5`` = layer4, unpooled-flattened as the paper), adversarial_image.

Per run (the reported model = the trainer's default selection rule, best accuracy on the biased ``val``
split, i.e. early stopping on the task metric; identical for every method):

* task metric: unbiased test accuracy (CMNIST; the LfF test split is colour-uniform) or test AP of the
  positive-class probability (CelebA);
* DEO (|TPR_male − TPR_female| at the calibrated threshold from val, CelebA only: undefined for 10 classes)
  and BA (CelebA: CVPR 2021 binary form at that threshold; CMNIST: directional A→T BA of argmax
  predictions with the *training* labels as reference, because the test split is colour-balanced);
* λ_M: :func:`debiaskit.leakage.model_leakage` on the model's logits (attacker trained on the model's own
  *train* outputs, as the authors' λ_M; ``docs/leakage.md``; val/test = the val/test splits), λ_D(F1) from
  :func:`debiaskit.leakage.leakage_at_f1` on the test labels' perturbation curve read at the model's
  macro-F1, Δ = λ_M − λ_D(F1) (:func:`debiaskit.leakage.amplification`);
* wall time of training.

Results are appended to ``<out>/adversarial_runs.jsonl`` as they finish (resumable: finished entries are
skipped); ``--summarise`` (also done at the end) writes ``adversarial.json`` and ``adversarial.md``.
Use ``DEBIASKIT_NUM_THREADS`` / ``--threads`` (default 1) on shared CPUs.

Two configurations (``--budget``), each with its own runs files and tables:

* ``reduced`` (``adversarial_runs*.jsonl`` → ``adversarial_reduced.md/json``): CMNIST 600 steps, celeba64_mini at
  16 px / 400 steps, attackers 20 epochs × 2 rounds;
* ``full`` (``adversarial_full_runs*.jsonl`` → ``adversarial.md/json``): Colored MNIST at LfF's official budget for
  its 100-d MLP (Adam 1e-3, batch 256, 23,500 steps, evaluated every 500 steps, checkpoints every 2,500 so an
  interrupted run resumes from its run directory in ``--workdir``), attackers at the paper's 100 epochs × 5
  rounds. ``--methods`` restricts the variants (``adversarial_image`` at this budget: about 40 min of CPU per run, ``benchmarks/adversarial_image_speed.py``).

Examples::

    python benchmarks/adversarial.py --datasets cmnist --tag _cmnist &        # reduced
    python benchmarks/adversarial.py --datasets celeba --tag _celeba &
    python benchmarks/adversarial.py --budget full --datasets cmnist \
        --methods vanilla,reweight,groupdro,adversarial@layers.0,adversarial@features --tag _a
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]


def method_variants(dataset: str, args: argparse.Namespace) -> list[tuple[str, str, dict[str, Any]]]:
    """(label, method, extra hparams) per dataset."""
    if dataset == "colored_mnist":
        taps = [("adversarial@layers.0", "layers.0"), ("adversarial@features", "features")]
        img = {"unet_depth": 2, "unet_ngf": args.unet_ngf}
    else:
        taps = [("adversarial@conv4", "conv4"), ("adversarial@conv5", "conv5")]
        img = {"unet_depth": 2, "unet_ngf": args.unet_ngf, "adv_model_kwargs": {"width": args.celeba_width}}
    variants = [
        ("vanilla", "vanilla", {}),
        ("reweight", "reweight", {}),
        ("groupdro", "groupdro", {}),
        *[(lab, "adversarial", {"tap": t, "tap_pool": "flatten", "adv_lambda": 1.0}) for lab, t in taps],
        ("adversarial_image", "adversarial_image", {"adv_lambda": 5.0, "l1_beta": 0.1, **img}),
    ]
    if args.methods:
        variants = [v for v in variants if v[0] in args.methods]
    return variants


def experiments(args: argparse.Namespace) -> list[dict[str, Any]]:
    out = []
    datasets = []
    if "cmnist" in args.datasets:
        for r in (0.01, 0.05):
            datasets.append(("colored_mnist", f"cmnist_{int(r * 100)}pct",
                             {"ratio": r, "data_dir": args.data_dir, "source": "data_dir"},
                             {"model": "mlp_lff", "lr": 1e-3, "batch_size": 256, "steps": args.cmnist_steps}))
    if "celeba" in args.datasets:
        for t in ("Blond_Hair", "Smiling"):
            datasets.append(("celeba64_mini", f"celeba_{t}",
                             {"target": t, "protected": "Male", "data_dir": args.data_dir, "size": args.celeba_size},
                             {"model": "cnn64", "model_kwargs": {"width": args.celeba_width}, "lr": 1e-3,
                              "batch_size": args.celeba_batch, "steps": args.celeba_steps}))
    for seed in args.seeds:
        for name, key, ds_opts, hp in datasets:
            for label, method, extra in method_variants(name, args):
                out.append({"key": f"{key}/{label}/seed{seed}", "setting": key, "dataset": name, "label": label,
                            "method": method, "seed": seed, "dataset_options": ds_opts, "hparams": {**hp, **extra}})
    return out


def _predict(cfg: dict[str, Any], run_dir: Path, rule: str) -> tuple[dict[str, np.ndarray], Any]:
    from debiaskit.train.evaluate import predict_logits
    from debiaskit.train.trainer import build_data, build_method

    splits = build_data(cfg)
    gen = torch.Generator().manual_seed(0)
    method = build_method(cfg, splits, torch.device("cpu"), gen)
    f = run_dir / f"model_{rule}.pt"
    method.load_state_dict(torch.load(f if f.exists() else run_dir / "model_last.pt", map_location="cpu", weights_only=False))
    logits = {s: predict_logits(method, splits[s], device=torch.device("cpu"), batch_size=1024).numpy() for s in splits}
    return logits, splits


def _metrics(exp: dict[str, Any], logits: dict[str, np.ndarray], splits: Any, curve_cache: dict, args) -> dict[str, Any]:
    from debiaskit.leakage import AttackerConfig, amplification, leakage_at_f1, macro_f1, model_leakage
    from debiaskit.metrics import (average_precision, bias_amplification_cvpr21, bias_amplification_directional,
                                   calibrated_threshold, deo)

    y = {s: splits[s].targets.numpy() for s in splits}
    g = {s: splits[s].bias.numpy() for s in splits}
    out: dict[str, Any] = {}
    if exp["dataset"] == "celeba64_mini":
        sc = {s: torch.softmax(torch.from_numpy(logits[s]), 1)[:, 1].numpy() for s in logits}
        out["task_metric"] = float(average_precision(y["test"], sc["test"]))
        out["task_metric_name"] = "test AP"
        thr = float(calibrated_threshold(y["val"], sc["val"]))
        pred = (sc["test"] > thr).astype(np.int64)
        out["deo"] = float(deo(y["test"], pred, sensitive_features=g["test"]))
        out["ba"] = float(bias_amplification_cvpr21(y["test"], pred, sensitive_features=g["test"]))
        out["ba_kind"] = "CVPR21 binary, calibrated threshold"
        f1_pred = pred
    else:
        pred = logits["test"].argmax(1)
        out["task_metric"] = float((pred == y["test"]).mean())  # test split is colour-uniform
        out["task_metric_name"] = "unbiased test accuracy"
        out["deo"] = None
        out["ba"] = float(bias_amplification_directional(y["test"], pred, sensitive_features=g["test"], direction="a->t",
                                                         sensitive_features_ref=g["train"], y_true_ref=y["train"]))
        out["ba_kind"] = "directional A->T, train labels as reference"
        f1_pred = pred
    if args.no_leakage:
        return out
    cfg = AttackerConfig(epochs=args.attacker_epochs, num_threads=args.threads)
    sizes = (args.leak_train, args.leak_eval, args.leak_eval)
    try:
        lm = model_leakage(logits["train"], g["train"], val=(logits["val"], g["val"]), test=(logits["test"], g["test"]),
                           multilabel=False, kind="logits", sizes=sizes, rounds=args.rounds, seed=exp["seed"], config=cfg)
        k = splits["test"].num_classes
        model_f1 = float(macro_f1(y["test"], f1_pred, multilabel=False))
        ck = (exp["setting"], exp["seed"])
        if ck not in curve_cache:
            grid = [0.35, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.99] if k == 2 else [0.5, 0.7, 0.8, 0.9, 0.95, 0.99]
            curve_cache[ck], _, _ = leakage_at_f1(y["train"], g["train"], val=(y["val"], g["val"]), test=(y["test"], g["test"]),
                                                  f1_grid=grid, num_classes=k, sizes=sizes, rounds=args.rounds,
                                                  seed=exp["seed"], config=cfg)
        amp = amplification(lm, curve_cache[ck], model_f1)
        out.update({"lambda_M": amp["lambda_M"], "lambda_M_std": amp["lambda_M_std"], "model_f1": model_f1,
                    "lambda_D_at_F1": amp["lambda_D_at_F1"], "delta": amp["delta"], "extrapolated": amp["extrapolated"]})
    except Exception as e:  # noqa: BLE001 - record, never lose the training result
        out["leakage_error"] = f"{type(e).__name__}: {e}"
    return out


def run_one(exp: dict[str, Any], args, curve_cache: dict) -> dict[str, Any]:
    from debiaskit.experiments.config import resolve_config
    from debiaskit.train import run_training

    cfg = resolve_config({
        "seed": exp["seed"], "device": "cpu", "method": exp["method"],
        "dataset": {"name": exp["dataset"], **exp["dataset_options"]},
        "hparams": exp["hparams"],
        "train": {"eval_every": args.eval_every, "checkpoint_every": args.checkpoint_every, "progress": False},
    })
    run_dir = Path(args.workdir) / exp["key"].replace("/", "__")
    t0 = time.perf_counter()
    res = run_training(cfg, run_dir)
    wall = res.result["wall_time_s"]
    rule = res.result["reported_selection"]
    logits, splits = _predict(cfg, run_dir, rule)
    rec = {k: exp[k] for k in ("key", "setting", "dataset", "label", "method", "seed")}
    rec.update({"budget": args.budget, "train_wall_s": wall, "total_wall_s": None, "selection": rule,
                "attacker": {"epochs": args.attacker_epochs, "rounds": args.rounds,
                             "per_group": [args.leak_train, args.leak_eval, args.leak_eval]},
                "run_key": res.result.get("run_key"), "optimizer_impl": res.result.get("optimizer_impl"),
                "selected_step": res.result["selection"].get(rule, {}).get("step"),
                "labels_consumed": res.result["labels_consumed"], "steps": res.result["steps"],
                "hparams": exp["hparams"], "dataset_options": {k: v for k, v in exp["dataset_options"].items() if k != "data_dir"},
                "data_fingerprint": res.result["data"]["fingerprint"], "debiaskit_version": res.result["debiaskit_version"]})
    rec.update(_metrics(exp, logits, splits, curve_cache, args))
    if exp["method"] == "adversarial_image":
        rec["mask_grid"] = str(run_dir / "mask_grid.png") if (run_dir / "mask_grid.png").exists() else None
    rec["total_wall_s"] = time.perf_counter() - t0
    return rec


def _fmt(vals: list[float], scale: float = 100.0, digits: int = 1) -> str:
    v = [x for x in vals if x is not None and not (isinstance(x, float) and math.isnan(x))]
    if not v:
        return "n/a"
    m = float(np.mean(v)) * scale
    if len(v) == 1:
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} ± {float(np.std(v)) * scale:.{digits}f}"


def runs_prefix(budget: str) -> str:
    return "adversarial_runs" if budget == "reduced" else "adversarial_full_runs"


def table_stem(budget: str) -> str:
    return "adversarial_reduced" if budget == "reduced" else "adversarial"


REDUCED_HEADER = [
    "**Reduced configuration** (the script defaults; a shared 2-core CPU): Colored MNIST `mlp_lff`, 600 steps",
    "(LfF: 23,500), batch 256, Adam 1e-3; celeba64_mini down-sampled to **16×16 px** (`size=16`), `cnn64` width 16,",
    "batch 64, 400 steps, Adam 1e-3. `adversarial`: λ = 1 (constant), unpooled-flattened taps, adversary 3×300,",
    "protected-balanced batches. `adversarial_image`: λ = 5, β = 0.1, U-Net ngf 8 / depth 2, schedule 30 % pre-train",
    "/ 30 % mask-only / 40 % fine-tune, adversary = the task architecture. Reported model of every run: best",
    "accuracy on the biased val split (early stopping on the task metric). Leakage attackers: 20 epochs (paper",
    "100), 2 rounds (paper 5), 200 / 100 / 100 samples per protected group for train / val / test. Seeds: as listed",
    "per row (runs that did not finish before the deadline are absent).",
]
def full_header(args) -> list[str]:
    return [
        "**Full budget** (`--budget full`): Colored MNIST (LfF protocol data, severity 4, full MNIST) at 1 % and 5 %",
        f"conflicting samples, LfF's 100-d MLP (`mlp_lff`), Adam 1e-3, batch 256, **{args.cmnist_steps:,} steps** (LfF's",
        f"official budget: 23,500), evaluated every {args.eval_every} steps. `adversarial`: λ = 1 (constant),",
        "unpooled-flattened taps, adversary 3×300, protected-balanced batches. Reported model of every run: best",
        "accuracy on the biased val split (the trainer's default rule; no bias labels and no test data consumed by",
        f"the selection). Leakage attackers: **{args.attacker_epochs} epochs, {args.rounds} rounds** (the paper: 100, 5),",
        f"{args.leak_train} / {args.leak_eval} / {args.leak_eval} samples per protected group for train / val / test.",
        "`adversarial_image` costs about 40 min of compute per run at 23,500 steps on one CPU core",
        "(`benchmarks/adversarial_image_speed.py`: U-Net stage 215 ms/step, fine-tuning 83 ms, pre-training 12 ms;",
        "schedule mean 101 ms on an AMD EPYC core; 35-73 min wall per run here, the longer ones beside two other trainings).",
        "Seeds: as listed per row (cells still running when the table was written are absent or have fewer seeds).",
    ]


def summarise(out_dir: Path, args) -> None:
    by_key = {}
    for f in sorted(out_dir.glob(f"{runs_prefix(args.budget)}*.jsonl")):
        for line in f.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                by_key.setdefault(r["key"], r)  # first record of a key wins (parallel processes may repeat one)
    runs = list(by_key.values())
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in runs:
        groups.setdefault((r["setting"], r["label"]), []).append(r)
    table = []
    for (setting, label), rs in groups.items():
        table.append({
            "setting": setting, "method": label, "seeds": sorted(r["seed"] for r in rs), "n": len(rs),
            "task_metric_name": rs[0]["task_metric_name"],
            **{f"{k}_mean": (float(np.mean([r[k] for r in rs if r.get(k) is not None])) if any(r.get(k) is not None for r in rs) else None)
               for k in ("task_metric", "deo", "ba", "lambda_M", "lambda_D_at_F1", "delta", "train_wall_s")},
            **{f"{k}_std": (float(np.std([r[k] for r in rs if r.get(k) is not None])) if any(r.get(k) is not None for r in rs) else None)
               for k in ("task_metric", "deo", "ba", "lambda_M", "lambda_D_at_F1", "delta", "train_wall_s")},
        })
    from debiaskit import __version__
    from debiaskit.io import write_json, write_text

    stem = table_stem(args.budget)
    # the table merges the runs files of several training commands: keep every one (a rebuild adds none)
    commands: list[str] = []
    if (out_dir / f"{stem}.json").is_file():
        meta_before = json.loads((out_dir / f"{stem}.json").read_text()).get("meta", {})
        commands = list(meta_before.get("commands") or [meta_before.get("command", "")])
    if not args.summarise:
        commands.append(" ".join(sys.argv))
    commands = [c for c in dict.fromkeys(commands) if c and "--summarise" not in c.split()]
    meta = {"commands": commands, "debiaskit_version": __version__, "torch_version": torch.__version__,
            "threads": args.threads, "n_runs": len(runs)}
    write_json(out_dir / f"{stem}.json", {"meta": meta, "summary": table, "runs": runs})
    title = ("Adversarial debiasing vs bias-supervised baselines (reduced CPU configuration)" if args.budget == "reduced"
             else "Adversarial debiasing vs bias-supervised baselines (full training and attacker budgets)")
    lines = [
        f"# {title}", "",
        "Commands: " + "; ".join(f"`{c}`" for c in meta["commands"])
        + f" (debiaskit {__version__}, torch {torch.__version__}, CPU, {args.threads} thread).",
        f"Generated by `benchmarks/adversarial.py`; per-run records in `{stem}.json`.", "",
        "Values are mean ± population std over the seeds listed, ×100 except wall time (s). Task metric: unbiased",
        "test accuracy (Colored MNIST), test AP (celeba64_mini). DEO and BA at the calibrated threshold (CelebA);",
        "CMNIST BA = directional A→T with training labels as reference (DEO undefined for 10 classes).",
        "λ_M = leakage of the protected attribute from the model's logits (attacker on the model's train outputs,",
        "balanced subsets); λ_D(F1) = leakage of test-quality-matched perturbed ground truth; Δ = λ_M − λ_D(F1).",
        "Chance leakage: 50 (CelebA, Male), 10 (CMNIST, 10 colours).", "",
        *(REDUCED_HEADER if args.budget == "reduced" else full_header(args)), "",
        "| setting | method | seeds | task metric | DEO | BA | λ_M | λ_D(F1) | Δ | train wall (s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    order = {lab: i for i, lab in enumerate(["vanilla", "reweight", "groupdro", "adversarial@layers.0", "adversarial@features",
                                             "adversarial@conv4", "adversarial@conv5", "adversarial_image"])}
    for row in sorted(table, key=lambda r: (r["setting"], order.get(r["method"], 99))):
        rs = groups[(row["setting"], row["method"])]
        col = lambda k, s=100.0: _fmt([r.get(k) for r in rs], s)  # noqa: E731
        lines.append(f"| {row['setting']} | {row['method']} | {','.join(map(str, row['seeds']))} | {col('task_metric')} | "
                     f"{col('deo')} | {col('ba')} | {col('lambda_M')} | {col('lambda_D_at_F1')} | {col('delta')} | "
                     f"{_fmt([r['train_wall_s'] for r in rs], 1.0, 0)} |")
    errs = [f"- {r['key']}: {r['leakage_error']}" for r in runs if r.get("leakage_error")]
    if errs:
        lines += ["", "Leakage errors (λ_M/Δ missing for these runs):", *errs]
    findings = out_dir / f"{stem}.findings.md"
    if findings.exists():
        lines += ["", findings.read_text().rstrip()]
    write_text(out_dir / f"{stem}.md", "\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    p.add_argument("--workdir", default=None,
                   help="run directories (reduced: /tmp/debiaskit-bench-adversarial, full: benchmarks/runs/adversarial)")
    p.add_argument("--data-dir", default=os.environ.get("DEBIASKIT_DATA", str(REPO.parent / "shared" / "data")))
    p.add_argument("--budget", choices=["reduced", "full"], default="reduced",
                   help="reduced: the quick CPU table; full: LfF's training budget and the paper's attacker budget")
    p.add_argument("--methods", default=None, type=lambda s: [x for x in s.split(",") if x],
                   help="comma-separated variant labels to run (default: all)")
    p.add_argument("--checkpoint-every", type=int, default=None)
    p.add_argument("--datasets", nargs="+", default=["cmnist", "celeba"], choices=["cmnist", "celeba"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--cmnist-steps", type=int, default=None, help="reduced: 600, full: 23500")
    p.add_argument("--celeba-steps", type=int, default=400)
    p.add_argument("--celeba-size", type=int, default=16)
    p.add_argument("--celeba-width", type=int, default=16, help="cnn64 width (task net and image adversary)")
    p.add_argument("--celeba-batch", type=int, default=64)
    p.add_argument("--unet-ngf", type=int, default=8)
    p.add_argument("--tag", default="", help="runs file suffix (parallel benchmark processes)")
    p.add_argument("--eval-every", type=int, default=None, help="reduced: 100, full: 500")
    p.add_argument("--attacker-epochs", type=int, default=None, help="reduced: 20, full: 100 (the paper)")
    p.add_argument("--rounds", type=int, default=None, help="reduced: 2, full: 5 (the paper)")
    p.add_argument("--leak-train", type=int, default=200, help="attacker train samples per protected group")
    p.add_argument("--leak-eval", type=int, default=100, help="attacker val/test samples per protected group")
    p.add_argument("--no-leakage", action="store_true")
    p.add_argument("--only", default=None, help="substring filter on run keys")
    p.add_argument("--threads", type=int, default=int(os.environ.get("DEBIASKIT_NUM_THREADS", "1")))
    p.add_argument("--summarise", action="store_true", help="only rebuild adversarial.md/.json from the runs file")
    args = p.parse_args(argv)
    preset = {"reduced": {"cmnist_steps": 600, "eval_every": 100, "attacker_epochs": 20, "rounds": 2,
                          "checkpoint_every": 10**9, "workdir": "/tmp/debiaskit-bench-adversarial"},
              "full": {"cmnist_steps": 23500, "eval_every": 500, "attacker_epochs": 100, "rounds": 5,
                       "checkpoint_every": 2500, "workdir": str(REPO / "benchmarks" / "runs" / "adversarial")}}[args.budget]
    for k, v in preset.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.budget == "full" and "celeba" in args.datasets:
        p.error("--budget full covers Colored MNIST only (celeba64_mini at 64 px is a GPU job); use --datasets cmnist")
    torch.set_num_threads(args.threads)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    runs_file = out_dir / f"{runs_prefix(args.budget)}{args.tag}.jsonl"
    if args.summarise:
        summarise(out_dir, args)
        return
    done = set()
    for f in out_dir.glob(f"{runs_prefix(args.budget)}*.jsonl"):
        done |= {json.loads(l)["key"] for l in f.read_text().splitlines() if l.strip()}
    curve_cache: dict = {}
    from debiaskit.io import append_jsonl

    for exp in experiments(args):
        if exp["key"] in done or (args.only and args.only not in exp["key"]):
            continue
        t = time.perf_counter()
        try:
            rec = run_one(exp, args, curve_cache)
        except Exception:  # noqa: BLE001 - keep going, report the failure
            print(f"FAILED {exp['key']}\n{traceback.format_exc()}", flush=True)
            continue
        append_jsonl(runs_file, rec)
        print(f"{exp['key']}: {rec['task_metric_name']}={rec['task_metric']:.4f} lambda_M={rec.get('lambda_M')} "
              f"delta={rec.get('delta')} ({time.perf_counter() - t:.0f}s)", flush=True)
        summarise(out_dir, args)


if __name__ == "__main__":
    main()
