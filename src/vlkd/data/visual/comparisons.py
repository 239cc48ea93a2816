"""Size and height comparisons of "Things not Written in Text" (Liu et al. 2022): a JSON-lines file,
`{"text", "question", "obj_a", "obj_b", "label"}`, label 1 when the answer to the question is yes.

Cloze: "no" against "yes" at [MASK] after the question (our templates, docs/formats.md); probe: the two
objects' representations side by side.
"""

from __future__ import annotations

from pathlib import Path

from vlkd.data.visual.spec import VisualItem, VisualPart, read_rows
from vlkd.errors import VlkdError

FIELDS = ("text", "question", "obj_a", "obj_b", "label")
ANSWERS = ("no", "yes")
TEMPLATES = ("{question} [MASK].", "Question: {question} Answer: [MASK].")


def reader(name: str):
    """The reader of one comparison benchmark (size or height: the same format)."""
    def read(data: Path) -> list[VisualPart]:
        items = []
        for line, row in read_rows(data, FIELDS, {"label": (int, str)}):
            if str(row["label"]).strip() not in ("0", "1"):
                raise VlkdError(f"line {line}: label {row['label']!r} is not 0 or 1", data)
            items.append(VisualItem((row["obj_a"], row["obj_b"]), {k: row[k] for k in FIELDS[:4]},
                                    int(str(row["label"]).strip())))
        return [VisualPart(name, ANSWERS, TEMPLATES, items, source=str(data))]
    read.__doc__ = f"One part: the {name} questions, answered no (0) or yes (1)."
    return read
