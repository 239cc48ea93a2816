"""The synthetic world's visual-knowledge sets (`vlkd prepare world`): a folder with `kinds.jsonl`, one row
per object kind, `{"kind": "dax", "colour": "red", "shape": "circle", "size": "big", "motion": "bounce",
"split": "train" | "probe"}`. One part per property: the probe trains on the `train` kinds and scores the
`probe` kinds (whose properties no text states); the cloze protocol scores the probe kinds.
"""

from __future__ import annotations

from pathlib import Path

from vlkd.data.visual.spec import VisualItem, VisualPart, read_rows
from vlkd.errors import VlkdError

PROPERTIES = ("colour", "shape", "size", "motion")
SPLITS = ("train", "probe")
TEMPLATES = {
    "colour": ("the {kind} is [MASK].", "the color of the {kind} is [MASK]."),
    "shape": ("the {kind} is a [MASK].", "the shape of the {kind} is a [MASK]."),
    "size": ("the {kind} is [MASK].", "the {kind} is very [MASK]."),
    "motion": ("the {kind} can [MASK].", "the {kind} likes to [MASK]."),
}


def read_world(data: Path) -> list[VisualPart]:
    """One part per property, candidates: that property's values over all kinds."""
    path = data / "kinds.jsonl" if data.is_dir() else data
    rows = read_rows(path, ("kind", *PROPERTIES, "split"))
    seen: set[str] = set()
    for line, row in rows:
        if row["split"] not in SPLITS:
            raise VlkdError(f"line {line}: split {row['split']!r} is not train or probe", path)
        if row["kind"] in seen:
            raise VlkdError(f"line {line}: kind {row['kind']!r} appears twice", path)
        seen.add(row["kind"])
    for split in SPLITS:
        if not any(row["split"] == split for _, row in rows):
            raise VlkdError(f"no {split} kind", path)
    parts = []
    for prop in PROPERTIES:
        candidates = tuple(sorted({row[prop] for _, row in rows}))

        def items(split: str) -> list[VisualItem]:
            return [VisualItem((row["kind"],), {"kind": row["kind"]}, candidates.index(row[prop]))
                    for _, row in rows if row["split"] == split]

        parts.append(VisualPart(prop, candidates, TEMPLATES[prop], items("probe"), items("train"), source=str(path)))
    return parts
