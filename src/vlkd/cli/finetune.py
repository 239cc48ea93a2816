"""`vlkd finetune`: fine-tune a checkpoint on a downstream task and evaluate it."""

from __future__ import annotations

import argparse

from vlkd.cli.common import RegistryChoices


def task_names() -> list[str]:
    """The downstream tasks' names (`TASKS`), for --task."""
    from vlkd.data.tasks.registry import TASK_NAMES

    return list(TASK_NAMES)


def cmd_finetune(args: argparse.Namespace) -> int:
    from vlkd.recipes.finetune import finetune_command

    results = finetune_command(args.task, args.data_dir, args.model, args.out, args.overrides)
    print(f"{args.out}: " + ", ".join(f"{k}={v:.4f}" for k, v in results.items() if isinstance(v, float)))
    return 0


def add(sub: argparse._SubParsersAction) -> None:
    """Add `vlkd finetune`."""
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
    p.set_defaults(func=cmd_finetune, out_kind="dir", every_process=True)
