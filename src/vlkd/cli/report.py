"""`vlkd report`: a run directory's markdown summary and curves."""

from __future__ import annotations

import argparse


def cmd_report(args: argparse.Namespace) -> int:
    from vlkd.report import summarize_run

    print(summarize_run(args.run_dir))
    return 0


def add(sub: argparse._SubParsersAction) -> None:
    """Add `vlkd report`."""
    p = sub.add_parser("report", help="markdown summary and PNG curves of a run directory",
                       description="Writes RUN_DIR/report.md and RUN_DIR/curves.png from RUN_DIR/metrics.jsonl.")
    p.add_argument("run_dir", help="a run directory written by `vlkd train`")
    p.set_defaults(func=cmd_report)
