"""Memory Colors (Norlund et al. 2021): a JSON-lines file, one object per row,
`{"descriptor", "item", "label", "picture", ...}`; `label` is one of the eleven basic colours.

The file ships no templates: the cloze templates are ours (docs/formats.md), in the paper's question style.
"""

from __future__ import annotations

from pathlib import Path

from vlkd.data.visual.spec import COLOURS, VisualItem, VisualPart, colour_index, read_rows

FIELDS = ("descriptor", "item", "label", "picture")
TEMPLATES = (
    "Q: What is the color of {descriptor} {item}? A: It is [MASK].",
    "What is the color of {descriptor} {item}? [MASK].",
    "The color of {descriptor} {item} is [MASK].",
    "{descriptor} {item} is [MASK].",
)


def read_memory_colors(data: Path) -> list[VisualPart]:
    """One part: each row's item, classified into the eleven colours."""
    items = []
    for line, row in read_rows(data, FIELDS):
        label = colour_index(row["label"], line, data)
        items.append(VisualItem((row["item"],), {"descriptor": row["descriptor"], "item": row["item"]}, label))
    return [VisualPart("memory-colors", COLOURS, TEMPLATES, items, source=str(data))]
