"""ViComTe (Zhang et al. 2022): one relation's folder (`color`, `shape`, `material`, `size`) with
`train.jsonl` and `test.jsonl`, rows `{"sub", "obj", "alt"}`: the subject, its right value and a wrong one.
An item is right when `obj` is ranked above `alt`. The cloze templates are ours (docs/formats.md), by the
folder's name; the probe trains on train.jsonl (subject -> obj) and ranks by its class probabilities.
"""

from __future__ import annotations

from pathlib import Path

from vlkd.data.visual.spec import VisualItem, VisualPart, read_rows
from vlkd.errors import VlkdError

FIELDS = ("sub", "obj", "alt")
TEMPLATES = {
    "color": ("{sub} can be of color [MASK].", "The color of {sub} is [MASK]."),
    "shape": ("{sub} can be of shape [MASK].", "The shape of {sub} is [MASK]."),
    "material": ("{sub} is made of [MASK].", "{sub} can be made of [MASK]."),
    "size": ("{sub} is [MASK] in size.", "The size of {sub} is [MASK]."),
}
GENERIC = ("{sub} is [MASK].",)


def read_vicomte(data: Path) -> list[VisualPart]:
    """One part named after the relation; candidates: every obj and alt value of both files."""
    if not data.is_dir():
        raise VlkdError("ViComTe relation folder not found (train.jsonl, test.jsonl)", data)
    rows = {split: read_rows(data / f"{split}.jsonl", FIELDS) for split in ("train", "test")}
    for split, lines in rows.items():
        for line, row in lines:
            if row["obj"].strip().lower() == row["alt"].strip().lower():
                raise VlkdError(f"line {line}: obj and alt are the same ({row['obj']!r})", data / f"{split}.jsonl")
    candidates = tuple(sorted({row[k].strip().lower() for lines in rows.values() for _, row in lines
                               for k in ("obj", "alt")}))

    def items(split: str) -> list[VisualItem]:
        return [VisualItem((row["sub"],), {"sub": row["sub"]}, candidates.index(row["obj"].strip().lower()),
                           alt=candidates.index(row["alt"].strip().lower())) for _, row in rows[split]]

    relation = data.resolve().name.lower()
    return [VisualPart(relation, candidates, TEMPLATES.get(relation, GENERIC), items("test"), items("train"),
                       source=str(data))]
