"""``debiaskit audit labels`` and ``debiaskit audit model``: leakage audits (Wang et al., ICCV 2019).

* ``audit labels FILE|--dataset NAME --protected COL [--alpha 1,2,3] [--out DIR]``: bias card of a label
  set (counts, P(protected | label), most skewed labels, conflict ratio, Zhao b(o, g)), λ_D of the
  original labels and of α-balanced subsets (α-split on the train part only; val/test stay original,
  as in the authors' leakage scripts; ``docs/leakage.md``). The label set is split once 60/20/20
  (stratified by the protected attribute).
* ``audit model RUN_DIR``: λ_M of a trained run's logits (attacker trained on the model's outputs on its
  own training split as in the authors' code, selected on val, evaluated on test; ``docs/leakage.md``),
  λ_D(F1) of randomly perturbed ground truth at the model's test macro-F1, and Δ = λ_M − λ_D(F1).

Outputs (``report.json``, ``report.md``, ``skew.png`` and, unless ``--no-html``, the self-contained
``report.html`` of ``docs/report.md``) are written atomically after every input was validated and every number
computed, so a failed audit leaves no partial report. Progress goes to stderr (:mod:`debiaskit.progress`).
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path
from typing import Any

import numpy as np

from debiaskit import __version__
from debiaskit.commands.argtypes import non_negative_int, positive_int
from debiaskit.data.attribute_labels import load_label_csv, load_label_dataset
from debiaskit.data.bias_card import bias_card, format_bias_card
from debiaskit.errors import DebiaskitError
from debiaskit.experiments import rundir
from debiaskit.io import write_bytes, write_json, write_text
from debiaskit.leakage import AttackerConfig, audit_model, balanced_split, dataset_leakage, format_model_audit
from debiaskit.leakage.balanced import as_binary_protected
from debiaskit.leakage.leakage import holdout_split
from debiaskit.progress import Progress
from debiaskit.report.html import try_write_report


def register(audit_subparsers: Any) -> None:
    """Add ``labels`` and ``model`` to the ``audit`` sub-command group."""
    p = audit_subparsers.add_parser("labels", help="bias card + dataset leakage λ_D of a label set")
    p.add_argument("file", nargs="?", help="CSV with label columns and a protected column")
    p.add_argument("--dataset", help="label dataset: celeba, imsitu, coco_gender")
    p.add_argument("--protected", help="protected column / attribute (CelebA default: Male)")
    p.add_argument("--label-column", help="CSV: one column of class names (single-label) instead of 0/1 columns")
    p.add_argument("--split", help="dataset split (celeba, imsitu: train/val/test; coco_gender: val/test)")
    p.add_argument("--data-dir", help="data root with celeba/ and wang2019/ (default: $DEBIASKIT_DATA)")
    p.add_argument("--alpha", default="", help="comma-separated α values for α-balanced subsets, e.g. 1,2,3")
    p.add_argument("--out", help="write report.md, report.json, skew.png and report.html into this directory")
    p.add_argument("--no-html", action="store_true", help="do not write report.html (the HTML report) with --out")
    p.add_argument("--epochs", type=positive_int, default=20, help="attacker epochs (paper: 100)")
    p.add_argument("--rounds", type=positive_int, default=5, help="leakage rounds (paper: 5)")
    p.add_argument("--max-per-group", type=positive_int, default=3000,
                   help="cap on the balanced train subset per group (paper COCO 3000); val/test get half")
    p.add_argument("--no-leakage", action="store_true", help="skip the attacker (counts and α-splits only)")
    p.add_argument("--top-k", type=positive_int, default=10)
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads for the attacker")
    p.set_defaults(func=run_labels)

    m = audit_subparsers.add_parser("model", help="λ_M, λ_D(F1) and amplification Δ of a trained run")
    m.add_argument("run_dir", help="run directory written by `debiaskit train`")
    m.add_argument("--kind", default="logits", choices=["logits", "probabilities", "thresholded"],
                   help="attacker input (paper: logits)")
    m.add_argument("--epochs", type=positive_int, default=20)
    m.add_argument("--rounds", type=positive_int, default=5)
    m.add_argument("--points", type=positive_int, default=5, help="F1 grid points of the λ_D(F1) curve")
    m.add_argument("--max-per-group", type=positive_int, default=3000)
    m.add_argument("--out", help="output directory (default: RUN_DIR/audit_leakage)")
    m.add_argument("--no-html", action="store_true", help="do not write report.html (the HTML report)")
    m.add_argument("--seed", type=non_negative_int, default=0)
    m.add_argument("--threads", type=positive_int, default=None)
    m.add_argument("--data-dir", help="the run's data moved to this folder (relocates the recorded data path)")
    m.set_defaults(func=run_model)


# ------------------------------------------------------------------------------------------ helpers
def _parse_alphas(text: str) -> list[float]:
    if not text:
        return []
    out = []
    for tok in text.split(","):
        try:
            a = float(tok)
        except ValueError:
            raise DebiaskitError(f"--alpha: {tok!r} is not a number (use e.g. --alpha 1,2,3)") from None
        if not np.isfinite(a) or a < 1:
            raise DebiaskitError(f"--alpha: every α must be >= 1, got {tok}")
        out.append(a)
    return out


def _positive(name: str, v: int) -> None:
    if v < 1:
        raise DebiaskitError(f"{name} must be >= 1, got {v}")


def _load_table(args: argparse.Namespace) -> Any:
    if bool(args.file) == bool(args.dataset):
        raise DebiaskitError("give exactly one of FILE or --dataset NAME")
    if args.file:
        if not args.protected:
            raise DebiaskitError("--protected COL is required with a label FILE")
        if args.label_column is not None and args.label_column == args.protected:
            raise DebiaskitError(f"--label-column and --protected are the same column {args.protected!r}; the leakage "
                                 "of a label about itself is trivially 100 %: choose a different label column")
        table = load_label_csv(args.file, protected=args.protected, single_label=args.label_column)
    else:
        table = load_label_dataset(args.dataset, data_dir=args.data_dir, split=args.split, protected=args.protected)
    _check_informative(table, args.label_column)
    return table


def _check_informative(table: Any, label_column: str | None) -> None:
    """Refuse a label set that carries no information (a single class); warn about constant label columns."""
    import sys

    labels = np.asarray(table.labels)
    if not table.multilabel:
        if len(np.unique(labels)) < 2:
            raise DebiaskitError(f"{table.name}: the label column {label_column or ''} has a single value for all "
                                 f"{len(labels)} rows; a leakage or skew audit needs at least two classes")
        return
    const = [str(n) for n, col in zip(table.label_names, labels.T) if len(np.unique(col)) < 2]
    if len(const) == len(table.label_names):
        raise DebiaskitError(f"{table.name}: every label column is constant ({', '.join(const)}); nothing to audit")
    if const:
        print(f"warning: {table.name}: constant label column(s) {', '.join(const)} carry no information about "
              "the protected attribute", file=sys.stderr)


def _png(card: Any, top_k: int) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(card.most_skewed)
    fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 0.35 * top_k + 1.5), squeeze=False)
    for ax, grp in zip(axes[0], groups):
        rows = card.most_skewed[grp][:top_k][::-1]
        ax.barh([r["label"] for r in rows], [r["p"] for r in rows], color="tab:blue")
        base = card.base_rate[card.protected_names.index(grp)] if grp in card.protected_names else None
        if base is not None:
            ax.axvline(base, color="k", ls="--", lw=1, label=f"base rate {base:.2f}")
            ax.legend(loc="lower right", fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_xlabel(f"P({grp} | label)")
        ax.set_title(f"most skewed towards {grp}")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def _cfg(args: argparse.Namespace) -> Any:
    return AttackerConfig(epochs=args.epochs, num_threads=args.threads)


# ------------------------------------------------------------------------------------------ labels
def run_labels(args: argparse.Namespace) -> int:
    alphas = _parse_alphas(args.alpha)
    for name in ("epochs", "rounds", "max_per_group", "top_k"):
        _positive("--" + name.replace("_", "-"), getattr(args, name))
    table = _load_table(args)
    card = bias_card(table, top_k=args.top_k)
    report: dict[str, Any] = {"version": __version__, "seed": args.seed, "data": {
        "name": table.name, "split": table.split, "size": len(table), "fingerprint": table.fingerprint,
        "info": table.info}, "bias_card": card.to_dict(), "alpha_splits": [], "leakage": None}
    need_binary = bool(alphas) or not args.no_leakage
    if need_binary:
        as_binary_protected(table.protected, what=f"{table.name} protected attribute")
    parts = holdout_split(table.protected, seed=args.seed) if not args.no_leakage else None
    k = args.max_per_group
    sizes = (k, max(1, k // 2), max(1, k // 2))
    cfg = _cfg(args)
    num_classes = None if table.multilabel else table.num_labels

    progress = Progress("audit labels")

    def leak(train_idx: np.ndarray, what: str) -> dict[str, Any]:
        tr, va, te = train_idx, parts[1], parts[2]  # type: ignore[index]
        with progress.phase(f"λ_D of {what}: {args.rounds} attacker(s), {args.epochs} epochs, train part of "
                            f"{len(tr)} samples", unit="epoch") as tick:
            r = dataset_leakage(table.labels[tr], table.protected[tr], val=(table.labels[va], table.protected[va]),
                                test=(table.labels[te], table.protected[te]), num_classes=num_classes, sizes=sizes,
                                rounds=args.rounds, seed=args.seed, config=cfg, progress=tick)
        return r.to_dict()

    if not args.no_leakage:
        report["leakage"] = leak(parts[0], "the original labels")  # type: ignore[index]
        lk = report["leakage"]
        from scipy import stats

        vals = np.asarray(lk["per_round"])
        half = float("nan")
        if len(vals) > 1:
            half = float(stats.t.ppf(0.975, len(vals) - 1) * vals.std(ddof=1) / np.sqrt(len(vals)))
        lk["ci95"] = [lk["mean"] - half, lk["mean"] + half]
        card.leakage = {"mean": lk["mean"], "std": lk["std"], "ci95": lk["ci95"], "rounds": args.rounds,
                        "epochs": args.epochs}
        report["bias_card"]["leakage"] = card.leakage
    for a in alphas:
        base_idx = parts[0] if parts is not None else np.arange(len(table))
        b = balanced_split(table.labels[base_idx], table.protected[base_idx], a, seed=args.seed)
        entry = {"alpha": a, **{k2: v for k2, v in b.report.items() if k2 != "per_label"},
                 "applied_to": "train part of the 60/20/20 split" if parts is not None else "whole table"}
        if not args.no_leakage:
            try:
                entry["leakage"] = leak(base_idx[b.indices], f"the α = {a:g} subset")
            except DebiaskitError as e:  # e.g. an α = 1 subset too small to balance: report, don't fail
                entry["leakage_skipped"] = str(e)
        report["alpha_splits"].append(entry)
    text = format_bias_card(card, top_k=args.top_k)
    md = [f"# Label audit: {table.name} [{table.split}]", "", f"debiaskit {__version__}, seed {args.seed}, "
          f"data fingerprint {table.fingerprint}", "", "```", text, "```", ""]
    if report["alpha_splits"]:
        md += ["## α-balanced subsets", "", "| α | size | #protected=0 | #protected=1 | max label ratio | λ_D |",
               "|---|---|---|---|---|---|"]
        for e in report["alpha_splits"]:
            lk = e.get("leakage")
            lam = f"{100 * lk['mean']:.2f} ± {100 * lk['std']:.2f}" if lk else e.get("leakage_skipped", "–")
            md.append(f"| {e['alpha']:g} | {e['size']} | {e['group_sizes'][0]} | {e['group_sizes'][1]} | "
                      f"{e['max_ratio']:.3f} | {lam} |")
        md.append("")
    if report["leakage"]:
        md += [f"λ_D: folded attacker accuracy on protected-balanced test subsets, {args.rounds} rounds, "
               f"{args.epochs} epochs (paper: 100), ≤{k} per group in train; 60/20/20 split stratified by the "
               "protected attribute; α-splits restrict the train part only.", ""]
    print(text)
    for e in report["alpha_splits"]:
        lk = e.get("leakage")
        print(f"alpha {e['alpha']:g}: {e['size']} samples ({e['group_sizes'][0]}/{e['group_sizes'][1]}), "
              f"max ratio {e['max_ratio']:.3f}"
              + (f", λ_D {100 * lk['mean']:.2f} ± {100 * lk['std']:.2f} %" if lk else "")
              + (f", λ_D skipped: {e['leakage_skipped']}" if "leakage_skipped" in e else ""))
    if args.out:
        png = _png(card, args.top_k)
        out = Path(args.out)
        md.insert(6, "![most skewed labels](skew.png)\n")
        write_bytes(out / "skew.png", png)
        write_json(out / "report.json", report)
        write_text(out / "report.md", "\n".join(md))
        html = None if args.no_html else try_write_report(out, out / "report.html", progress=progress)
        print(f"wrote {out / 'report.md'}, {out / 'report.json'}, {out / 'skew.png'}" + (f", {html}" if html else ""))
    return 0


# ------------------------------------------------------------------------------------------ model
def run_model(args: argparse.Namespace) -> int:
    for name in ("epochs", "rounds", "points", "max_per_group"):
        _positive("--" + name.replace("_", "-"), getattr(args, name))
    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise DebiaskitError(f"run directory not found: {run_dir}")
    progress = Progress("audit model")
    run = rundir.load_run(run_dir, data_dir=getattr(args, "data_dir", None))
    res = audit_model(run, kind=args.kind, epochs=args.epochs, rounds=args.rounds, points=args.points,
                      max_per_group=args.max_per_group, seed=args.seed, threads=args.threads, progress=progress)
    text = format_model_audit(res, title=f"Leakage audit of {run_dir}")
    out = Path(args.out) if args.out else run_dir / "audit_leakage"
    write_json(out / "report.json", res)
    write_text(out / "report.md", text)
    html = None if args.no_html else try_write_report(out, out / "report.html", progress=progress)
    print(text)
    print(f"wrote {out / 'report.md'}, {out / 'report.json'}" + (f", {html}" if html else ""))
    return 0
