"""`vlkd import vidlankd`: convert another project's released checkpoint into a vlkd run directory."""

from __future__ import annotations

import argparse
import sys


def cmd_import_vidlankd(args: argparse.Namespace) -> int:
    from vlkd.models.vidlankd import import_vidlankd, key_groups

    done = import_vidlankd(args.checkpoint, args.role, args.tokenizer, args.out)
    print(f"vlkd: import: unexpected keys (not imported): {key_groups(done.unexpected)}", file=sys.stderr)
    print(f"vlkd: import: missing keys (freshly initialised): {key_groups(done.missing)}", file=sys.stderr)
    what = ("teacher run (text tower only: use it as teacher= of task: distill)" if done.role == "teacher" else
            "student final/" + (" with its KD head" if done.kd_head else " (no KD head)"))
    print(f"{done.out}: {what}, {done.config['num_hidden_layers']}L/{done.config['hidden_size']}H")
    return 0


def add(sub: argparse._SubParsersAction) -> None:
    """Add `vlkd import vidlankd`."""
    imports = sub.add_parser("import", help="convert another project's released checkpoint").add_subparsers(
        dest="source", metavar="SOURCE", required=True)
    p = imports.add_parser("vidlankd", help="a released VidLanKD teacher or student (pytorch_model.bin)",
                           description="Convert a released VidLanKD checkpoint (transformers-3.3 pytorch_model.bin "
                                       "of CoLwithBert + config.json, loaded with weights_only) into a vlkd run "
                                       "directory. --role teacher: OUT/final/text, a teacher run usable as teacher= "
                                       "of task: distill (text tower only: commands that need a video tower refuse "
                                       "it). --role student: OUT/final/ (a save_pretrained BERT) with "
                                       "kd1_student_head as its KD head in final/kd_head/. Unexpected and missing "
                                       "keys are reported on one line each.")
    p.add_argument("--checkpoint", required=True, help="directory with config.json and pytorch_model.bin")
    p.add_argument("--role", required=True, choices=["teacher", "student"], help="what the checkpoint is")
    p.add_argument("--tokenizer", required=True, help="tokenizer directory (bert-base-uncased's files, or "
                                                      "bundled:minilm: the same vocabulary)")
    p.add_argument("--out", required=True, help="output run directory (new or empty)")
    p.set_defaults(func=cmd_import_vidlankd, out_kind="dir")
