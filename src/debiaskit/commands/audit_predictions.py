"""``debiaskit audit predictions``: fairness report for any model's saved predictions.

Example::

    debiaskit predict runs/celeba_smiling --split test --out preds.csv
    debiaskit predict runs/celeba_smiling --split val --out val.csv
    debiaskit audit predictions preds.csv --target target --score score_1 --protected bias \\
        --val val.csv --threshold calibrated --n-boot 500 --out audit_smiling
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from debiaskit.audit.predictions import AuditConfig, run_audit
from debiaskit.commands.argtypes import non_negative_int, open_unit_float
from debiaskit.errors import DebiaskitError
from debiaskit.progress import Progress
from debiaskit.report.html import try_write_report


def _cols(text: str) -> list[str]:
    cols = [c.strip() for c in text.split(",") if c.strip()]
    if not cols:
        raise DebiaskitError(f"empty column list {text!r}")
    return cols


def register(audit_subparsers: argparse._SubParsersAction) -> None:
    p = audit_subparsers.add_parser(
        "predictions",
        help="fairness metrics with bootstrap intervals for a CSV/parquet of predictions",
        description="AP, DEO, equalized-odds / demographic-parity gaps, bias amplification and score KL per "
        "protected group, with bootstrap intervals; writes report.md, report.json, plots/ and the self-contained "
        "report.html.",
    )
    p.add_argument("file", help="CSV or parquet file, one row per sample")
    p.add_argument("--target", required=True, help="ground-truth column(s), comma-separated")
    p.add_argument("--score", default="", help="score column(s): one per target, or one per class of a "
                   "single multi-class target (one-vs-rest)")
    p.add_argument("--protected", required=True, help="protected-attribute column (>= 2 groups)")
    p.add_argument("--pred", default=None, help="predicted-class column of a single (multi-class) target: adds "
                   "accuracy, per-group, unbiased and worst-group accuracy (LfF/DisEnt); with no --score columns only "
                   "these and the bias amplification are reported")
    p.add_argument("--val", default=None, help="validation file with the same target/score columns; thresholds "
                   "are fitted there")
    p.add_argument("--threshold", default="auto", help="calibrated | f1 | a number in (0,1) (default: calibrated "
                   "with --val, else 0.5)")
    p.add_argument("--n-boot", type=non_negative_int, default=500, help="bootstrap resamples (0 = none; default 500)")
    p.add_argument("--ci", type=open_unit_float, default=0.95, help="interval coverage (default 0.95)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--logits", action="store_true", help="scores are logits: apply sigmoid (softmax for multi-class)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots of plots/")
    p.add_argument("--no-html", action="store_true", help="do not write report.html (the HTML report)")
    p.add_argument("--out", default=None, help="output directory (default: <file stem>_audit next to the file)")
    p.add_argument("--force", action="store_true", help="replace an existing output directory")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    path = Path(args.file)
    out = Path(args.out) if args.out else path.with_name(f"{path.stem}_audit")
    if not 0 < args.ci < 1:
        raise DebiaskitError(f"--ci must be in (0, 1), got {args.ci}")
    targets, scores = _cols(args.target), (_cols(args.score) if args.score.strip() else [])
    if args.protected in targets or args.protected in scores:
        role = "--target" if args.protected in targets else "--score"
        raise DebiaskitError(f"--protected {args.protected!r} is also a {role} column; the protected attribute must be "
                             "a separate column")
    cfg = AuditConfig(
        file=path, targets=targets, scores=scores, protected=args.protected, out=out,
        val=Path(args.val) if args.val else None, threshold=args.threshold, n_boot=args.n_boot, ci=args.ci,
        seed=args.seed, logits=args.logits, force=args.force, plots=not args.no_plots, pred=args.pred,
    )
    progress = Progress("audit predictions")
    report = run_audit(cfg, progress=progress)
    html = None if args.no_html else try_write_report(out, out / "report.html", progress=progress)
    n_warn = len(report.get("warnings") or [])
    extra = f" ({n_warn} warning(s), see report.md)" if n_warn else ""
    written = ["report.md", "report.json", *(["report.html"] if html else []), *([] if args.no_plots else ["plots/"])]
    print(f"wrote {out}/{', '.join(written[:-1])} and {written[-1]}{extra}", file=sys.stdout)
    return 0
