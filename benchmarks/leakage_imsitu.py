"""Benchmark: dataset leakage λ_D (Wang et al., ICCV 2019) on imSitu, COCO and CelebA label splits.

One small JSON record per (dataset, split, α, source) goes to ``benchmarks/results/records/leakage/`` as soon as
that split finishes; a split whose record already holds the same configuration is skipped, so an interrupted
run resumes where it stopped. ``benchmarks/results/leakage_imsitu.json`` and ``.md`` are regenerated from the
records after every split (and with ``--collect-only``), with the paper's numbers beside ours.

* imSitu train (the paper's protocol: balanced 7,300+7,300 train / 3,000+3,000 val and test subsets drawn per
  round from the original val/test, 5 rounds, attacker with 5 Linear layers): original split, α = 3, 2, 1
  from the shipped ``train_ratio_α.ids`` and from our ``balanced_split``.
* COCO (adapted, the train split is not public; see ``docs/leakage.md``): the attacker trains on balanced
  subsets of **val** (original and α-splits of val; up to 1,500+1,500) and is selected / evaluated on a fixed
  stratified 50/50 halving of **test** (up to 750+750 each).
* CelebA: 39 attributes → Male, official partition, COCO-sized subsets (3,000+3,000 / 1,500+1,500).

Usage::

    nice -n 5 python benchmarks/leakage_imsitu.py [--data-dir ../shared/data] [--epochs 100] [--rounds 5]
        [--threads 1] [--only imsitu,coco,celeba] [--collect-only]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from debiaskit import __version__
from debiaskit.data.attribute_labels import load_celeba_attributes
from debiaskit.data.wang2019 import load_coco_labels, load_imsitu_labels, load_ratio_ids
from debiaskit.io import write_json, write_text
from debiaskit.leakage import AttackerConfig, balanced_split, dataset_leakage, label_ratios

OUT = Path(__file__).resolve().parent / "results"
RECORDS = OUT / "records" / "leakage"

#: Wang et al. (ICCV 2019), Table 1: imSitu dataset leakage λ_D in % (100 attacker epochs, 5 rounds)
PAPER_IMSITU = {"original": 68.26, 3: 68.11, 2: 68.15, 1: 53.99}
#: how close to the paper a row must be (points of λ_D): original / α = 3 / α = 2 within 1.0, α = 1 within 2.0
TARGET = {"original": 1.0, 3: 1.0, 2: 1.0, 1: 2.0}


# ------------------------------------------------------------------------------------------------- progress
class Progress:
    """Plain progress lines on stderr: one every ``every`` seconds (a rewritten line on a terminal)."""

    def __init__(self, label: str, every: float = 5.0) -> None:
        self.label, self.every = label, every
        self.t0 = time.time()
        self.last = 0.0
        self.tty = sys.stderr.isatty()

    def __call__(self, done: int, total: int) -> None:
        now = time.time()
        if done < total and now - self.last < self.every:
            return
        self.last = now
        el = now - self.t0
        eta = el / max(done, 1) * (total - done)
        msg = f"[{self.label}] epoch {done}/{total}  elapsed {_hms(el)}  ETA {_hms(eta)}"
        if self.tty:
            print("\r" + msg.ljust(90), end="" if done < total else "\n", file=sys.stderr, flush=True)
        else:
            print(msg, file=sys.stderr, flush=True)


def _hms(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


# -------------------------------------------------------------------------------------------------- records
def _slug(data: str, split: str, alpha: int | None, source: str) -> str:
    a = "original" if alpha is None else f"alpha{alpha}"
    return f"{data.lower()}_{split}_{a}" + ("" if alpha is None else f"_{source}")


def _record_path(records: Path, slug: str) -> Path:
    return records / f"{slug}.json"


def _read(path: Path) -> dict | None:
    import json

    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{platform.machine()} {line.split(':', 1)[1].strip()}"
    except OSError:  # pragma: no cover - not Linux
        pass
    return platform.machine()


def _loadavg() -> list[float]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:  # pragma: no cover
        return []


# ----------------------------------------------------------------------------------------------- the cells
def _alpha_cells(common: dict[str, Any], y: np.ndarray, g: np.ndarray, shipped_ids: Any, *, seed: int,
                 prefix: str = "") -> list[dict[str, Any]]:
    """The α = 3, 2, 1 cells of one split: the shipped id lists and our ``balanced_split``."""
    out = []
    for source in ("shipped", "ours"):
        for a in (3, 2, 1):
            if source == "shipped":
                ids, extra = shipped_ids(a), {}
            else:
                b = balanced_split(y, g, a, seed=seed)
                ids, extra = b.indices, {"max_ratio": b.report["max_ratio"]}
            label = f"{prefix}α={a} ({'shipped ids' if source == 'shipped' else 'our balanced_split'})"
            out.append({**common, "alpha": a, "source": source, "label": label, "y": y[ids], "g": g[ids], **extra})
    return out


def _cells(root: Path, seed: int, only: set[str]) -> list[dict[str, Any]]:
    """Every (dataset, split, α, source) cell with its arrays; cheap (label files only)."""
    cells: list[dict[str, Any]] = []
    if "imsitu" in only:
        v, g, _ = load_imsitu_labels(root, "train")
        val = load_imsitu_labels(root, "val")[:2]
        test = load_imsitu_labels(root, "test")[:2]
        common = {"data": "imSitu", "split": "train", "val": val, "test": test, "sizes": "imsitu", "num_classes": 211}
        cells.append({**common, "alpha": None, "source": "original", "label": "original train",
                      "y": v, "g": g})
        cells += _alpha_cells(common, v, g, lambda a: load_ratio_ids(root, "imsitu", "train", a), seed=seed)
    if "coco" in only:
        o, g, _ = load_coco_labels(root, "val")
        ot, gt, _ = load_coco_labels(root, "test")
        rng = np.random.default_rng(seed)
        halves = [np.sort(np.concatenate([rng.permutation(np.flatnonzero(gt == k))[h::2] for k in (0, 1)]))
                  for h in (0, 1)]
        common = {"data": "COCO", "split": "val", "val": (ot[halves[0]], gt[halves[0]]),
                  "test": (ot[halves[1]], gt[halves[1]]), "sizes": (1500, 750, 750), "num_classes": None}
        cells.append({**common, "alpha": None, "source": "original", "label": "val as train (original)",
                      "y": o, "g": g})
        cells += _alpha_cells(common, o, g, lambda a: load_ratio_ids(root, "coco", "val", a), seed=seed,
                              prefix="val ")
    if "celeba" in only:
        c = root / "celeba"
        tr, va, te = (load_celeba_attributes(c, split=s) for s in ("train", "val", "test"))
        cells.append({"data": "CelebA", "split": "train", "alpha": None, "source": "original",
                      "label": "train, 39 attrs → Male", "y": tr.labels, "g": tr.protected,
                      "val": (va.labels, va.protected), "test": (te.labels, te.protected), "sizes": "coco",
                      "num_classes": None})
    return cells


def _cell_config(cell: dict[str, Any], cfg: AttackerConfig, rounds: int, seed: int) -> dict[str, Any]:
    """What identifies a result (threads and timing excluded): a record with an equal config is reused."""
    from debiaskit.data.base import fingerprint_arrays

    sizes = cell["sizes"]
    att = asdict(cfg)
    att.pop("num_threads")
    return {
        "data": cell["data"], "split": cell["split"], "alpha": cell["alpha"], "source": cell["source"],
        "epochs": cfg.epochs, "rounds": rounds, "seed": seed, "sizes": list(sizes) if isinstance(sizes, tuple) else sizes,
        "attacker": att,
        "data_fingerprint": fingerprint_arrays(np.asarray(cell["y"]), np.asarray(cell["g"]),
                                               np.asarray(cell["val"][0]), np.asarray(cell["val"][1]),
                                               np.asarray(cell["test"][0]), np.asarray(cell["test"][1])),
    }


def run_cell(cell: dict[str, Any], cfg: AttackerConfig, *, rounds: int, seed: int, threads: int,
             records: Path) -> dict[str, Any]:
    """Train the attackers of one cell and write its record atomically (or return the existing record)."""
    conf = _cell_config(cell, cfg, rounds, seed)
    slug = _slug(cell["data"], cell["split"], cell["alpha"], cell["source"])
    path = _record_path(records, slug)
    old = _read(path)
    if old is not None and old.get("config") == conf:
        print(f"{cell['data']:7s} {cell['label']:28s} record exists with this config: skipped ({path.name})",
              file=sys.stderr, flush=True)
        return old
    g = np.asarray(cell["g"])
    load_before = _loadavg()
    t0 = time.time()
    cpu0 = time.process_time()
    r = dataset_leakage(cell["y"], g, val=cell["val"], test=cell["test"], sizes=cell["sizes"], rounds=rounds,
                        seed=seed, config=cfg, num_classes=cell["num_classes"],
                        progress=Progress(f"{cell['data']} {cell['label']}"))
    wall = time.time() - t0
    rec = {
        "name": slug, "label": cell["label"], "config": conf,
        "n0": int((g == 0).sum()), "n1": int((g == 1).sum()),
        "lambda_D_per_round": r.per_round, "mean": r.mean, "std": r.std,
        "test_accuracy": r.test_accuracy, "val_accuracy": r.val_accuracy, "best_epoch": r.best_epoch,
        "per_group": r.per_group,
        "wall_s": round(wall, 1), "cpu_s": round(time.process_time() - cpu0, 1),
        "s_per_epoch": round(wall / max(cfg.epochs, 1), 3), "threads": threads,
        "load_average_before": load_before, "load_average_after": _loadavg(),
        "version": __version__, "torch": torch.__version__, "machine": _cpu_name(),
        "cpu_count": os.cpu_count(), "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    if "max_ratio" in cell:
        rec["max_ratio"] = cell["max_ratio"]
    write_json(path, rec)
    print(f"{cell['data']:7s} {cell['label']:28s} λ_D = {100 * r.mean:.2f} ± {100 * r.std:.2f}  "
          f"({wall:.0f} s, {wall / max(cfg.epochs, 1):.2f} s/epoch)", flush=True)
    return rec


# ------------------------------------------------------------------------------------------- split sizes
def split_sizes(root: Path, seed: int) -> list[dict[str, Any]]:
    """Sizes and achieved max ratios of the shipped α-splits vs our ``balanced_split`` (imSitu, COCO)."""
    rows = []
    for task, splits, loader in (("imsitu", ("train", "val", "test"), load_imsitu_labels),
                                 ("coco", ("val", "test"), load_coco_labels)):
        for split in splits:
            y, g, _ = loader(root, split)
            ml = y.ndim == 2
            for a in (1, 2, 3):
                shipped = load_ratio_ids(root, task, split, a)
                ours = balanced_split(y, g, a, seed=seed).indices
                row = {"task": task, "split": split, "alpha": a}
                for name, ids in (("shipped", shipped), ("ours", ours)):
                    _, _, r = label_ratios(y[ids], g[ids], multilabel=ml, num_labels=None if ml else 211)
                    fin = r[np.isfinite(r)]
                    row[name] = {"size": int(len(ids)), "men": int((g[ids] == 0).sum()),
                                 "women": int((g[ids] == 1).sum()), "max_ratio": float(fin.max()),
                                 "infinite_ratios": int(np.isinf(r).sum())}
                rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------- the tables
def _paper(rec: dict) -> tuple[float | None, float | None]:
    c = rec["config"]
    if c["data"] != "imSitu":
        return None, None
    key = "original" if c["alpha"] is None else int(c["alpha"])
    return PAPER_IMSITU[key], TARGET[key]


def collect(records: Path) -> dict[str, Any]:
    """All records under ``records`` in table order, with the paper's numbers and the targets."""
    order = {"imSitu": 0, "COCO": 1, "CelebA": 2}
    src = {"original": 0, "shipped": 1, "ours": 2}
    recs = [r for r in (_read(p) for p in sorted(records.glob("*.json"))) if r and "config" in r]
    recs.sort(key=lambda r: (order.get(r["config"]["data"], 9), src.get(r["config"]["source"], 9),
                             -(r["config"]["alpha"] or 99)))
    rows = []
    for r in recs:
        paper, tol = _paper(r)
        row = dict(r)
        if paper is not None:
            diff = 100 * r["mean"] - paper
            row.update(paper=paper, diff=diff, target=tol, met=bool(abs(diff) <= tol))
        rows.append(row)
    sizes = _read(records / "split_sizes" / "split_sizes.json")
    return {"rows": rows, "paper_imsitu": {str(k): v for k, v in PAPER_IMSITU.items()},
            "targets": {str(k): v for k, v in TARGET.items()}, "split_sizes": sizes}


