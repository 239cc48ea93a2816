"""Every task `vlkd finetune --task` accepts, by name."""

from __future__ import annotations

from vlkd.data.tasks.choice import PIQA, SWAG
from vlkd.data.tasks.glue import GLUE_TASKS
from vlkd.data.tasks.bundled import RT_POLARITY, WIKI_TOPIC
from vlkd.data.tasks.squad import SQUAD1, SQUAD2
from vlkd.data.tasks.spec import TaskSpec
from vlkd.data.tasks.tracie import TRACIE
from vlkd.errors import VlkdError

TASKS: dict[str, TaskSpec] = {**GLUE_TASKS, "squad1": SQUAD1, "squad2": SQUAD2, "swag": SWAG, "piqa": PIQA,
                              "tracie": TRACIE, "rt-polarity": RT_POLARITY, "wiki-topic": WIKI_TOPIC}
TASK_NAMES = (*TASKS, "ax")  # ax: the GLUE diagnostics, predicted with a fine-tuned MNLI model


def get_task(name: str) -> TaskSpec:
    if name not in TASKS:
        raise VlkdError(f"unknown task {name!r} (tasks: {', '.join(TASK_NAMES)})")
    return TASKS[name]
