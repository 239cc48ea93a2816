"""GLUE tasks in the layout of the standard download script, each with its own columns.

One folder per task: `train.tsv`, `dev.tsv` (MNLI: `dev_matched.tsv`, `dev_mismatched.tsv`), `test.tsv`
(MNLI: `test_matched.tsv`, `test_mismatched.tsv`); CoLA's train/dev have no header; the diagnostic
set AX is `diagnostic/diagnostic.tsv`, and its labelled release `diagnostic/diagnostic-full.tsv` (columns
`Lexical Semantics, Predicate-Argument Structure, Logic, Knowledge, Domain, Premise, Hypothesis, Label`; the
fine-grained labels of a coarse category separated by ';', empty when none). The bundled offline tasks `rt-polarity` and `wiki-topic` use the
SST-2 columns. Test predictions use the GLUE leaderboard's file names and label names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from vlkd.data.tasks.spec import CLASSIFY, REGRESS, PairExample, TaskSpec, label_index
from vlkd.data.tasks.tsv import read_tsv
from vlkd.errors import VlkdError


@dataclass(frozen=True)
class Columns:
    """Where a split's texts, label and index are: column names, or positions for header-less files."""

    a: str
    b: str | None = None
    label: str | None = None  # None: a test file
    index: str | None = None  # the test file's id column
    positions: tuple[int, ...] | None = None  # header-less: the positions of (a, label)


def read_pairs(kind: str, labels: tuple[str, ...], files: dict[str, tuple[str, Columns]], data_dir: Path,
               split: str) -> list[PairExample]:
    """Examples of one split of a GLUE-format task (`files`: split -> (file name, its columns))."""
    name, cols = files[split]
    path = data_dir / name
    wanted = [c for c in (cols.a, cols.b, cols.label, cols.index) if c is not None]
    rows = read_tsv(path, wanted, positions=cols.positions)
    examples = []
    for row in rows:
        f = row.fields
        label: int | float | None = None
        if cols.label is not None:
            if kind == REGRESS:
                try:
                    label = float(f[cols.label])
                except ValueError:
                    label = math.nan
                if not math.isfinite(label):
                    raise VlkdError(f"line {row.line}: score {f[cols.label]!r} is not a finite number", path)
            else:
                label = label_index(labels, f[cols.label], path, row.line)
        index = f[cols.index] if cols.index else str(len(examples))
        examples.append(PairExample(f[cols.a], f[cols.b] if cols.b else None, label, index))
    return examples


def _task(name: str, kind: str, metrics: tuple[str, ...], labels: tuple[str, ...], labelled: Columns,
          test: Columns, *, dev: tuple[tuple[str, str], ...] = (("dev", ""),),
          test_files: tuple[tuple[str, str, str], ...] = (), beside: tuple[tuple[str, str], ...] = ()) -> TaskSpec:
    """A GLUE-format task. `test_files`: (split, file in the folder, leaderboard prediction file)."""
    files: dict[str, tuple[str, Columns]] = {"train": ("train.tsv", labelled)}
    for split, _ in dev:
        files[split] = (f"{split}.tsv", labelled)
    for split, file, _ in test_files:
        files[split] = (file, test)
    return TaskSpec(name=name, kind=kind, metrics=metrics, labels=labels, read=partial(read_pairs, kind, labels, files),
                    train="train", dev=dev, test=tuple((split, out) for split, _, out in test_files),
                    path=partial(split_path, files), beside=beside)


def split_path(files: dict[str, tuple[str, Columns]], data_dir: Path, split: str) -> Path:
    return data_dir / files[split][0]


BINARY = ("0", "1")
NLI3 = ("contradiction", "entailment", "neutral")  # the GLUE leaderboard's MNLI / AX label names
NLI2 = ("entailment", "not_entailment")
INDEXED = Columns("sentence", index="index")
PAIRED = Columns("sentence1", "sentence2", index="index")

