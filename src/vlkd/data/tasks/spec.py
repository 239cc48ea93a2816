"""The downstream tasks vlkd fine-tunes on: what an example is, and each task's specification.

A `TaskSpec` says how to read each split of a task's official files, what the model predicts
(classes, a score, one of several choices, or an answer span), which metrics are official, and
which files the test predictions go to. Readers live next to their formats (glue.py, choice.py,
tracie.py, qa.py); the registry `TASKS` is assembled in `vlkd.data.tasks.registry`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from vlkd.errors import VlkdError

# kind of prediction head
CLASSIFY, REGRESS, CHOICE, SPAN = "classify", "regress", "choice", "span"


@dataclass
class PairExample:
    """One sentence or sentence pair; `label` is a class index, a score, or None (test files)."""

    text_a: str
    text_b: str | None
    label: int | float | None
    index: str  # the id the leaderboard expects in the prediction file


@dataclass
class ChoiceExample:
    """A context and its candidate continuations; `label` is the index of the right one."""

    context: str
    endings: list[str]
    label: int | None
    index: str


@dataclass(frozen=True)
class TaskSpec:
    name: str
    kind: str
    metrics: tuple[str, ...]
    read: Callable[[Path, str], list[Any]]  # (data_dir, split) -> examples
    train: str  # split name of the training set
    dev: tuple[tuple[str, str], ...]  # (split, suffix of its metric keys): MNLI mismatched -> "_mm"
    test: tuple[tuple[str, str], ...] = ()  # (split, prediction file name)
    labels: tuple[str, ...] = ()  # class names, as written in the files and the predictions
    max_length: int = 126  # the reference's GLUE setting
    prediction_format: str = "tsv"  # tsv: `index\tprediction` with header; lst: one prediction per line
    path: Callable[[Path, str], Path] | None = None  # (data_dir, split) -> the split's file in the official layout


def label_index(labels: tuple[str, ...], value: str, path: Path, line: int) -> int:
    """The class index of a label as written in a data file; an unknown label is an error."""
    try:
        return labels.index(value.strip())
    except ValueError:
        raise VlkdError(f"line {line}: unknown label {value!r} (expected one of: {', '.join(labels)})",
                        path) from None
