"""Tasks saved with `datasets.save_to_disk` read into the same examples as their official files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from vlkd.data.tasks.registry import get_task, has_split, read_split
from vlkd.errors import VlkdError

datasets = pytest.importorskip("datasets")
FIXTURES = Path(__file__).parents[2] / "fixtures" / "finetune"


def save(path: Path, splits: dict[str, dict], features: "datasets.Features") -> Path:
    datasets.DatasetDict({k: datasets.Dataset.from_dict(v, features=features) for k, v in splits.items()}
                         ).save_to_disk(str(path))
    return path


def test_cola_class_label_names_map_to_the_official_labels(tmp_path: Path) -> None:
    """HF CoLA says unacceptable/acceptable; the GLUE files say 0/1 (the ClassLabel index)."""
    rows = [line.rstrip("\n").split("\t") for line in (FIXTURES / "CoLA" / "dev.tsv").read_text().splitlines()]
    features = datasets.Features({"sentence": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["unacceptable", "acceptable"]),
                                  "idx": datasets.Value("int32")})
    split = {"sentence": [r[3] for r in rows], "label": [int(r[1]) for r in rows], "idx": list(range(len(rows)))}
    folder = save(tmp_path / "cola", {"train": split, "validation": split}, features)
    spec = get_task("cola")
    assert read_split(spec, folder, "dev") == read_split(spec, FIXTURES / "CoLA", "dev")
    assert has_split(spec, folder, "dev") and not has_split(spec, folder, "test")
    with pytest.raises(VlkdError, match="no split 'test'"):
        read_split(spec, folder, "test")


def test_mnli_names_and_split_names(tmp_path: Path) -> None:
    features = datasets.Features({"premise": datasets.Value("string"), "hypothesis": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["entailment", "neutral", "contradiction"]),
                                  "idx": datasets.Value("int32")})
    split = {"premise": ["a", "b", "c"], "hypothesis": ["x", "y", "z"], "label": [0, 1, 2], "idx": [0, 1, 2]}
    test = {**split, "label": [-1, -1, -1]}
    folder = save(tmp_path / "mnli", {"train": split, "validation_matched": split, "validation_mismatched": split,
                                      "test_matched": test}, features)
    spec = get_task("mnli")
    # the official label strings are contradiction, entailment, neutral (in that index order)
    assert [spec.labels[e.label] for e in read_split(spec, folder, "dev_mismatched")] == [
        "entailment", "neutral", "contradiction"]
    assert [e.label for e in read_split(spec, folder, "test_matched")] == [None] * 3
    assert not has_split(spec, folder, "test_mismatched")
    with pytest.raises(VlkdError, match=r"row 1: no label"):
        bad = save(tmp_path / "bad", {"train": {**split, "label": [0, -1, 2]}}, features)
        read_split(spec, bad, "train")


def test_squad_v2_swag_piqa(tmp_path: Path) -> None:
    dev = json.loads((FIXTURES / "SQuAD2" / "dev-v2.0.json").read_text())
    qas = [(p["context"], qa) for a in dev["data"] for p in a["paragraphs"] for qa in p["qas"]]
    squad = {"id": [qa["id"] for _, qa in qas], "title": ["t"] * len(qas), "context": [c for c, _ in qas],
             "question": [qa["question"] for _, qa in qas],
             "answers": [{"text": [a["text"] for a in qa["answers"]],
                          "answer_start": [a["answer_start"] for a in qa["answers"]]} for _, qa in qas]}
    features = datasets.Features({"id": datasets.Value("string"), "title": datasets.Value("string"),
                                  "context": datasets.Value("string"), "question": datasets.Value("string"),
                                  "answers": datasets.Sequence({"text": datasets.Value("string"),
                                                                "answer_start": datasets.Value("int32")})})
    folder = save(tmp_path / "squad2", {"validation": squad}, features)
    assert read_split(get_task("squad2"), folder, "dev") == read_split(get_task("squad2"), FIXTURES / "SQuAD2", "dev")

    with open(FIXTURES / "SWAG" / "val.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    names = ["video-id", "fold-ind", "startphrase", "sent1", "sent2", "gold-source", "ending0", "ending1", "ending2",
             "ending3"]
    swag = {**{n: [r[n] for r in rows] for n in names}, "label": [int(r["label"]) for r in rows]}
    features = datasets.Features({**{n: datasets.Value("string") for n in names},
                                  "label": datasets.ClassLabel(names=["0", "1", "2", "3"])})
    folder = save(tmp_path / "swag", {"validation": swag}, features)
    assert read_split(get_task("swag"), folder, "dev") == read_split(get_task("swag"), FIXTURES / "SWAG", "dev")

    goals = [json.loads(line) for line in (FIXTURES / "PIQA" / "valid.jsonl").read_text().splitlines()]
    labels = [int(x) for x in (FIXTURES / "PIQA" / "valid-labels.lst").read_text().split()]
    piqa = {"goal": [g["goal"] for g in goals], "sol1": [g["sol1"] for g in goals], "sol2": [g["sol2"] for g in goals],
            "label": labels}
    features = datasets.Features({"goal": datasets.Value("string"), "sol1": datasets.Value("string"),
                                  "sol2": datasets.Value("string"), "label": datasets.ClassLabel(names=["0", "1"])})
    folder = save(tmp_path / "piqa", {"validation": piqa}, features)
    ours = read_split(get_task("piqa"), folder, "dev")
    official = read_split(get_task("piqa"), FIXTURES / "PIQA", "dev")
    assert [(e.context, e.endings, e.label) for e in ours] == [(e.context, e.endings, e.label) for e in official]


def test_missing_extra_and_unsupported_task_are_one_line_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    features = datasets.Features({"sentence": datasets.Value("string"), "label": datasets.ClassLabel(names=["0", "1"])})
    folder = save(tmp_path / "sst2", {"train": {"sentence": ["a"], "label": [1]}}, features)
    with pytest.raises(VlkdError, match="cannot be read from a saved Hugging Face dataset"):
        read_split(get_task("tracie"), folder, "train")
    real_import = __import__("importlib").import_module

    def no_datasets(name: str, *args: object) -> object:
        if name == "datasets":
            raise ImportError(name)
        return real_import(name, *args)

    monkeypatch.setattr("vlkd.data.tasks.hf.importlib.import_module", no_datasets)
    with pytest.raises(VlkdError, match=r"pip install 'vlkd\[hf\]'") as info:
        read_split(get_task("sst2"), folder, "train")
    assert str(folder) in str(info.value) and "\n" not in str(info.value)