GLUE_TASKS = {
    "cola": _task("cola", CLASSIFY, ("mcc",), BINARY, Columns("sentence", label="label", positions=(3, 1)),
                  INDEXED, test_files=(("test", "test.tsv", "CoLA.tsv"),)),
    "sst2": _task("sst2", CLASSIFY, ("accuracy",), BINARY, Columns("sentence", label="label"), INDEXED,
                  test_files=(("test", "test.tsv", "SST-2.tsv"),)),
    "mrpc": _task("mrpc", CLASSIFY, ("accuracy", "f1"), BINARY,
                  Columns("#1 String", "#2 String", label="Quality"), Columns("#1 String", "#2 String", index="index"),
                  test_files=(("test", "test.tsv", "MRPC.tsv"),)),
    "qqp": _task("qqp", CLASSIFY, ("accuracy", "f1"), BINARY,
                 Columns("question1", "question2", label="is_duplicate"), Columns("question1", "question2", index="id"),
                 test_files=(("test", "test.tsv", "QQP.tsv"),)),
    "stsb": _task("stsb", REGRESS, ("pearson", "spearman"), (), Columns("sentence1", "sentence2", label="score"),
                  PAIRED, test_files=(("test", "test.tsv", "STS-B.tsv"),)),
    "mnli": _task("mnli", CLASSIFY, ("accuracy",), NLI3, Columns("sentence1", "sentence2", label="gold_label"),
                  PAIRED, dev=(("dev_matched", ""), ("dev_mismatched", "_mm")),
                  test_files=(("test_matched", "test_matched.tsv", "MNLI-m.tsv"),
                              ("test_mismatched", "test_mismatched.tsv", "MNLI-mm.tsv")),
                  beside=(("diagnostic", "ax"),)),  # the standard layout: glue_data/{MNLI,diagnostic}
    "qnli": _task("qnli", CLASSIFY, ("accuracy",), NLI2, Columns("question", "sentence", label="label"),
                  Columns("question", "sentence", index="index"), test_files=(("test", "test.tsv", "QNLI.tsv"),)),
    "rte": _task("rte", CLASSIFY, ("accuracy",), NLI2, Columns("sentence1", "sentence2", label="label"), PAIRED,
                 test_files=(("test", "test.tsv", "RTE.tsv"),)),
    "wnli": _task("wnli", CLASSIFY, ("accuracy",), BINARY, Columns("sentence1", "sentence2", label="label"), PAIRED,
                  test_files=(("test", "test.tsv", "WNLI.tsv"),)),
}

# The diagnostic set: predicted by an MNLI model, never trained on; `diagnostic.tsv` in its own folder.
AX_FILE, AX_PREDICTIONS = "diagnostic.tsv", "AX.tsv"


def read_ax(path: Path) -> list[PairExample]:
    """The GLUE diagnostic examples (index, sentence1, sentence2), unlabelled."""
    return [PairExample(r.fields["sentence1"], r.fields["sentence2"], None, r.fields["index"])
            for r in read_tsv(path, ["index", "sentence1", "sentence2"])]


def read_ax_split(data_dir: Path, split: str) -> list[PairExample]:
    return read_ax(data_dir / AX_FILE)


def bundled_task(name: str, labels: tuple[str, ...]) -> TaskSpec:
    """An offline task written by `vlkd prepare bundled` in the SST-2 layout."""
    return _task(name, CLASSIFY, ("accuracy",), labels, Columns("sentence", label="label"), INDEXED,
                 test_files=(("test", "test.tsv", f"{name}.tsv"),))


# The labelled diagnostic set: scored with an MNLI model, R3 overall and by category (`vlkd evaluate diagnostic`).
AX_FULL_FILE = "diagnostic-full.tsv"

# GLUE's diagnostics: no training split, predicted (AX.tsv) by a fine-tuned MNLI model
AX = TaskSpec(name="ax", kind=CLASSIFY, metrics=(), read=read_ax_split, train="", dev=(), test=(("ax", AX_PREDICTIONS),),
              labels=NLI3, path=lambda data_dir, split: data_dir / AX_FILE, predicted_by="mnli", diagnostic=AX_FULL_FILE)
AX_CATEGORIES = ("Lexical Semantics", "Predicate-Argument Structure", "Logic", "Knowledge")


@dataclass
class DiagnosticExample:
    """One labelled diagnostic pair: the MNLI label index and its fine-grained labels per coarse category."""

    pair: PairExample
    categories: dict[str, list[str]]
    domain: str


def read_diagnostic_full(path: Path) -> list[DiagnosticExample]:
    """The labelled GLUE diagnostic file (`diagnostic-full.tsv`), every coarse category column required."""
    rows = read_tsv(path, [*AX_CATEGORIES, "Domain", "Premise", "Hypothesis", "Label"])
    examples = []
    for row in rows:
        f = row.fields
        label = label_index(NLI3, f["Label"], path, row.line)
        categories = {c: [x.strip() for x in f[c].split(";") if x.strip()] for c in AX_CATEGORIES}
        pair = PairExample(f["Premise"], f["Hypothesis"], label, str(len(examples)))
        examples.append(DiagnosticExample(pair, categories, f["Domain"].strip()))
    return examples
