"""The downstream tasks vlkd fine-tunes on: what an example is, and each task's specification.

A `TaskSpec` says how to read each split of a task's official files, what the model predicts
(classes, a score, one of several choices, or an answer span), which metrics are official and how they
are scored, and which files the predictions go to, in which format: fine-tuning (`recipes/finetune.py`)
reads all of it from the spec, so adding a task is a spec, its reader and their test. Readers live next to their formats (glue.py, choice.py,
tracie.py, qa.py); the registry `TASKS` is assembled in `vlkd.data.tasks.registry`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from vlkd.errors import VlkdError

# kind of prediction head
CLASSIFY, REGRESS, CHOICE, SPAN = "classify", "regress", "choice", "span"
# how a dev set is scored (recipes/finetune.py SCORERS): `metrics` on the predicted labels or scores,
# the official SQuAD scripts, or the AllenAI TRACIE evaluator
LABELS, SQUAD, TRACIE_SCORER = "labels", "squad", "tracie"
# prediction file formats: `index\tprediction` with a header, or one prediction per line
TSV, LST = "tsv", "lst"


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
    prediction_format: str = TSV  # TSV: `index\tprediction` with header; LST: one prediction per line
    path: Callable[[Path, str], Path] | None = None  # (data_dir, split) -> the split's file in the official layout
    scorer: str = LABELS  # how a dev set is scored: LABELS, SQUAD or TRACIE_SCORER
    allow_null: bool = False  # SQuAD v2.0: a question may have no answer ("" predicted; null_odds.json written)
    leaderboard_labels: tuple[str, ...] = ()  # class names in prediction files, when not `labels` (TRACIE)
    dev_predictions: str = ""  # a file the dev predictions also go to (TRACIE: its evaluation split is its test set)
    beside: tuple[tuple[str, str], ...] = ()  # (folder beside the task folder, predicted task) that the final
    #   model also predicts when the folder holds it (MNLI: GLUE's diagnostic/ with ax)
    predicted_by: str = ""  # a task only predicted, never trained: the task whose fine-tuned model predicts it
    diagnostic: str = ""  # a labelled file in the folder scored R3 by category when present (GLUE's diagnostic-full.tsv)


def label_index(labels: tuple[str, ...], value: str, path: Path, line: int) -> int:
    """The class index of a label as written in a data file; an unknown label is an error."""
    try:
        return labels.index(value.strip())
    except ValueError:
        raise VlkdError(f"line {line}: unknown label {value!r} (expected one of: {', '.join(labels)})",
                        path) from None
