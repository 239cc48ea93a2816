"""The `vlkd` command: parses arguments, calls the library, turns bad input into one line + exit code 2.

One module per command group adds its subparser (`add`) and holds its handlers; every library import is
lazy, inside the handler, so that `vlkd --help` starts fast. Under a multi-process launch (torchrun,
accelerate launch) only the commands that share their work over the processes (`every_process`: train,
finetune, evaluate diagnostic) run on every process; any other runs on process 0 as one process would.
"""

from __future__ import annotations

import argparse
import os
import sys

from vlkd.cli import evaluate, extract, finetune, imports, ls, merge, prepare, quickstart, report, train
from vlkd.cli.common import Parser, check_outputs, launch_rank, one_process, version
from vlkd.errors import EXIT_BAD_INPUT, EXIT_PREEMPTED, Preempted, VlkdError
from vlkd.heap import keep_heap

COMMANDS = (ls, quickstart, prepare, train, finetune, extract, merge, evaluate, imports, report)  # the order of --help


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="vlkd",
        description="Video-language knowledge distillation (VidLanKD; multimodal KD for VideoQA).",
        epilog="Bad input gives a one-line error and exit code 2.",
    )
    parser.add_argument("--version", action="version", version=f"vlkd {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    keep_heap()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help (0) or a bad option (2, one line printed by Parser.error)
        return e.code if isinstance(e.code, int) else 2
    try:
        check_outputs(args)
        rank, processes = launch_rank()
        if processes == 1 or getattr(args, "every_process", False):
            return args.func(args)
        # Under torchrun / accelerate launch, a command that does not share its work out runs on process 0
        # alone (one writer of its output); the others do nothing.
        name = " ".join(part for part in (args.command, getattr(args, "what", ""), getattr(args, "source", "")) if part)
        if rank:
            print(f"vlkd: process {rank} of {processes}: `vlkd {name}` runs on process 0 only, nothing to do here",
                  file=sys.stderr)
            return 0
        with one_process():
            return args.func(args)
    except VlkdError as e:
        print(f"vlkd: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Preempted as e:
        print(f"vlkd: stopped: {e}", file=sys.stderr)
        return EXIT_PREEMPTED
    except KeyboardInterrupt:
        print("vlkd: interrupted", file=sys.stderr)
        return 130
