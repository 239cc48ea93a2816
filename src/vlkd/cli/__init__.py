"""The `vlkd` command: parses arguments, calls the library, turns bad input into one line + exit code 2.

One module per command group adds its subparser (`add`) and holds its handlers; every library import is
lazy, inside the handler, so that `vlkd --help` starts fast.
"""

from __future__ import annotations

import argparse
import os
import sys

from vlkd.cli import evaluate, extract, finetune, imports, ls, merge, prepare, quickstart, report, train
from vlkd.cli.common import Parser, check_outputs, version
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
