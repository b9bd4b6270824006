"""Benchmark: dataset leakage λ_D (Wang et al. ICCV 2019) on imSitu, CelebA and COCO label splits.

Writes ``benchmarks/results/leakage_imsitu.json`` and ``.md`` (atomically, refreshed after every row).

* imSitu train (paper protocol: balanced 7,300+7,300 train / 3,000+3,000 val and test subsets drawn per
  round from the original val/test, 5 rounds, attacker with 5 Linear layers): original split, α = 3, 2, 1
  from the shipped ``train_ratio_α.ids`` and from our ``balanced_split``.
* CelebA: 39 attributes → Male, official partition, COCO-sized subsets (3,000+3,000 / 1,500+1,500).
* COCO (adapted, the train split is not public): the attacker trains on balanced subsets of **val**
  (original and shipped α-splits of val; up to 1,500+1,500) and is selected / evaluated on a fixed
  stratified 50/50 halving of **test** (up to 750+750 each).

Usage: ``python benchmarks/leakage_imsitu.py [--data-dir ../shared/data] [--epochs 100] [--rounds 5]``
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from debiaskit import __version__
from debiaskit.data.attribute_labels import load_celeba_attributes
from debiaskit.data.wang2019 import load_coco_labels, load_imsitu_labels, load_ratio_ids
from debiaskit.io import write_json, write_text
from debiaskit.leakage import AttackerConfig, balanced_split, dataset_leakage

OUT = Path(__file__).resolve().parent / "results"


def _md(res: dict) -> str:
    c = res["config"]
    lines = [
        "# Dataset leakage λ_D (Wang et al. 2019 protocol)", "",
        f"debiaskit {res['version']}, torch {res['torch']}, {res['machine']}; epochs {c['epochs']}, rounds {c['rounds']}, "
        f"seed {c['seed']}, torch threads {c['threads']}. Total wall time {res.get('wall_s', float('nan')):.0f} s.",
        "", res["note"], "",
        "| data | split | #men | #women | per-group train/val/test | λ_D (mean ± std) | wall s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in res["rows"]:
        pg = r["per_group"]
        lines.append(f"| {r['data']} | {r['split']} | {r['n0']} | {r['n1']} | {pg['train']}/{pg['val']}/{pg['test']} | "
                     f"{100 * r['mean']:.2f} ± {100 * r['std']:.2f} | {r['wall_s']:.0f} |")
    lines += ["", "λ in %, folded accuracy 0.5 + |acc − 0.5| of the attacker on the balanced test subset; std is the",
              "population std over rounds. CelebA: #men/#women columns are Male=1 / Male=0 in the train partition.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", default="imsitu,celeba,coco")
    ap.add_argument("--note", default="")
    ap.add_argument("--out-stem", default="leakage_imsitu", help="results file stem under benchmarks/results")
    args = ap.parse_args(argv)
    root = Path(args.data_dir)
    cfg = AttackerConfig(epochs=args.epochs, num_threads=args.threads)
    res = {"version": __version__, "torch": torch.__version__, "machine": f"{platform.machine()} {torch.get_num_threads()} torch threads default",
           "config": {"epochs": args.epochs, "rounds": args.rounds, "seed": args.seed, "threads": args.threads,
                      "attacker": cfg.__dict__}, "note": args.note, "rows": []}
    t_all = time.time()

    def add(data: str, split: str, y, g, val, test, sizes, n0: int, n1: int, **extra) -> None:
        t0 = time.time()
        r = dataset_leakage(y, g, val=val, test=test, sizes=sizes, rounds=args.rounds, seed=args.seed, config=cfg,
                            num_classes=extra.pop("num_classes", None))
        row = {"data": data, "split": split, "n0": n0, "n1": n1, "mean": r.mean, "std": r.std,
               "per_round": r.per_round, "best_epoch": r.best_epoch, "per_group": r.per_group,
               "wall_s": time.time() - t0, **extra}
        res["rows"].append(row)
        res["wall_s"] = time.time() - t_all
        print(f"{data:8s} {split:28s} λ_D = {100 * r.mean:.2f} ± {100 * r.std:.2f}  ({row['wall_s']:.0f} s)", flush=True)
        write_json(OUT / f"{args.out_stem}.json", res)
        write_text(OUT / f"{args.out_stem}.md", _md(res))

    only = set(args.only.split(","))
    if "imsitu" in only:
        v, g, _ = load_imsitu_labels(root, "train")
        val = load_imsitu_labels(root, "val")[:2]
        test = load_imsitu_labels(root, "test")[:2]
        add("imSitu", "original train", v, g, val, test, "imsitu", int((g == 0).sum()), int((g == 1).sum()), num_classes=211)
        for a in (3, 2, 1):
            ids = load_ratio_ids(root, "imsitu", "train", a)
            add("imSitu", f"α={a} (shipped ids)", v[ids], g[ids], val, test, "imsitu", int((g[ids] == 0).sum()),
                int((g[ids] == 1).sum()), num_classes=211)
        for a in (3, 2, 1):
            b = balanced_split(v, g, a, seed=args.seed)
            ids = b.indices
            add("imSitu", f"α={a} (our balanced_split)", v[ids], g[ids], val, test, "imsitu",
                int((g[ids] == 0).sum()), int((g[ids] == 1).sum()), num_classes=211, max_ratio=b.report["max_ratio"])
    if "celeba" in only:
        c = root / "celeba"
        tr, va, te = (load_celeba_attributes(c, split=s) for s in ("train", "val", "test"))
        add("CelebA", "train, 39 attrs → Male", tr.labels, tr.protected, (va.labels, va.protected),
            (te.labels, te.protected), "coco", int((tr.protected == 1).sum()), int((tr.protected == 0).sum()))
    if "coco" in only:
        o, g, _ = load_coco_labels(root, "val")
        ot, gt, _ = load_coco_labels(root, "test")
        rng = np.random.default_rng(args.seed)
        halves = [np.sort(np.concatenate([rng.permutation(np.flatnonzero(gt == k))[h::2] for k in (0, 1)])) for h in (0, 1)]
        val = (ot[halves[0]], gt[halves[0]])
        test = (ot[halves[1]], gt[halves[1]])
        sizes = (1500, 750, 750)
        add("COCO", "val as train (original)", o, g, val, test, sizes, int((g == 0).sum()), int((g == 1).sum()))
        for a in (3, 2, 1):
            ids = load_ratio_ids(root, "coco", "val", a)
            add("COCO", f"val α={a} (shipped ids)", o[ids], g[ids], val, test, sizes, int((g[ids] == 0).sum()),
                int((g[ids] == 1).sum()))
        for a in (3, 2, 1):
            b = balanced_split(o, g, a, seed=args.seed)
            ids = b.indices
            add("COCO", f"val α={a} (our balanced_split)", o[ids], g[ids], val, test, sizes,
                int((g[ids] == 0).sum()), int((g[ids] == 1).sum()), max_ratio=b.report["max_ratio"])
    res["wall_s"] = time.time() - t_all
    write_json(OUT / f"{args.out_stem}.json", res)
    write_text(OUT / f"{args.out_stem}.md", _md(res))
    print(f"total {res['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
