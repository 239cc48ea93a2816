"""Every task `vlkd finetune --task` accepts, by name, and reading a split from either form a task folder
takes: the official files, or a Hugging Face dataset saved with `save_to_disk` (`hf.py`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vlkd.data.tasks.choice import PIQA, SWAG
from vlkd.data.tasks.glue import AX, GLUE_TASKS
from vlkd.data.tasks.bundled import RT_POLARITY, WIKI_TOPIC
from vlkd.data.tasks.hf import has_split as hf_has_split
from vlkd.data.tasks.hf import is_saved_dataset, read_saved
from vlkd.data.tasks.squad import SQUAD1, SQUAD2
from vlkd.data.tasks.spec import TaskSpec
from vlkd.data.tasks.tracie import TRACIE
from vlkd.errors import VlkdError

TASKS: dict[str, TaskSpec] = {**GLUE_TASKS, "squad1": SQUAD1, "squad2": SQUAD2, "swag": SWAG, "piqa": PIQA,
                              "tracie": TRACIE, "rt-polarity": RT_POLARITY, "wiki-topic": WIKI_TOPIC}
PREDICTED: dict[str, TaskSpec] = {"ax": AX}  # only predicted (`predicted_by`): the GLUE diagnostics, by an MNLI model
TASK_NAMES = (*TASKS, *PREDICTED)


def get_task(name: str) -> TaskSpec:
    spec = TASKS.get(name) or PREDICTED.get(name)
    if spec is None:
        raise VlkdError(f"unknown task {name!r} (tasks: {', '.join(TASK_NAMES)})")
    return spec


def read_split(spec: TaskSpec, data_dir: Path, split: str) -> list[Any]:
    """The examples of one split, from the official files or a saved Hugging Face dataset."""
    return read_saved(spec, data_dir, split) if is_saved_dataset(data_dir) else spec.read(data_dir, split)


def has_split(spec: TaskSpec, data_dir: Path, split: str) -> bool:
    """Whether the folder holds this split (a test split is often missing: GLUE hides its test labels)."""
    if is_saved_dataset(data_dir):
        return hf_has_split(data_dir, split)
    return spec.path is None or spec.path(data_dir, split).is_file()


def split_source(spec: TaskSpec, data_dir: Path, split: str) -> str:
    """Where a split is read from, for messages: its file, or the saved dataset's split."""
    if is_saved_dataset(data_dir):
        return f"{data_dir} (split {split})"
    return str(spec.path(data_dir, split)) if spec.path is not None else f"{data_dir} ({split})"
