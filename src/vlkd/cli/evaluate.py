"""`vlkd evaluate retrieval | grounding | videoqa | diagnostic | visual-knowledge`: evaluate a finished run or a
text model."""

from __future__ import annotations

import argparse
import json
import sys

from vlkd.cli.common import RegistryChoices, integer, number


def cmd_evaluate_retrieval(args: argparse.Namespace) -> int:
    from vlkd.eval.grounding import evaluate_retrieval

    result = evaluate_retrieval(args.run, args.data, args.split, args.videos, args.queries, args.top, args.out)
    print(json.dumps(result))
    return 0


def cmd_evaluate_grounding(args: argparse.Namespace) -> int:
    from vlkd.eval.text_grounding import evaluate_text_grounding

    result = evaluate_text_grounding(args.model, args.teacher, args.data, args.out, args.ridge, args.videos,
                                     args.queries, args.top)
    if "head_absent" in result:
        print(f"vlkd: head route absent: {result['head_absent']}", file=sys.stderr)
    print(json.dumps(result))
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


def cmd_evaluate_visual_knowledge(args: argparse.Namespace) -> int:
    from pathlib import Path

    from vlkd.eval.visual_knowledge import default_out, evaluate_visual_knowledge, summary
    from vlkd.io import write_json_atomic

    result = evaluate_visual_knowledge(args.model, args.benchmark, Path(args.data), args.protocol, args.seed)
    target = Path(args.out or default_out(args.model, args.benchmark, args.protocol)).with_suffix(".json")
    write_json_atomic(target, result)
    print(summary(result))
    print(f"vlkd: wrote {target}", file=sys.stderr)
    return 0


def benchmark_names() -> list[str]:
    """The visual-knowledge benchmarks (`BENCHMARKS`), for --benchmark."""
    from vlkd.data.visual.registry import BENCHMARKS

    return list(BENCHMARKS)


def add(sub: argparse._SubParsersAction) -> None:
    """Add the `vlkd evaluate` group."""
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
                                        "Head route (models whose kd.terms align the KD head with the teacher's "
                                        "token vectors; otherwise absent, with the reason): the caption's KD-head "
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
    p.add_argument("--videos", help="folder of the video files (ID.mp4): the head route's grounding grid (OUT.png)")
    p.add_argument("--queries", type=integer(ge=1), default=4, help="captions in the grid (default 4)")
    p.add_argument("--top", type=integer(ge=1), default=5, help="videos per caption in the grid (default 5)")
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
    p.set_defaults(func=cmd_evaluate_diagnostic, every_process=True)  # shares its predictions

    p = evaluate.add_parser("visual-knowledge", help="a text model's visual knowledge (colour, shape, size) on a "
                                                     "benchmark",
                            description="Score a text model on a visual-knowledge benchmark in its published "
                                        "format. --protocol probe: a logistic regression on the frozen model's "
                                        "mean word-piece vectors of each object (the benchmark's train split, or "
                                        "5-fold cross-validation over objects), with the majority-class and "
                                        "shuffled-label baselines; cloze (models with an MLM head): candidates "
                                        "scored at [MASK] per template, mean and best over templates. Writes "
                                        "OUT.json and prints one line per part. Formats: docs/formats.md.")
    p.add_argument("--model", required=True, help="a BERT directory, a vlkd run (best/ else final/), a teacher run "
                                                  "(its text tower), or bundled:minilm")
    p.add_argument("--benchmark", required=True, metavar="B", help="format of --data: %(choices)s",
                   choices=RegistryChoices(benchmark_names))
    p.add_argument("--data", required=True, help="the benchmark's file or folder (see above)")
    p.add_argument("--protocol", default="probe", choices=["probe", "cloze"], help="default probe")
    p.add_argument("--seed", type=integer(ge=0), default=0, help="seed of the probe's folds and label shuffle (default 0)")
    p.add_argument("--out", help="output path without suffix (default MODEL/visual-knowledge-BENCHMARK-PROTOCOL; "
                                 "./visual-knowledge-... for bundled:minilm)")
    p.set_defaults(func=cmd_evaluate_visual_knowledge, out_kind="prefix")
