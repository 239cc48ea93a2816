"""Multiple-choice tasks in their official files: SWAG (CSV) and PIQA (jsonl + a labels file).

SWAG: `train.csv`, `val.csv`, `test.csv` with columns `video-id, fold-ind, startphrase, sent1, sent2,
gold-source, ending0..ending3, label` (no label in test); the context is `sent1`, choice i is
`sent2 + " " + ending_i` (as transformers' run_swag). PIQA: `train.jsonl` + `train-labels.lst`,
`valid.jsonl` + `valid-labels.lst`, `tests.jsonl`; each line `{"goal", "sol1", "sol2"}`, labels 0/1.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from vlkd.data.tasks.spec import CHOICE, LST, ChoiceExample, TaskSpec
from vlkd.data.tasks.tsv import csv_problem, text_lines
from vlkd.errors import VlkdError

SWAG_FILES = {"train": "train.csv", "dev": "val.csv", "test": "test.csv"}
SWAG_COLUMNS = ["sent1", "sent2", "ending0", "ending1", "ending2", "ending3"]


def read_swag(data_dir: Path, split: str) -> list[ChoiceExample]:
    path = data_dir / SWAG_FILES[split]
    if not path.is_file():
        raise VlkdError("file not found", path)
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f)
            try:
                return _swag_rows(reader, split, path)
            except csv.Error as e:
                raise VlkdError(f"line {reader.line_num + 1}: {csv_problem(e)}", path) from None
    except UnicodeDecodeError as e:
        raise VlkdError(f"not UTF-8 text (byte offset {e.start})", path) from None


def _swag_rows(reader: Any, split: str, path: Path) -> list[ChoiceExample]:
    labelled = split != "test"
    header = next(reader, None)
    if header is None:
        raise VlkdError("empty file: expected a header line", path)
    wanted = SWAG_COLUMNS + (["label"] if labelled else [])
    missing = [c for c in wanted if c not in header]
    if missing:
        raise VlkdError(f"line 1: missing column {missing[0]!r} (the header has: {', '.join(header)})", path)
    pos = {c: header.index(c) for c in wanted}
    examples = []
    for fields in reader:
        line = reader.line_num
        if not fields:
            continue
        if len(fields) != len(header):
            raise VlkdError(f"line {line}: expected {len(header)} comma-separated fields, found {len(fields)}", path)
        row = {c: fields[i] for c, i in pos.items()}
        label = None
        if labelled:
            if row["label"].strip() not in ("0", "1", "2", "3"):
                raise VlkdError(f"line {line}: unknown label {row['label']!r} (expected 0, 1, 2 or 3)", path)
            label = int(row["label"])
        endings = [f"{row['sent2']} {row[f'ending{i}']}" for i in range(4)]
        examples.append(ChoiceExample(row["sent1"], endings, label, fields[0] or str(len(examples))))
    if not examples:
        raise VlkdError("no data lines", path)
    return examples


PIQA_FILES = {"train": ("train.jsonl", "train-labels.lst"), "dev": ("valid.jsonl", "valid-labels.lst"),
              "test": ("tests.jsonl", None)}


def _read_jsonl(path: Path) -> list[tuple[int, dict]]:
    records = []
    for line, text in text_lines(path):
        try:
            record = json.loads(text)
        except json.JSONDecodeError as e:
            raise VlkdError(f"line {line}: malformed JSON ({e.msg})", path) from None
        missing = [k for k in ("goal", "sol1", "sol2") if not isinstance(record, dict) or k not in record]
        if missing:
            raise VlkdError(f"line {line}: missing field {missing[0]!r}", path)
        wrong = [k for k in ("goal", "sol1", "sol2") if not isinstance(record[k], str)]
        if wrong:
            raise VlkdError(f"line {line}: field {wrong[0]!r} is {type(record[wrong[0]]).__name__}, expected a string",
                            path)
        records.append((line, record))
    if not records:
        raise VlkdError("no data lines", path)
    return records


def read_piqa(data_dir: Path, split: str) -> list[ChoiceExample]:
    name, labels_name = PIQA_FILES[split]
    records = _read_jsonl(data_dir / name)
    labels: list[int | None] = [None] * len(records)
    if labels_name:
        path = data_dir / labels_name
        if not path.is_file():
            raise VlkdError("file not found", path)
        values = [(line, text.strip()) for line, text in text_lines(path)]
        for line, value in values:
            if value not in ("0", "1"):
                raise VlkdError(f"line {line}: unknown label {value!r} (expected 0 or 1)", path)
        if len(values) != len(records):
            raise VlkdError(f"{len(values)} labels for {len(records)} examples in {name}", path)
        labels = [int(v) for _, v in values]
    return [ChoiceExample(r["goal"], [r["sol1"], r["sol2"]], label, str(r["id"]) if isinstance(r.get("id"), (str, int)) else str(i))
            for i, ((_, r), label) in enumerate(zip(records, labels))]


SWAG = TaskSpec(name="swag", kind=CHOICE, metrics=("accuracy",), read=read_swag, train="train", dev=(("dev", ""),),
                test=(("test", "SWAG.tsv"),), labels=("0", "1", "2", "3"),
                path=lambda data_dir, split: data_dir / SWAG_FILES[split])
PIQA = TaskSpec(name="piqa", kind=CHOICE, metrics=("accuracy",), read=read_piqa, train="train", dev=(("dev", ""),),
                test=(("test", "PIQA.lst"),), labels=("0", "1"), prediction_format=LST,
                path=lambda data_dir, split: data_dir / PIQA_FILES[split][0])
