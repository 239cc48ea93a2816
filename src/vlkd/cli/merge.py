"""`vlkd merge-shards`: merge the shards of a `--shard K/N` preparation into its output."""

from __future__ import annotations

import argparse
import functools
import importlib

from vlkd.cli.common import add_overwrite
from vlkd.errors import VlkdError

# command recorded in a shard's shard.json -> (module, function) that writes the merged output into a directory
MERGERS = {"prepare text": ("vlkd.data.text.sharded", "merge_token_store_shards"),
           "prepare howto100m": ("vlkd.data.teacher.howto100m", "merge_howto100m_shards"),
           "extract-features": ("vlkd.video.extract", "merge_feature_shards"),
           "prepare teacher-targets": ("vlkd.data.teacher.targets", "merge_teacher_target_shards")}


def cmd_merge_shards(args: argparse.Namespace) -> int:
    from vlkd.preparation import WriteOnce
    from vlkd.shards import collect_shards, remove_shards

    shards = collect_shards(args.out)
    if shards.command not in MERGERS:
        raise VlkdError(f"shards of an unknown command {shards.command!r}", shards.dirs[0])
    output = WriteOnce("merge-shards", args.out, overwrite=args.overwrite)
    module, function = MERGERS[shards.command]
    output.write(functools.partial(getattr(importlib.import_module(module), function), shards))
    if not args.keep_shards:
        remove_shards(args.out)
    print(f"{args.out}: merged {shards.count} shards of `vlkd {shards.command}`")
    return 0


def add(sub: argparse._SubParsersAction) -> None:
    """Add `vlkd merge-shards`."""
    p = sub.add_parser("merge-shards", help="merge the shards of a --shard K/N preparation into its output",
                       description="Check that OUT.shards/ holds all N shards (0-of-N ... N-1-of-N) of one "
                                   "`--shard K/N` run of prepare text, prepare howto100m, extract-features or "
                                   "prepare teacher-targets, each complete and made from the same inputs and "
                                   "settings, then write OUT exactly as one unsharded run would (same bytes) and "
                                   "remove OUT.shards/. A missing or incomplete shard is named, exit code 2.")
    p.add_argument("out", metavar="OUT", help="the --out the shards were given")
    add_overwrite(p)
    p.add_argument("--keep-shards", action="store_true", help="keep OUT.shards/ after merging")
    p.set_defaults(func=cmd_merge_shards)
