"""Synthetic Colored MNIST run records for report tests and the report speed measurement.

``python tests/report/synth.py OUT [--runs-per-cell 3] [--steps 50000] [--eval-every 500]`` writes one run
record per (method, ratio, seed) of the 3 x 4 x 3 reproduction grid (36 records, the shape and size of the real
grid's records: val / val_unbiased / test rows of raw and EMA weights every ``eval_every`` steps, 10 x 10
per-cell matrices) to ``OUT``. The numbers are made up (smooth curves plus noise); only the format is real:
each record goes through :func:`debiaskit.experiments.records.export_record` from a synthetic run directory.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path
from typing import Any

import zlib

import numpy as np

from debiaskit.experiments.records import export_record
from debiaskit.io import write_json, write_text
from debiaskit.runkey import run_key

METHODS = {"vanilla": 0.35, "lff": 0.6, "disent": 0.75}  # plateau of the conflicting-cell accuracy at 5 %
RATIOS = (0.005, 0.01, 0.02, 0.05)
RULES = ["last", "best_val_accuracy", "best_val_unbiased", "oracle_test"]


def _config(method: str, ratio: float, seed: int, steps: int, eval_every: int) -> dict[str, Any]:
    return {"seed": seed, "hparams_seed": 0, "device": "cpu",
            "dataset": {"name": "colored_mnist", "ratio": ratio, "severity": 4, "unbiased_val_size": 1000},
            "method": method, "hparams": {"model": "mlp_disent", "lr": 0.01, "batch_size": 256, "steps": steps},
            "train": {"eval_every": eval_every, "selection": RULES, "report": "best_val_accuracy",
                      "weight_average": "ema"}}


def _rows(method: str, ratio: float, seed: int, steps: int, eval_every: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(zlib.crc32(f"{method}/{ratio}/{seed}".encode()))
    plateau = METHODS[method] * (0.55 + 0.45 * math.log(ratio / 0.005 + 1) / math.log(11))
    cell_skill = np.clip(rng.normal(1.0, 0.15, (10, 10)), 0.4, 1.4)
    rows = []
    for step in range(eval_every, steps + 1, eval_every):
        t = step / steps
        conf = plateau * (1 - math.exp(-4 * t)) * (1 - 0.15 * max(0.0, t - 0.6))
        for weights in ("raw", "ema"):
            for split in ("val", "val_unbiased", "test"):
                n_cell = {"val": None, "val_unbiased": 10, "test": 100}[split]
                acc = np.clip(conf * cell_skill + rng.normal(0, 0.03, (10, 10)), 0, 1)
                np.fill_diagonal(acc, np.clip(0.97 + rng.normal(0, 0.01, 10), 0, 1))
                if n_cell is None:  # biased val: aligned cells full, conflicting cells at the training ratio
                    count = np.where(np.eye(10, dtype=bool), 540, rng.binomial(12, min(1.0, ratio * 10), (10, 10)))
                else:
                    count = np.full((10, 10), n_cell)
                correct = np.round(acc * count).astype(int)
                cell_acc = np.where(count > 0, correct / np.maximum(count, 1), np.nan)
                off = ~np.eye(10, dtype=bool)
                row = {"step": step, "split": split, **({"weights": "ema"} if weights == "ema" else {}),
                       "accuracy": float(correct.sum() / count.sum()),
                       "unbiased_accuracy": float(np.nanmean(cell_acc)),
                       "aligned_accuracy": float(np.nanmean(np.diag(cell_acc))),
                       "conflicting_accuracy": float(np.nanmean(np.where(off, cell_acc, np.nan))),
                       "worst_group_accuracy": float(np.nanmin(cell_acc)),
                       "loss": float(2.3 * math.exp(-3 * t) + 0.3 * (1 - conf) + rng.normal(0, 0.02)),
                       "group_count": count.tolist(), "group_correct": correct.tolist(),
                       "train_logs": {"loss": float(2.3 * math.exp(-5 * t) + 0.05 + abs(rng.normal(0, 0.01)))},
                       "wall_time_s": step / 400, "steps_per_s": 400.0, "peak_memory_mb": 500.0}
                rows.append(row)
    return rows


def write_synthetic_records(out: Path, *, seeds: int = 3, steps: int = 50000, eval_every: int = 500,
                            methods: tuple[str, ...] = tuple(METHODS), ratios: tuple[float, ...] = RATIOS) -> list[Path]:
    """Write ``len(methods) * len(ratios) * seeds`` synthetic records into ``out``; returns their paths."""
    from debiaskit.train.trainer import selection_summary

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    with tempfile.TemporaryDirectory() as tmp:
        for method in methods:
            for ratio in ratios:
                for seed in range(seeds):
                    cfg = _config(method, ratio, seed, steps, eval_every)
                    rows = _rows(method, ratio, seed, steps, eval_every)
                    rd = Path(tmp) / f"{method}-{ratio}-{seed}"
                    rd.mkdir()
                    write_text(rd / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
                    result = {
                        "debiaskit_version": "0.1.0", "run_key": run_key(cfg), "method": method,
                        "dataset": "colored_mnist",
                        "dataset_options": {k: v for k, v in cfg["dataset"].items() if k != "name"}, "seed": seed,
                        "hparams_seed": 0, "steps": steps, "labels_consumed": ["target"],
                        "selection_rules": RULES, "reported_selection": "best_val_accuracy",
                        "selection": selection_summary(RULES, rows),
                        "data": {"fingerprint": f"synthetic{int(ratio * 1000):04d}",
                                 "splits": {"test": {"size": 10000, "num_classes": 10, "num_bias": 10,
                                                     "conflict_ratio": 0.9}}},
                        "wall_time_s": steps / 400, "config": cfg, "synthetic": True,
                    }
                    write_json(rd / "result.json", result)
                    paths.append(export_record(rd, out))
    return paths


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=50000)
    ap.add_argument("--eval-every", type=int, default=500)
    a = ap.parse_args()
    ps = write_synthetic_records(a.out, seeds=a.seeds, steps=a.steps, eval_every=a.eval_every)
    print(f"wrote {len(ps)} records to {a.out}")
