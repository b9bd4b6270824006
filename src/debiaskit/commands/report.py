"""``debiaskit report PATH [--out report.html]``: a self-contained HTML report (see docs/report.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from debiaskit.report.html import write_report


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``report`` sub-command."""
    p = sub.add_parser(
        "report", help="write a self-contained HTML report for a run, sweep, records folder or audit folder",
        description="Render one HTML file (inline CSS, embedded figures, no network) for PATH: a run directory, a "
                    "sweep directory, a folder of run records (or one record file), or the output folder of "
                    "`debiaskit audit predictions|labels|model`.")
    p.add_argument("path", help="run directory, sweep directory, records folder / record file, or audit folder")
    p.add_argument("--out", default=None, help="HTML file to write (default: PATH/report.html)")
    p.add_argument("--selection", default=None, metavar="RULE[,RULE...]",
                   help="selection rules to compare (default: those the runs were trained with)")
    p.add_argument("--rule", default=None,
                   help="rule whose selected step the summary and heat maps use (default: the runs' reported rule)")
    p.add_argument("--metric", default=None,
                   help="headline test metric (default unbiased_accuracy, else mAP / accuracy)")
    p.add_argument("--examples", action="store_true",
                   help="run directory: add grids of the most bias-conflicting training samples (as the biased "
                        "network ranks them) and of misclassified test samples; rebuilds the data and runs the model")
    p.add_argument("--device", default="cpu", help="device for --examples (default cpu)")
    p.add_argument("--data-dir", default=None, help="data root for --examples (default: as recorded / $DEBIASKIT_DATA)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    selection = [s.strip() for s in args.selection.split(",") if s.strip()] if args.selection else None
    out = write_report(Path(args.path), args.out, selection=selection, rule=args.rule, metric=args.metric,
                       examples=args.examples, device=args.device, data_dir=args.data_dir)
    print(f"wrote {out}", file=sys.stdout)
    return 0
