"""The `vlkd` command: parses arguments, calls the library, turns bad input into one line + exit code 2."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import typing
from typing import Callable, Iterator

from vlkd.errors import EXIT_BAD_INPUT, EXIT_PREEMPTED, Preempted, VlkdError
from vlkd.heap import keep_heap


class Parser(argparse.ArgumentParser):
    """argparse with the house rule for bad input: one line on stderr (no usage block) and exit code 2."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"vlkd: error: {message} (see {self.prog} --help)\n")


def number(ge: float | None = None, gt: float | None = None, le: float | None = None, lt: float | None = None,
           kind: type = float) -> Callable[[str], float]:
    """An argparse `type` that parses a number and checks its range with the configs' own `Range` rule."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        from vlkd.config import Range

        problem = Range(ge=ge, gt=gt, le=le, lt=lt).problem(value)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def integer(ge: float | None = None, gt: float | None = None, le: float | None = None,
            lt: float | None = None) -> Callable[[str], float]:
    return number(ge, gt, le, lt, kind=int)


class RegistryChoices:
    """The names a registry holds, for `%(choices)s` in --help, read on first use (building the parser imports
    nothing heavy). Every value passes argparse: the library checks it, with its one-line error and exit 2."""

    def __init__(self, names: Callable[[], list[str]]) -> None:
        self._names = names
        self._cache: list[str] | None = None

    def _list(self) -> list[str]:
        if self._cache is None:
            self._cache = list(self._names())
        return self._cache

    def __contains__(self, value: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(self._list())

    def __len__(self) -> int:
        return len(self._list())


def version() -> str:
    """The version of the vlkd package that is running (its `__version__`, the one pyproject.toml states)."""
    return importlib.import_module("vlkd").__version__


def task_names() -> list[str]:
    return list(importlib.import_module("vlkd.data.tasks.registry").TASK_NAMES)


def backbone_names(kind: str) -> list[str]:
    specs = importlib.import_module("vlkd.video.backbones").SPECS
    return [name for name, spec in specs.items() if spec.kind == kind]


def ls_recipes() -> list[str]:
    from vlkd.recipes import RECIPES, recipe_module

    def summary(name: str) -> str:
        return " ".join((recipe_module(name).__doc__ or "").split()).split(". ")[0].split(" (")[0]

    return [f"{name:<10} {RECIPES[name]:<24} {summary(name)}" for name in sorted(RECIPES)]


def ls_presets() -> list[str]:
    from vlkd.config import list_model_presets, list_presets, read_config_source

    lines = [f"{name:<24} task: {read_config_source(name)[0].get('task', '?')}" for name in list_presets()]
    return lines + [f"{name:<24} model section (model: {name})" for name in list_model_presets()]


def ls_losses() -> list[str]:
    from vlkd.losses import LOSSES

    return [f"{e.name:<20} {e.kind:<11} {e.summary}" for e in sorted(LOSSES.values(), key=lambda e: (e.kind, e.name))]


def ls_tasks() -> list[str]:
    from vlkd.data.tasks.registry import TASKS

    lines = [f"{s.name:<12} {s.kind:<9} {', '.join(s.metrics)}"
             + (f" (dev sets: {', '.join(split for split, _ in s.dev)})" if len(s.dev) > 1 else "")
             for s in TASKS.values()]
    return lines + [f"{'ax':<12} {'classify':<9} no metrics: GLUE diagnostics predicted by a fine-tuned MNLI model"]


def ls_backbones() -> list[str]:
    from vlkd.video.backbones import SPECS

    return [f"{s.name:<18} {'--appearance' if s.kind == '2d' else '--motion':<13} {s.dim:>5}-d  {s.size}px"
            + (f"  {s.notes}" if s.notes else "") for s in SPECS.values()]


LISTS: dict[str, Callable[[], list[str]]] = {"recipes": ls_recipes, "presets": ls_presets, "losses": ls_losses,
                                             "tasks": ls_tasks, "backbones": ls_backbones}


def cmd_ls(args: argparse.Namespace) -> int:
    sections = [args.what] if args.what else list(LISTS)
    for i, name in enumerate(sections):
        if len(sections) > 1:
            print(("\n" if i else "") + f"{name}:")
        print("\n".join(LISTS[name]()))
    return 0


def cmd_quickstart(args: argparse.Namespace) -> int:
    from vlkd.quickstart import run_quickstart

    out = args.out or ("runs/quickstart-full" if args.full else "runs/quickstart")
    report = run_quickstart(out, args.only, overrides=args.overrides, profile="full" if args.full else "quick",
                            jobs=args.jobs)
    print(f"quickstart report: {report} (numbers: {report.parent / 'metrics.json'})")
    return 0


SHARD_HELP = ("do only shard K of N (0 <= K < N, e.g. $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT) into "
              "OUT.shards/K-of-N/; then `vlkd merge-shards OUT` (docs/commands.md)")
# command recorded in a shard's shard.json -> (module, function) that merges its shards
MERGERS = {"prepare text": ("vlkd.data.text.sharded", "merge_token_store_shards"),
           "prepare howto100m": ("vlkd.data.teacher.howto100m", "merge_howto100m_shards"),
           "extract-features": ("vlkd.video.extract", "merge_feature_shards"),
           "prepare teacher-targets": ("vlkd.eval.teacher_targets", "merge_teacher_target_shards")}


def shard_done(out: str, shard: object) -> int:
    from vlkd.shards import shard_dir

    print(f"{shard_dir(out, shard)}: shard {shard} complete; when all are, run `vlkd merge-shards {out}`")
    return 0


def cmd_merge_shards(args: argparse.Namespace) -> int:
    from vlkd.shards import check_merge_target, collect_shards, remove_shards

    shards = collect_shards(args.out)
    if shards.command not in MERGERS:
        raise VlkdError(f"shards of an unknown command {shards.command!r}", shards.dirs[0])
    check_merge_target(args.out, args.overwrite)
    module, function = MERGERS[shards.command]
    getattr(importlib.import_module(module), function)(shards, args.out)
    if not args.keep_shards:
        remove_shards(args.out)
    print(f"{args.out}: merged {shards.count} shards of `vlkd {shards.command}`")
    return 0


def cmd_prepare_text(args: argparse.Namespace) -> int:
    from vlkd.data.text.store import build_token_store
    from vlkd.shards import parse_shard

    shard = parse_shard(args.shard)
    if shard is not None:
        from vlkd.data.text.sharded import build_token_store_shard

        build_token_store_shard(args.input, args.tokenizer, args.out, shard, block_size=args.block_size,
                                fmt=args.format, min_words=args.min_words)
        return shard_done(args.out, shard)
    meta = build_token_store(args.input, args.tokenizer, args.out, block_size=args.block_size, fmt=args.format,
                             min_words=args.min_words, overwrite=args.overwrite)
    print(f"{args.out}: {meta['num_blocks']:,} blocks of {meta['block_size']} tokens "
          f"({meta['num_tokens']:,} tokens)")
    return 0


def cmd_prepare_world(args: argparse.Namespace) -> int:
    from vlkd.data.world.generate import build_world

    summary = build_world(args.out, args.videos, seed=args.seed, workers=args.workers, overwrite=args.overwrite)
    print(f"{args.out}: {summary['num_videos']} videos, {summary['num_questions']} questions")
    return 0


def cmd_prepare_bundled(args: argparse.Namespace) -> int:
    from vlkd.data.tasks.bundled import prepare_bundled

    for task, counts in prepare_bundled(args.out).items():
        print(f"{args.out}/{task}: " + ", ".join(f"{n:,} {split}" for split, n in counts.items()))
    return 0


def cmd_finetune(args: argparse.Namespace) -> int:
    from vlkd.recipes.finetune import finetune_command

    results = finetune_command(args.task, args.data_dir, args.model, args.out, args.overrides)
    print(f"{args.out}: " + ", ".join(f"{k}={v:.4f}" for k, v in results.items() if isinstance(v, float)))
    return 0


def cmd_prepare_howto100m(args: argparse.Namespace) -> int:
    from vlkd.data.teacher.howto100m import prepare_howto100m
    from vlkd.shards import parse_shard

    shard = parse_shard(args.shard)
    meta = prepare_howto100m(args.captions, args.features, args.out, args.tokenizer, feature_2d=args.feature_2d,
                             feature_3d=args.feature_3d, word_budget=args.word_budget, max_tokens=args.max_tokens,
                             max_steps=args.max_steps, valid_fraction=args.valid_fraction, shard=shard)
    if shard is not None:
        return shard_done(args.out, shard)
    splits = ", ".join(f"{k}: {v['samples']:,} samples from {len(v['videos']):,} videos"
                       for k, v in meta["splits"].items())
    print(f"{args.out}: {splits}; skipped {meta['videos_skipped'] or 'none'}")
    return 0


def cmd_prepare_teacher_targets(args: argparse.Namespace) -> int:
    from vlkd.eval.teacher_targets import prepare_teacher_targets
    from vlkd.shards import parse_shard

    shard = parse_shard(args.shard)
    meta = prepare_teacher_targets(args.teacher, args.store, args.out, form=args.form, vokens=args.vokens,
                                   batch_size=args.batch_size, overwrite=args.overwrite, shard=shard)
    if shard is not None:
        return shard_done(args.out, shard)
    vokens = f", vokens over {meta['num_vokens']:,} videos" if meta["vokens"] else ""
    print(f"{args.out}: teacher targets ({meta['form']}) of {meta['store']['num_blocks']:,} blocks x "
          f"{meta['seq_len']} tokens, teacher width {meta['width']}{vokens}; {meta['bytes'] / 1e9:.2f} GB")
    return 0


def cmd_prepare_videoqa(args: argparse.Namespace) -> int:
    from vlkd.data.videoqa.prepare import prepare_videoqa

    meta = prepare_videoqa(args.dataset, args.qa_dir, args.glove, args.out, mapping=args.mapping,
                           answer_top=args.answer_top, features=args.features, overwrite=args.overwrite)
    splits = meta["splits"]
    dropped = sum(s["dropped_missing_video"] for s in splits.values())
    if dropped:
        videos = sum(len(s["missing_videos"]) for s in splits.values())
        per_split = ", ".join(f"{k}: {s['dropped_missing_video']:,}" for k, s in splits.items())
        print(f"vlkd: warning: dropped {dropped:,} questions of {videos:,} videos missing from {args.features} "
              f"({per_split})", file=sys.stderr)
    counts = ", ".join(f"{k} {s['questions']:,} questions ({s['oov_answers']:,} OOV answers)"
                       for k, s in splits.items())
    print(f"{args.out}: {counts}; question vocabulary {meta['question_vocab_size']:,} words "
          f"(GloVe coverage {100 * meta['glove']['coverage']:.1f}%), {meta['num_answers']:,} answers")
    return 0


def cmd_extract_features(args: argparse.Namespace) -> int:
    from vlkd.shards import parse_shard
    from vlkd.video.extract import extract_features

    shard = parse_shard(args.shard)
    counts = extract_features(args.videos, args.out, layout=args.layout, appearance=args.appearance,
                              motion=args.motion, weights=args.weights, motion_weights=args.motion_weights,
                              num_clips=args.num_clips, appearance_size=args.appearance_size,
                              motion_size=args.motion_size, workers=args.workers, device=args.device,
                              mapping=args.mapping, shard=shard)
    if shard is not None:
        failed = f", {counts['failed']} failed" if counts["failed"] else ""
        print(f"shard {shard}: {counts['extracted']} extracted, {counts['skipped']} already done{failed}")
        return shard_done(args.out, shard)
    failed = f", {counts['failed']} failed (see {args.out}/failed.txt)" if counts["failed"] else ""
    print(f"{args.out}: {counts['extracted']} extracted, {counts['skipped']} already done{failed}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from vlkd.recipes import load_config, run_training

    config = load_config(args.config, args.overrides)
    run_dir = run_training(config)
    print(f"run directory: {run_dir}")
    return 0


def cmd_evaluate_retrieval(args: argparse.Namespace) -> int:
    from vlkd.eval.grounding import evaluate_retrieval

    result = evaluate_retrieval(args.run, args.data, args.split, args.videos, args.queries, args.top, args.out)
    print(json.dumps(result))
    return 0


def cmd_evaluate_grounding(args: argparse.Namespace) -> int:
    from vlkd.eval.text_grounding import evaluate_text_grounding

    print(json.dumps(evaluate_text_grounding(args.model, args.teacher, args.data, args.out, args.ridge)))
    return 0


def cmd_evaluate_videoqa(args: argparse.Namespace) -> int:
    from vlkd.eval.videoqa import evaluate_videoqa

    print(json.dumps(evaluate_videoqa(args.run, args.split, args.data, args.features, args.out)))
    return 0


def cmd_evaluate_diagnostic(args: argparse.Namespace) -> int:
    from vlkd.eval.diagnostic import diagnostic_table, evaluate_diagnostic

    result, target = evaluate_diagnostic(args.model, args.data, args.out, tokenizer=args.tokenizer,
                                         max_length=args.max_length, batch_size=args.batch_size)
    print(diagnostic_table(result))
    print(f"vlkd: {target}", file=sys.stderr)
    return 0


def cmd_import_vidlankd(args: argparse.Namespace) -> int:
    from vlkd.models.vidlankd import import_vidlankd, key_groups

    done = import_vidlankd(args.checkpoint, args.role, args.tokenizer, args.out)
    print(f"vlkd: import: unexpected keys (not imported): {key_groups(done.unexpected)}", file=sys.stderr)
    print(f"vlkd: import: missing keys (freshly initialised): {key_groups(done.missing)}", file=sys.stderr)
    what = ("teacher run (text tower only: use it as teacher= of task: distill)" if done.role == "teacher" else
            "student final/" + (" with its KD head" if done.kd_head else " (no KD head)"))
    print(f"{done.out}: {what}, {done.config['num_hidden_layers']}L/{done.config['hidden_size']}H")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from vlkd.report import summarize_run

    print(summarize_run(args.run_dir))
    return 0


def check_outputs(args: argparse.Namespace) -> None:
    """Before any work: --out must be usable as what the command writes (a directory, or a path prefix)."""
    from vlkd.io import check_output_dir, check_output_prefix

    out, kind = getattr(args, "out", None), getattr(args, "out_kind", None)
    if out and kind == "dir":
        check_output_dir(out, "--out")
    elif out and kind == "prefix":
        check_output_prefix(out, "--out")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="vlkd",
        description="Video-language knowledge distillation (VidLanKD; multimodal KD for VideoQA).",
        epilog="Bad input gives a one-line error and exit code 2.",
    )
    parser.add_argument("--version", action="version", version=f"vlkd {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("ls", help="list recipes, presets, losses, downstream tasks or feature backbones",
                       description="List what the registries hold: recipes (`task:` values), shipped presets, "
                                   "registered losses (name, input kind, summary), fine-tuning tasks (head kind, "
                                   "official metrics) and feature backbones. Without WHAT, every section.")
    p.add_argument("what", nargs="?", choices=list(LISTS), metavar="WHAT",
                   help=f"one of {', '.join(LISTS)} (default: all)")
    p.set_defaults(func=cmd_ls)

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
                   help="2 (default): run the VidLanKD and VideoQA pipelines at once, each on half the cores "
                        "(sooner on a CPU: the VideoQA models use many threads poorly); 1: one after the other")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="config overrides applied to every training stage (e.g. max_steps=20 for a smoke run)")
    p.set_defaults(func=cmd_quickstart, out_kind="dir")

    prep = sub.add_parser("prepare", help="convert raw data into vlkd's formats").add_subparsers(
        dest="what", metavar="WHAT", required=True)
    p = prep.add_parser("text", help="tokenize a text corpus into a memory-mapped token store",
                        description="Tokenize text (WikiText-103 raw, plain .txt, or the bundled Wikipedia JSON) "
                                    "into non-overlapping blocks; writes OUT/blocks.bin and OUT/meta.json.")
    p.add_argument("--input", nargs="+", required=True, metavar="FILE", help="input text files, in order")
    p.add_argument("--tokenizer", default="bundled:minilm",
                   help="tokenizer directory, `bundled:minilm` (bert-base-uncased vocab; default), or hub name")
    p.add_argument("--out", required=True, help="output directory (must not exist or be empty)")
    p.add_argument("--block-size", type=integer(ge=1), default=126, help="ids per block (default 126 -> 128 with CLS/SEP)")
    p.add_argument("--format", default="auto", choices=["auto", "wikitext", "txt", "wiki-json"],
                   help="input format (auto: .raw/.tokens -> wikitext, .json -> wiki-json, else txt)")
    p.add_argument("--min-words", type=integer(ge=0), default=None,
                   help="skip lines with fewer words (default: 5 for wikitext as the reference, else 0)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing token store in --out")
    p.add_argument("--shard", metavar="K/N", help=SHARD_HELP)
    p.set_defaults(func=cmd_prepare_text, out_kind="dir")
    p = prep.add_parser("world", help="generate the synthetic video world (mp4 + captions + questions)",
                        description="Generate a deterministic synthetic video world: OUT/videos/*.mp4, "
                                    "HowTo100M-format OUT/caption.json, MSVD-QA-format OUT/{train,val,test}_qa.json, "
                                    "OUT/world.json (ground truth) and OUT/README.md (the grammar).")
    p.add_argument("--out", required=True, help="output directory (must not exist or be empty)")
    p.add_argument("--videos", type=integer(ge=1), required=True, help="number of videos")
    p.add_argument("--seed", type=integer(ge=0), default=0, help="random seed (default 0); same seed, same world")
    p.add_argument("--workers", type=integer(ge=1), default=None, help="encoding processes (default: all cores)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing directory")
    p.set_defaults(func=cmd_prepare_world, out_kind="dir")
    p = prep.add_parser("bundled", help="write the offline tasks rt-polarity and wiki-topic (GLUE layout)",
                        description="Convert bundled real data into GLUE-layout classification tasks: "
                                    "OUT/rt-polarity (Rotten Tomatoes snippets, fresh=1/rotten=0) and OUT/wiki-topic "
                                    "(12-way topic of Wikipedia lead sections), each with fixed train/dev/test splits.")
    p.add_argument("--out", required=True, help="output directory (its task folders are replaced)")
    p.set_defaults(func=cmd_prepare_bundled, out_kind="dir")
    p = prep.add_parser("howto100m", help="build VidLanKD teacher samples from HowTo100M captions and features",
                        description="Join consecutive caption segments up to a word budget, pair each window "
                                    "with its [2D || 3D] feature steps (FEATURES/<2d>/ID.npy at 1/s, "
                                    "FEATURES/<3d>/ID.npy at 1.5/s), and write memory-mapped train/valid "
                                    "splits (by video) plus meta.json with kept/skipped counts.")
    p.add_argument("--captions", required=True, help="caption.json: {video_id: {start: [], end: [], text: []}}")
    p.add_argument("--features", required=True, help="folder holding the 2D and 3D feature subfolders")
    p.add_argument("--feature-2d", default="2d", help="2D subfolder (default 2d)")
    p.add_argument("--feature-3d", default="3d", help="3D subfolder (default 3d)")
    p.add_argument("--tokenizer", default="bundled:minilm", help="tokenizer directory or `bundled:minilm`")
    p.add_argument("--out", required=True, help="output directory (must not exist or be empty)")
    p.add_argument("--word-budget", type=integer(ge=1), default=126, help="words per caption window (default 126)")
    p.add_argument("--max-tokens", type=integer(ge=1), default=126, help="tokens kept per window (default 126)")
    p.add_argument("--max-steps", type=integer(ge=1), default=384, help="feature steps per window (default 384)")
    p.add_argument("--valid-fraction", type=number(ge=0, lt=1), default=0.05, help="share of videos held out (default 0.05)")
    p.add_argument("--shard", metavar="K/N", help=SHARD_HELP)
    p.set_defaults(func=cmd_prepare_howto100m, out_kind="dir")
    p = prep.add_parser("videoqa", help="preprocess MSVD-QA / MSRVTT-QA questions (vocabularies, labels, GloVe)",
                        description="Read QA_DIR/{train,val,test}_qa.json (lists of {video_id|video_name, question, "
                                    "answer, id?}), tokenize the questions (lower-case, final '?' dropped), build the "
                                    "question vocabulary (<NULL>=0, <UNK>=1) and the top-k answer vocabulary from "
                                    "train (an answer outside it is label 0 in train and 1 in val/test, so it never "
                                    "counts as correct), and look up GloVe vectors. Writes OUT/vocab.json, "
                                    "OUT/glove.npy (float32, vocabulary x D), OUT/{train,val,test}.jsonl (one "
                                    "question per line: id, video_id, question, tokens, answer, label, type) and "
                                    "OUT/meta.json (sizes, GloVe coverage, per-split counts). With --features, "
                                    "questions whose video is not in the HCRN feature files are dropped and counted.")
    p.add_argument("--dataset", required=True, choices=["msvd-qa", "msrvtt-qa"], help="which dataset")
    p.add_argument("--qa-dir", required=True, help="folder holding train_qa.json, val_qa.json and test_qa.json")
    p.add_argument("--mapping", default=None,
                   help="MSVD-QA youtube_mapping.txt (lines `NAME vidN`) mapping video_name to the integer N")
    p.add_argument("--glove", required=True,
                   help="a glove.*.txt file (e.g. glove.840B.300d.txt, streamed) or bundled:glove-50d "
                        "(GloVe 6B 50-d, offline)")
    p.add_argument("--answer-top", type=integer(ge=1), default=4000, help="answers kept from train, most frequent first "
                                                                 "(default 4000)")
    p.add_argument("--features", default=None,
                   help="HCRN feature folder (appearance_feat.h5, motion_feat.h5): drop questions whose video "
                        "is not in both files")
    p.add_argument("--out", required=True, help="output directory (must not exist or be empty)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    p.set_defaults(func=cmd_prepare_videoqa, out_kind="dir")
    p = prep.add_parser("teacher-targets", help="cache a frozen teacher's distillation targets for a token store",
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        description="Run a trained teacher (RUN/final, frozen) once over every block of a token "
                                    "store, fed the clean\n"
                                    "`[CLS] block [SEP]` (L = block_size + 2 tokens, no masking), and cache what "
                                    "distillation needs, so a run with\n`kd.targets: OUT` never runs "
                                    "the teacher. The teacher must share the store's vocabulary.\n\n"
                                    "Forms (OUT/targets.f16, float16, memory-mapped, row i = block i):\n"
                                    "  full      (num_blocks, L, H_t): norm(last hidden) per token; serves every "
                                    "KD loss.\n"
                                    "  nst-gram  (num_blocks, L(L+1)/2): the upper triangle of the teacher's L x L "
                                    "Gram matrix of\n"
                                    "            channel-normalised features; exact for NST only, and L x H_t / "
                                    "(L(L+1)/2) times\n"
                                    "            smaller (12x at L=128, H_t=768).\n"
                                    "--vokens adds OUT/vokens.i32 (int32, num_blocks x L): each token's nearest "
                                    "training video of the teacher\n(the vokenization baseline). OUT/meta.json "
                                    "names the teacher (weights checksum), the store (checksum), block\nsize and "
                                    "width; a cache of another store, block size or teacher is refused when used. "
                                    "The size is\nprinted before writing. Interrupted? Re-run the same command: it "
                                    "continues.")
    p.add_argument("--teacher", required=True, help="teacher run directory (with final/text and final/video)")
    p.add_argument("--store", required=True, help="token store directory (`vlkd prepare text` output)")
    p.add_argument("--out", required=True, help="output directory (re-running with it resumes)")
    p.add_argument("--form", default="full", choices=["full", "nst-gram"], help="what to store (default full)")
    p.add_argument("--vokens", action="store_true", help="also store voken ids (needs the teacher's training data)")
    p.add_argument("--batch-size", type=integer(ge=1), default=32, help="blocks per teacher forward (default 32)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing or differently-built output")
    p.add_argument("--shard", metavar="K/N", help=SHARD_HELP + "; shards are whole batches of --batch-size")
    p.set_defaults(func=cmd_prepare_teacher_targets, out_kind="dir")

    p = sub.add_parser("train", help="train with a recipe chosen by the config's `task:`",
                       description="CONFIG is a YAML file or a preset name (e.g. mlm-tiny, mlm-small, mlm-base). "
                                   "Overrides are dotted key=value pairs, e.g. lr=2e-4 model.num_layers=4 "
                                   "resume=true. Multi-GPU: accelerate launch -m vlkd train CONFIG ...")
    p.add_argument("config", help="YAML config path or preset name")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("finetune", help="fine-tune a checkpoint on GLUE / SQuAD / SWAG / PIQA / TRACIE and evaluate",
                       description="Fine-tune a local from_pretrained directory on a task in its official file layout "
                                   "and write OUT/eval_results.json (dev metrics) and the test predictions in the "
                                   "leaderboard's format (tasks: `vlkd ls tasks`; ax is the GLUE diagnostics: --model "
                                   "is a fine-tuned MNLI run's final/, no training). A folder without a test file "
                                   "trains and scores dev only. --data-dir may also be a dataset saved with "
                                   "datasets.save_to_disk (GLUE, SQuAD, SWAG, PIQA; the hf extra). A finished run "
                                   "drops its optimizer state unless keep_optimizer=true. Overrides are key=value, "
                                   "e.g. lr=2e-5 epochs=2 batch_size=16 data.max_length=128 seeds=1,2,3.")
    p.add_argument("--task", required=True, choices=RegistryChoices(task_names), metavar="TASK",
                   help="task name: %(choices)s")
    p.add_argument("--data-dir", required=True, help="the task's folder, e.g. glue_data/CoLA, or a save_to_disk folder")
    p.add_argument("--model", required=True, help="local model directory (save_pretrained output, with a tokenizer)")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    p.set_defaults(func=cmd_finetune, out_kind="dir")

    p = sub.add_parser("extract-features", help="2D appearance + 3D motion features of videos (HowTo100M or HCRN layout)",
                       description="Extract features of every video in DIR (or listed in a text file, one path per line). "
                                   "--layout howto100m: OUT/2d/<id>.npy at 1 frame/s and OUT/3d/<id>.npy on 16-frame clips "
                                   "at 24 fps (1.5/s). --layout hcrn: OUT/appearance_feat.h5 (resnet_features (V,N,16,D), "
                                   "ids) and OUT/motion_feat.h5 (resnext_features (V,N,D), ids). Re-running resumes; "
                                   "unreadable videos are listed in OUT/failed.txt. Offline defaults: MobileNetV2 (bundled "
                                   "ImageNet weights) and weight-free optical-flow motion features.")
    p.add_argument("--videos", required=True, help="directory of videos, or a text file listing video paths")
    p.add_argument("--layout", required=True, choices=["howto100m", "hcrn"], help="output layout")
    p.add_argument("--out", required=True, help="output directory (re-running with it resumes)")
    p.add_argument("--appearance", default="mobilenet_v2", choices=RegistryChoices(lambda: backbone_names("2d")),
                   metavar="NAME", help="2D backbone (default mobilenet_v2): %(choices)s")
    p.add_argument("--motion", default="flow", choices=RegistryChoices(lambda: backbone_names("3d")),
                   metavar="NAME", help="3D backbone (default flow: no weights; resnext101: Kinetics, HCRN's): "
                                        "%(choices)s")
    p.add_argument("--weights", default=None, help="appearance weights file (default: torchvision cache, "
                                                   "or the bundled file for mobilenet_v2)")
    p.add_argument("--motion-weights", default=None, help="motion weights file (e.g. resnext-101-kinetics.pth)")
    p.add_argument("--num-clips", type=integer(ge=1), default=8, help="hcrn: clips per video (MSVD-QA 8, MSRVTT-QA 16)")
    p.add_argument("--mapping", help="MSVD's youtube_mapping.txt (NAME vidN): name each video's features vidN, "
                                     "so the HCRN ids are the N of the questions")
    p.add_argument("--appearance-size", type=integer(ge=1), default=None, help="appearance frame size (default: backbone's)")
    p.add_argument("--motion-size", type=integer(ge=1), default=None, help="motion frame size (default: backbone's)")
    p.add_argument("--workers", type=integer(ge=1), default=1, help="decoding processes (default 1)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--shard", metavar="K/N", help=SHARD_HELP)
    p.set_defaults(func=cmd_extract_features, out_kind="dir")

    p = sub.add_parser("merge-shards", help="merge the shards of a --shard K/N preparation into its output",
                       description="Check that OUT.shards/ holds all N shards (0-of-N ... N-1-of-N) of one "
                                   "`--shard K/N` run of prepare text, prepare howto100m, extract-features or "
                                   "prepare teacher-targets, each complete and made from the same inputs and "
                                   "settings, then write OUT exactly as one unsharded run would (same bytes) and "
                                   "remove OUT.shards/. A missing or incomplete shard is named, exit code 2.")
    p.add_argument("out", metavar="OUT", help="the --out the shards were given")
    p.add_argument("--overwrite", action="store_true", help="replace an existing non-empty OUT")
    p.add_argument("--keep-shards", action="store_true", help="keep OUT.shards/ after merging")
    p.set_defaults(func=cmd_merge_shards)

    evaluate = sub.add_parser("evaluate", help="evaluate a finished run").add_subparsers(
        dest="what", metavar="WHAT", required=True)
    p = evaluate.add_parser("retrieval", help="a teacher's caption -> video retrieval and grounding grid",
                            description="Score caption -> video retrieval (R@1/5/10, median rank) of a teacher "
                                        "run on a prepared HowTo100M split; with --videos, also draw the middle "
                                        "frames of the top-ranked videos for a few captions (true video in "
                                        "green). Writes OUT.json (and OUT.png).")
    p.add_argument("--run", required=True, help="teacher run directory (with final/text and final/video)")
    p.add_argument("--data", required=True, help="`vlkd prepare howto100m` output directory")
    p.add_argument("--split", default="valid", choices=["train", "valid"], help="split to score (default valid)")
    p.add_argument("--videos", help="folder of the video files (ID.mp4) for the grounding grid")
    p.add_argument("--queries", type=integer(ge=1), default=4, help="captions in the grid (default 4)")
    p.add_argument("--top", type=integer(ge=1), default=5, help="videos per caption in the grid (default 5)")
    p.add_argument("--out", help="output path without suffix (default RUN/retrieval)")
    p.set_defaults(func=cmd_evaluate_retrieval, out_kind="prefix")
    p = evaluate.add_parser("grounding", help="a text-only model's grounding in video, against a teacher",
                            description="How well a text model (a distilled student, or the MLM baseline) is "
                                        "grounded in video: caption -> clip retrieval (R@1/5/10, median rank, "
                                        "with chance levels) on the held-out split of prepared HowTo100M data, "
                                        "against a frozen teacher's video embeddings of every held-out clip. "
                                        "Head route (models with a KD head, final/kd_head/): the caption's KD-head "
                                        "token vectors scored by the teacher's own similarity, the mean over "
                                        "tokens of the cosine. Probe route (any BERT): a ridge regression from "
                                        "mean-pooled final hidden states to the teacher's video embeddings, "
                                        "fitted on the train split. Writes OUT.json and prints it as one line.")
    p.add_argument("--model", required=True, help="text model: a run directory (its final/) or a save_pretrained "
                                                  "BERT directory, with its tokenizer files")
    p.add_argument("--teacher", required=True, help="teacher run directory (with final/text and final/video)")
    p.add_argument("--data", required=True, help="`vlkd prepare howto100m` output directory (same tokenizer)")
    p.add_argument("--out", help="output path without suffix (default MODEL/grounding)")
    p.add_argument("--ridge", type=number(ge=0), default=1.0, help="L2 penalty of the probe's ridge regression on "
                                                            "standardised features (default 1.0)")
    p.set_defaults(func=cmd_evaluate_grounding, out_kind="prefix")
    p = evaluate.add_parser("videoqa", help="a VideoQA run's accuracy, overall and per question type",
                            description="Score a `task: videoqa` run on a split (default test) with its best/ model "
                                        "(chosen on val during training; final/ if it has none). Writes "
                                        "OUT.json (accuracy, per-type accuracy) and OUT.predictions.jsonl (one line "
                                        "per question). Answers outside the answer vocabulary count as wrong.")
    p.add_argument("--run", required=True, help="run directory of `vlkd train` with task: videoqa")
    p.add_argument("--split", default="test", choices=["train", "val", "test"], help="split to score (default test)")
    p.add_argument("--data", help="`vlkd prepare videoqa` output (default: the run's data.path)")
    p.add_argument("--features", help="HCRN feature folder (default: the run's data.features)")
    p.add_argument("--out", help="output path without suffix (default RUN/eval-SPLIT)")
    p.set_defaults(func=cmd_evaluate_videoqa, out_kind="prefix")

    p = evaluate.add_parser("diagnostic", help="GLUE diagnostics by category: R3 of an MNLI model",
                            description="Score a fine-tuned MNLI model (a `vlkd finetune --task mnli` run's final/) "
                                        "on the labelled GLUE diagnostic file diagnostic-full.tsv (columns Lexical "
                                        "Semantics, Predicate-Argument Structure, Logic, Knowledge, Domain, Premise, "
                                        "Hypothesis, Label; fine-grained labels separated by ';'). R3, the three-"
                                        "class Matthews correlation GLUE reports, with counts: overall, per coarse "
                                        "category (examples with any of its labels) and per fine-grained label. "
                                        "Prints a table (R3 x 100) and writes OUT.json (R3 in [-1, 1]). The "
                                        "unlabelled diagnostic.tsv gives AX.tsv: vlkd finetune --task ax.")
    p.add_argument("--model", required=True, help="fine-tuned MNLI model directory (RUN/final), with its tokenizer")
    p.add_argument("--data", required=True, help="the labelled diagnostic-full.tsv")
    p.add_argument("--out", help="output path without suffix (default RUN/diagnostic for MODEL = RUN/final)")
    p.add_argument("--tokenizer", default="", help="tokenizer directory (default: the model's)")
    p.add_argument("--max-length", type=int, default=126, help="tokens per pair (default 126, as fine-tuning)")
    p.add_argument("--batch-size", type=int, default=64, help="pairs per forward pass (default 64)")
    p.set_defaults(func=cmd_evaluate_diagnostic)

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

    p = sub.add_parser("report", help="markdown summary and PNG curves of a run directory",
                       description="Writes RUN_DIR/report.md and RUN_DIR/curves.png from RUN_DIR/metrics.jsonl.")
    p.add_argument("run_dir", help="a run directory written by `vlkd train`")
    p.set_defaults(func=cmd_report)
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


if __name__ == "__main__":
    sys.exit(main())
