"""`vlkd quickstart`: the offline default pipeline on bundled data."""

from __future__ import annotations

import argparse


def cmd_quickstart(args: argparse.Namespace) -> int:
    from vlkd.quickstart import run_quickstart

    out = args.out or ("runs/quickstart-full" if args.full else "runs/quickstart")
    report = run_quickstart(out, args.only, overrides=args.overrides, profile="full" if args.full else "quick",
                            jobs=args.jobs)
    print(f"quickstart report: {report} (numbers: {report.parent / 'metrics.json'})")
    return 0


def add(sub: argparse._SubParsersAction) -> None:
    """Add `vlkd quickstart`."""
    p = sub.add_parser("quickstart", help="run the offline default pipeline on bundled data (CPU, minutes)",
                       description="Train a video-language teacher on a generated world, a text-only BERT and "
                                   "students distilled from the teacher at equal compute, VideoQA teachers and "
                                   "students, and write OUT/report.md (figures in OUT/figures/, every number in "
                                   "OUT/metrics.json). Re-running resumes where it stopped.")
    p.add_argument("--out", default=None,
                   help="output directory (default: runs/quickstart, or runs/quickstart-full with --full)")
    p.add_argument("--only", choices=["vidlankd", "videoqa"], help="run only one method's stages")
    p.add_argument("--full", action="store_true",
                   help="the conclusive study (<= 60 minutes on 2 cores): a larger world, longer training, 5 seeds, "
                        "NST, voken and CRD students, rt-polarity and wiki-topic")
    p.add_argument("--jobs", type=int, choices=[1, 2], default=2,
                   help="2 (default): run the stages on two worker processes, each on half the cores, every stage "
                        "as soon as what it needs is done (sooner on a CPU: the small models use many threads "
                        "poorly); 1: one after the other on every core")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="config overrides applied to every training stage (e.g. max_steps=20 for a smoke run)")
    p.set_defaults(func=cmd_quickstart, out_kind="dir")
