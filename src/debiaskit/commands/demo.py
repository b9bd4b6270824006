"""``debiaskit demo``: the main job on the embedded default (Colored MNIST, 1 % conflicting)."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from debiaskit.report.tables import markdown_table

DEMO_METHODS = ["vanilla"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="train on Colored MNIST (1%% conflicting) and show how biased the model is")
    p.add_argument("--steps", type=int, default=None, help="steps per method (default: a few minutes on 2 CPU cores)")
    p.add_argument("--methods", default=",".join(DEMO_METHODS), help="comma-separated methods to compare")
    p.add_argument("--data-dir", help="MNIST idx files (else $DEBIASKIT_DATA, ../shared/data, then offline fallbacks)")
    p.add_argument("--out", help="where to keep the runs (default: a temporary directory)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def _default_data_dir() -> str | None:
    if os.environ.get("DEBIASKIT_DATA"):
        return None
    here = Path.cwd() / ".." / "shared" / "data"
    return str(here.resolve()) if (here / "mnist").is_dir() else None


def run(args: argparse.Namespace) -> int:
    from debiaskit.experiments.config import resolve_config
    from debiaskit.train.trainer import build_data, run_training

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    data_dir = args.data_dir or _default_data_dir()
    out_root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="debiaskit-demo-"))
    rows = []
    splits = None
    for m in methods:
        raw = {
            "seed": args.seed,
            "dataset": {"name": "colored_mnist", "ratio": 0.01, "data_dir": data_dir},
            "method": m,
            "hparams": {"steps": args.steps} if args.steps else {},
            "train": {"eval_every": 500},
        }
        cfg = resolve_config(raw)
        if args.steps is None:
            cfg["hparams"]["steps"] = DEMO_STEPS.get(m, 2000)
        if splits is None:
            splits = build_data(cfg)
            src = splits["train"].info.get("mnist_source")
            print(f"Colored MNIST, 1% bias-conflicting; MNIST source: {src} ({splits['train'].info.get('mnist_location')})")
            print(f"train {len(splits['train'])} / val {len(splits['val'])} (biased, carved from train) / test {len(splits['test'])} (uniform colours)")
        print(f"training {m} for {cfg['hparams']['steps']} steps ...", flush=True)
        res = run_training(cfg, out_root / m, splits=splits if m in ("vanilla",) else None).result
        test = res["reported"].get("test", {})
        rows.append([m, res["reported_selection"], test.get("aligned_accuracy"), test.get("conflicting_accuracy"),
                     test.get("unbiased_accuracy"), test.get("accuracy"), f"{res['wall_time_s']:.0f}s"])
    print()
    print("Test accuracy (%) on the uniformly coloured MNIST test set; model selected on the biased validation split")
    print(markdown_table(["method", "selection", "aligned", "conflicting", "unbiased", "overall", "time"], rows))
    print()
    print("aligned = digits shown in their training colour; conflicting = any other colour; unbiased = mean over all")
    print("(digit, colour) cells. A large aligned-vs-conflicting gap means the model learned colour, not shape.")
    print(f"runs kept in {out_root}")
    return 0


DEMO_STEPS = {"vanilla": 3000}
