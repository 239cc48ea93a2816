"""Tasks held as Hugging Face datasets saved with `DatasetDict.save_to_disk` (the `hf` extra).

`--data-dir` may be such a folder (it holds `dataset_dict.json`) for the GLUE tasks, SQuAD v1.1/v2.0, SWAG
and PIQA, in the column layout of the hub's `glue`, `squad`, `squad_v2`, `swag` and `piqa` datasets. Splits:
`train`, `validation` (dev; MNLI `validation_matched`/`validation_mismatched`), `test` (MNLI
`test_matched`/`test_mismatched`). A `ClassLabel` is mapped to the official label string: its name when that
is one (MNLI's `entailment`, ...), else its index (CoLA's `acceptable` is 1, as in the GLUE files); a test
row's label (-1) is ignored. The rows become the same examples the official files give.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Callable

from vlkd.data.tasks.spec import CHOICE, REGRESS, SPAN, ChoiceExample, PairExample, TaskSpec
from vlkd.data.tasks.squad import qa_example
from vlkd.errors import VlkdError

MARKER = "dataset_dict.json"
HF_SPLITS = {"dev": "validation", "dev_matched": "validation_matched", "dev_mismatched": "validation_mismatched"}
GLUE_COLUMNS = {"cola": ("sentence", None), "sst2": ("sentence", None), "mrpc": ("sentence1", "sentence2"),
                "qqp": ("question1", "question2"), "stsb": ("sentence1", "sentence2"),
                "mnli": ("premise", "hypothesis"), "qnli": ("question", "sentence"), "rte": ("sentence1", "sentence2"),
                "wnli": ("sentence1", "sentence2")}
SUPPORTED = (*GLUE_COLUMNS, "squad1", "squad2", "swag", "piqa")


def is_saved_dataset(data_dir: Path) -> bool:
    return (data_dir / MARKER).is_file()


def _load(data_dir: Path) -> Any:
    try:
        datasets = importlib.import_module("datasets")
    except ImportError:
        raise VlkdError("a dataset saved with datasets.save_to_disk needs the `datasets` package: "
                        "pip install 'vlkd[hf]'", data_dir) from None
    try:
        return datasets.load_from_disk(str(data_dir))
    except Exception as e:  # a damaged or foreign folder: one line naming it
        raise VlkdError(f"cannot load the saved dataset ({type(e).__name__}: {str(e).splitlines()[0][:200]})",
                        data_dir) from None


def split_names(data_dir: Path) -> list[str]:
    return list(_load(data_dir).keys())


def has_split(data_dir: Path, split: str) -> bool:
    return HF_SPLITS.get(split, split) in split_names(data_dir)


def read_saved(spec: TaskSpec, data_dir: Path, split: str) -> list[Any]:
    """The examples of one split of a saved DatasetDict, as the task's official files would give them."""
    if spec.name not in SUPPORTED:
        raise VlkdError(f"task {spec.name!r} cannot be read from a saved Hugging Face dataset (supported: "
                        f"{', '.join(SUPPORTED)})", data_dir)
    dataset = _load(data_dir)
    name = HF_SPLITS.get(split, split)
    if name not in dataset:
        raise VlkdError(f"the saved dataset has no split {name!r} (it has: {', '.join(dataset)})", data_dir)
    rows = dataset[name]
    where = f"{data_dir} (split {name})"
    labelled = not split.startswith("test")
    label = _label_reader(spec, rows.features, where, labelled)
    need = _columns(spec)
    missing = [c for c in need if c not in rows.column_names]
    if missing:
        raise VlkdError(f"missing column {missing[0]!r} for task {spec.name} (the dataset has: "
                        f"{', '.join(rows.column_names)})", where)
    examples = []
    for i, row in enumerate(rows):
        try:
            examples.append(_example(spec, row, i, label, split, where))
        except (KeyError, TypeError, ValueError) as e:
            raise VlkdError(f"row {i}: malformed field ({e})", where) from None
    if not examples:
        raise VlkdError("no rows", where)
    return examples


def _columns(spec: TaskSpec) -> list[str]:
    if spec.name in GLUE_COLUMNS:
        return [c for c in GLUE_COLUMNS[spec.name] if c]
    if spec.kind == SPAN:
        return ["id", "context", "question", "answers"]
    if spec.name == "swag":
        return ["sent1", "sent2", "ending0", "ending1", "ending2", "ending3"]
    return ["goal", "sol1", "sol2"]


def _label_reader(spec: TaskSpec, features: Any, where: str, labelled: bool) -> Callable[[Any, int], Any]:
    """row label -> the example's label (class index into spec.labels, a score, or None in a test split)."""
    if spec.kind == SPAN:
        return lambda value, i: None
    if labelled and "label" not in features:
        raise VlkdError(f"missing column 'label' for task {spec.name}", where)
    feature = features.get("label")
    names = getattr(feature, "names", None)

    def read(value: Any, i: int) -> Any:
        if not labelled:
            return None
        if spec.kind == REGRESS:
            return float(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise VlkdError(f"row {i}: no label ({value!r})", where)
        official = names[value] if names and value < len(names) and names[value] in spec.labels else str(value)
        if official not in spec.labels:
            raise VlkdError(f"row {i}: label {value!r} ({names[value] if names and value < len(names) else '?'}) "
                            f"is none of: {', '.join(spec.labels)}", where)
        return spec.labels.index(official)

    return read


def _example(spec: TaskSpec, row: dict[str, Any], i: int, label: Callable[[Any, int], Any], split: str,
             where: str) -> Any:
    if spec.kind == SPAN:
        answers = row["answers"]
        qa = {"id": row["id"], "question": row["question"], "is_impossible": not answers["text"],
              "answers": [{"text": t, "answer_start": s} for t, s in zip(answers["text"], answers["answer_start"])]}
        return qa_example(qa, row["context"], spec.name, split, Path(where), f"row {i}")
    index = str(row.get("idx", i))
    if spec.kind == CHOICE:
        if spec.name == "swag":
            endings = [f"{_str(row['sent2'])} {_str(row[f'ending{k}'])}" for k in range(4)]
            return ChoiceExample(_str(row["sent1"]), endings, label(row.get("label"), i), str(i))
        return ChoiceExample(_str(row["goal"]), [_str(row["sol1"]), _str(row["sol2"])], label(row.get("label"), i), index)
    a, b = GLUE_COLUMNS[spec.name]
    return PairExample(_str(row[a]), _str(row[b]) if b else None, label(row.get("label"), i), index)


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"text is {type(value).__name__}, expected a string")
    return value