def _md(res: dict[str, Any], command: str) -> str:
    rows = res["rows"]
    lines = ["# Dataset leakage λ_D (Wang et al., ICCV 2019 protocol)", ""]
    if rows:
        eps = sorted({r["config"]["epochs"] for r in rows})
        rounds = sorted({r["config"]["rounds"] for r in rows})
        th = sorted({r["threads"] for r in rows})
        loads = [v for r in rows for v in (r.get("load_average_before", [None])[:1] + r.get("load_average_after", [None])[:1])
                 if v is not None]
        lines += [
            f"debiaskit {rows[0]['version']}, torch {rows[0]['torch']}, {rows[0]['machine']} ({rows[0]['cpu_count']} cores); "
            f"attacker epochs {'/'.join(map(str, eps))}, rounds {'/'.join(map(str, rounds))}, seed {rows[0]['config']['seed']}, "
            f"torch threads {'/'.join(map(str, th))}; 1-minute load average {min(loads):.1f}–{max(loads):.1f} "
            f"during the runs (shared machine). Total wall time {sum(r['wall_s'] for r in rows) / 60:.0f} min.",
            "",
            "| data | split | #men | #women | per-group train/val/test | λ_D ours (mean ± std) | paper | ours − paper | target | wall | s/epoch |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            pg = r["per_group"]
            c = r["config"]
            men, women = (r["n1"], r["n0"]) if c["data"] == "CelebA" else (r["n0"], r["n1"])
            if "paper" in r:
                pap = f"{r['paper']:.2f}"
                diff = f"{r['diff']:+.2f}"
                tgt = f"±{r['target']:.1f}: **{'met' if r['met'] else 'not met'}**"
            else:
                pap, diff, tgt = "—", "—", "—"
            lines.append(
                f"| {c['data']} | {r['label']} | {men} | {women} | {pg['train']}/{pg['val']}/{pg['test']} | "
                f"{100 * r['mean']:.2f} ± {100 * r['std']:.2f} | {pap} | {diff} | {tgt} | {r['wall_s'] / 60:.1f} min | "
                f"{r['s_per_epoch']:.2f} |")
        lines += [
            "",
            "λ in %: folded accuracy 0.5 + |acc − 0.5| of the attacker on the balanced test subset, mean and population",
            "std over the rounds (per-round values and best epochs are in the records). Paper: Wang et al. (ICCV 2019),",
            "Table 1, imSitu λ_D; the targets are |ours − paper| ≤ 1.0 point for original / α = 3 / α = 2 and ≤ 2.0 for",
            "α = 1. The paper's α-splits are the shipped id lists; our `balanced_split` has the same per-verb counts",
            "(table below) but other images inside a (verb, gender) cell, so both are compared with the same number.",
            "",
            "COCO: adapted protocol (the COCO train split of the paper is not public): the attacker trains on balanced",
            "subsets of COCO **val** (original or α-split of val, ≤ 1,500 per group) and is selected / evaluated on a fixed",
            "stratified halving of COCO **test** (≤ 750 per group each), so no published number is comparable (the",
            "paper's COCO rows use the train split). CelebA: #men/#women = Male=1 / Male=0 in the train partition.",
            "",
        ]
        per_ep = {d: [r["s_per_epoch"] for r in rows if r["config"]["data"] == d] for d in ("imSitu", "COCO", "CelebA")}
        timing = ", ".join(f"{d} {min(v):.2f}–{max(v):.2f} s" for d, v in per_ep.items() if v)
        lines += [
            f"Timing: CPU only (no GPU used), one torch thread, `nice -n 5`, on a 2-core machine shared with other jobs "
            f"(load averages above), so wall times are pessimistic. Wall time per attacker epoch of 5 batched rounds "
            f"(setup included): {timing}.",
            "",
        ]
        best = {d: [e for r in rows if r["config"]["data"] == d for e in r["best_epoch"]] for d in ("imSitu", "COCO", "CelebA")}
        lines += [
            "Best validation epochs (selection is per round): "
            + ", ".join(f"{d} {min(v)}–{max(v)}" for d, v in best.items() if v)
            + ". Rows whose rounds all peak within the first 10 epochs ("
            + ", ".join(f"{r['config']['data']} {r['label']}" for r in rows if max(r["best_epoch"]) <= 10)
            + ") give exactly what a 10-epoch run with the same seed gives (same seeded initialisation and shuffles).",
            "",
        ]
    sizes = res.get("split_sizes")
    if sizes:
        lines += ["## α-split sizes: shipped ids vs our `balanced_split` (seed 0)", "",
                  "| task | split | α | shipped size (men/women) | shipped max ratio | ours size (men/women) | ours max ratio |",
                  "|---|---|---|---|---|---|---|"]
        for s in sizes:
            a, b = s["shipped"], s["ours"]
            inf_a = f" (+{a['infinite_ratios']} ∞)" if a["infinite_ratios"] else ""
            inf_b = f" (+{b['infinite_ratios']} ∞)" if b["infinite_ratios"] else ""
            lines.append(f"| {s['task']} | {s['split']} | {s['alpha']} | {a['size']} ({a['men']}/{a['women']}) | "
                         f"{a['max_ratio']:.3f}{inf_a} | {b['size']} ({b['men']}/{b['women']}) | {b['max_ratio']:.3f}{inf_b} |")
        lines += ["", "Max ratio = the largest finite per-label ratio max(#men/#women, #women/#men); \"+k ∞\" counts labels",
                  "with images of one gender only (the shipped imSitu val/test lists keep α images of such verbs).", ""]
    lines += ["Provenance: every number above comes from the records in `benchmarks/results/records/leakage/`, written by",
              f"`{command}`.", ""]
    return "\n".join(lines)


def write_tables(records: Path, out_stem: str, command: str) -> dict[str, Any]:
    res = collect(records)
    write_json(OUT / f"{out_stem}.json", res)
    write_text(OUT / f"{out_stem}.md", _md(res, command))
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("DEBIASKIT_NUM_THREADS", "1")),
                    help="torch threads (default 1, or $DEBIASKIT_NUM_THREADS)")
    ap.add_argument("--only", default="imsitu,coco,celeba", help="comma list of imsitu, coco, celeba")
    ap.add_argument("--records", default=str(RECORDS), help="directory of the per-split JSON records")
    ap.add_argument("--out-stem", default="leakage_imsitu", help="results file stem under benchmarks/results")
    ap.add_argument("--collect-only", action="store_true", help="only rebuild the tables from the records")
    args = ap.parse_args(argv)
    if args.threads < 1:
        ap.error("--threads must be >= 1")
    torch.set_num_threads(args.threads)
    root = Path(args.data_dir).expanduser()
    records = Path(args.records)
    command = ("python benchmarks/leakage_imsitu.py" + (f" --epochs {args.epochs}" if args.epochs != 100 else "")
               + (f" --rounds {args.rounds}" if args.rounds != 5 else "") + f" --threads {args.threads}")
    if args.collect_only:
        write_tables(records, args.out_stem, command)
        return 0
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    bad = only - {"imsitu", "coco", "celeba"}
    if bad:
        ap.error(f"--only: unknown {', '.join(sorted(bad))}")
    if not (root / "wang2019").is_dir() and only & {"imsitu", "coco"}:
        ap.error(f"no wang2019/ folder under {root} (pass --data-dir)")
    sizes_path = records / "split_sizes" / "split_sizes.json"
    if only & {"imsitu", "coco"} and _read(sizes_path) is None:
        write_json(sizes_path, split_sizes(root, args.seed))
    cfg = AttackerConfig(epochs=args.epochs, num_threads=args.threads)
    t_all = time.time()
    for cell in _cells(root, args.seed, only):
        run_cell(cell, cfg, rounds=args.rounds, seed=args.seed, threads=args.threads, records=records)
        write_tables(records, args.out_stem, command)
    print(f"total {time.time() - t_all:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
