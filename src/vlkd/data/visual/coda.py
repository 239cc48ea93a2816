"""CoDa, the Color Dataset (Paik et al. 2021, Apache-2.0), in its published folder layout:

- `objects.jsonl`: `{"class_id", "display_name", "object_s", "object_pl", "areis_s", "areis_pl", "ngram"}`;
- `annotations.jsonl`: one worker's answer for one object, `{"class_id", "worker_id", "included", ...}` and,
  on answered rows, a count 0-5 for each of the eleven colours `pink green yellow black purple orange brown
  blue gray white red`; rows with `included: false` are left out (as in the paper);
- `templates.yaml`: `templates: [{name, templates: [...]}]`; the cloze protocol uses every template with
  `[MASK]` (the `text-masked` group), slots `{object_s}`, `{object_pl}`, `{object_areis_s}` (object and
  is/are), `{object_areis_pl}`, `{a:object_s}` (with its article), `{a:object_pl}`.

The humans' distribution of an object: each included worker's counts normalised to sum 1, averaged over
workers (each worker weighs the same); a worker whose counts are all zero is left out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vlkd.data.visual.spec import COLOURS, VisualItem, VisualPart, read_rows
from vlkd.errors import VlkdError
from vlkd.io import read_yaml

OBJECT_FIELDS = ("class_id", "display_name", "object_s", "object_pl", "areis_s", "areis_pl", "ngram")


def _article(phrase: str) -> str:
    return ("an " if phrase[:1].lower() in "aeiou" else "a ") + phrase


def _fill(row: dict[str, Any]) -> dict[str, str]:
    return {"object_s": row["object_s"], "object_pl": row["object_pl"],
            "object_areis_s": f"{row['object_s']} {row['areis_s']}",
            "object_areis_pl": f"{row['object_pl']} {row['areis_pl']}",
            "a:object_s": _article(row["object_s"]), "a:object_pl": _article(row["object_pl"])}


def read_templates(path: Path) -> tuple[str, ...]:
    """The [MASK] templates of templates.yaml, in file order."""
    if not path.is_file():
        raise VlkdError("file not found", path)
    data = read_yaml(path)
    groups = data.get("templates") if isinstance(data, dict) else None
    if not isinstance(groups, list) or not all(isinstance(g, dict) and isinstance(g.get("templates"), list)
                                               for g in groups):
        raise VlkdError("expected `templates: [{name: ..., templates: [...]}, ...]`", path)
    masked = tuple(t for g in groups for t in g["templates"] if isinstance(t, str) and "[MASK]" in t)
    if not masked:
        raise VlkdError("no template with [MASK]", path)
    return masked


def read_distributions(path: Path, known: set[str]) -> dict[str, np.ndarray]:
    """Per object (class_id): the mean over its included workers of their normalised colour counts."""
    answers: dict[str, list[np.ndarray]] = {}
    for line, row in read_rows(path, ("class_id", "worker_id", "included"),
                               {"worker_id": (int, str), "included": bool}):
        if row["class_id"] not in known:
            raise VlkdError(f"line {line}: class_id {row['class_id']!r} is not in objects.jsonl", path)
        if not row["included"]:
            continue
        counts = []
        for colour in COLOURS:
            value = row.get(colour)
            if value is None:
                raise VlkdError(f"line {line}: missing field {colour!r}", path)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise VlkdError(f"line {line}: field {colour!r} is not a count ({value!r})", path)
            counts.append(float(value))
        total = sum(counts)
        if total > 0:
            answers.setdefault(row["class_id"], []).append(np.asarray(counts) / total)
    return {key: np.mean(rows, axis=0) for key, rows in answers.items()}


def read_coda(data: Path) -> list[VisualPart]:
    """One part: every object with its humans' colour distribution; gold class: their most chosen colour
    (the first in COLOURS on a tie)."""
    if not data.is_dir():
        raise VlkdError("CoDa folder not found (objects.jsonl, annotations.jsonl, templates.yaml)", data)
    objects = read_rows(data / "objects.jsonl", OBJECT_FIELDS)
    templates = read_templates(data / "templates.yaml")
    distributions = read_distributions(data / "annotations.jsonl", {row["class_id"] for _, row in objects})
    items = []
    for line, row in objects:
        target = distributions.get(row["class_id"])
        if target is None:
            raise VlkdError(f"line {line}: object {row['class_id']!r} ({row['display_name']}) has no included "
                            f"annotation in annotations.jsonl", data / "objects.jsonl")
        items.append(VisualItem((row["object_s"],), _fill(row), int(np.argmax(target)),
                                target=tuple(float(p) for p in target)))
    return [VisualPart("coda", COLOURS, templates, items, source=str(data))]
