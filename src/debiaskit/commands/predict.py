"""``debiaskit predict RUN_DIR --split test --out preds.csv``: a trained run's predictions as a table.

The CSV is the input format of ``debiaskit audit predictions``. Columns:

* single-label tasks: ``index, target, bias, pred, score_0 … score_{K-1}`` (softmax probabilities);
* multi-label tasks: ``index, target_0 … target_{K-1}, bias, pred_0 …, score_0 …`` (sigmoid
  probabilities, ``pred_k = score_k > 0.5``).

``bias`` is the dataset's bias / protected attribute. A sidecar ``<out>.json`` records the run, split,
selection rule, data fingerprint and debiaskit version. Example round trip (binary target)::

    debiaskit predict runs/r --split val --out val.csv
    debiaskit predict runs/r --split test --out test.csv
    debiaskit audit predictions test.csv --target target --score score_1 --protected bias --val val.csv
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from debiaskit import __version__
from debiaskit.errors import DebiaskitError
from debiaskit.experiments.rundir import load_run
from debiaskit.io import write_json, write_text


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("predict", help="write a trained run's predictions on a split as CSV (for `audit predictions`)")
    p.add_argument("run_dir", help="run directory written by `debiaskit train`")
    p.add_argument("--split", default="test", help="split to predict (default: test)")
    p.add_argument("--out", required=True, help="output CSV file")
    p.add_argument("--selection", default=None, help="model selection rule (default: the run's reported rule)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto (default: cpu)")
    p.add_argument("--data-dir", help="the run's data moved to this folder (relocates the recorded data path; "
                   "the data fingerprint is still checked)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")
    p.set_defaults(func=run)


def predictions_frame(logits: Any, targets: Any, bias: Any) -> Any:
    """Build the prediction table from logits ``(N, K)``, targets ``(N,)`` or ``(N, K)`` and bias ``(N,)``."""
    import pandas as pd
    import torch

    logits = torch.as_tensor(logits).float()
    targets = torch.as_tensor(targets)
    n = logits.shape[0]
    cols: dict[str, Any] = {"index": np.arange(n)}
    if targets.dim() == 2:
        probs = torch.sigmoid(logits).numpy().astype(np.float64)
        K = probs.shape[1]
        for k in range(K):
            cols[f"target_{k}"] = targets[:, k].numpy().astype(np.int64)
        cols["bias"] = torch.as_tensor(bias).numpy().astype(np.int64)
        for k in range(K):
            cols[f"pred_{k}"] = (probs[:, k] > 0.5).astype(np.int64)
        for k in range(K):
            cols[f"score_{k}"] = probs[:, k]
    else:
        probs = torch.softmax(logits.double(), dim=1).numpy()
        cols["target"] = targets.numpy().astype(np.int64)
        cols["bias"] = torch.as_tensor(bias).numpy().astype(np.int64)
        cols["pred"] = probs.argmax(1).astype(np.int64)
        for k in range(probs.shape[1]):
            cols[f"score_{k}"] = probs[:, k]
    return pd.DataFrame(cols)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.suffix.lower() != ".csv":
        raise DebiaskitError(f"--out must be a .csv file, got {out}")
    if out.exists() and not args.force:
        raise DebiaskitError(f"{out} already exists; pass --force to overwrite it")
    run_ = load_run(args.run_dir, device=args.device, data_dir=getattr(args, "data_dir", None))
    splits = run_.splits
    if args.split not in splits:
        raise DebiaskitError(f"split {args.split!r} not in {args.run_dir}; available: {', '.join(splits)}")
    ds = splits[args.split]
    logits = run_.predict_logits(args.split, selection=args.selection)
    df = predictions_frame(logits, ds.targets, ds.bias)
    selection = args.selection or (run_.result or {}).get("reported_selection") or "last"
    meta = {
        "run_dir": str(Path(args.run_dir).resolve()),
        "split": args.split,
        "selection": selection,
        "checkpoint": run_.checkpoint_path(args.selection).name,
        "dataset": ds.name,
        "data_fingerprint": splits.fingerprint,
        "split_fingerprint": ds.fingerprint,
        "num_classes": ds.num_classes,
        "num_bias": ds.num_bias,
        "multilabel": ds.multilabel,
        "rows": len(df),
        "seed": run_.config.get("seed"),
        "debiaskit_version": __version__,
    }
    write_text(out, df.to_csv(index=False, float_format="%.8g"))
    write_json(out.with_name(out.name + ".json"), meta)
    hint = ("--target target --score score_1 --protected bias" if not ds.multilabel and ds.num_classes == 2
            else "--target target --score " + ",".join(c for c in df.columns if c.startswith("score_"))
            + " --protected bias" if not ds.multilabel else "--target " + ",".join(c for c in df.columns if c.startswith("target_"))
            + " --score " + ",".join(c for c in df.columns if c.startswith("score_")) + " --protected bias")
    print(f"wrote {len(df)} rows to {out}; audit with: debiaskit audit predictions {out} {hint}", file=sys.stdout)
    return 0
