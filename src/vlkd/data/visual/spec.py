"""What every visual-knowledge benchmark reader returns (`vlkd evaluate visual-knowledge`), and the reading
helpers the readers share.

A benchmark is one or more *parts* (the world's colour, shape, size and motion; one part elsewhere). A part
is a classification over its `candidates` (the class words, scored at [MASK] by the cloze protocol):
items name their objects (pooled by the probe protocol) and their gold class, and the part carries its cloze
templates, whose `{field}` slots each item fills.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlkd.data.tasks.tsv import text_lines
from vlkd.errors import VlkdError

# The eleven basic colour terms of Memory Colors and CoDa, in CoDa's annotation order.
COLOURS = ("pink", "green", "yellow", "black", "purple", "orange", "brown", "blue", "gray", "white", "red")
SLOT = re.compile(r"\{([^{}]+)\}")


@dataclass(frozen=True)
class VisualItem:
    """One scored question: its objects (the probe pools each one's word pieces; several are concatenated),
    the values of its cloze templates' slots, and its gold class (index into the part's candidates).
    `alt`: a pairwise item (ViComTe) is right when `label` is ranked above `alt`. `target`: a human
    distribution over the candidates (CoDa)."""

    objects: tuple[str, ...]
    fill: dict[str, str]
    label: int
    alt: int | None = None
    target: tuple[float, ...] | None = None


@dataclass
class VisualPart:
    """One classification: scored on `test`; the probe trains on `train` (the benchmark's own split) or,
    when it is None, is cross-validated over `test`'s items."""

    name: str
    candidates: tuple[str, ...]
    templates: tuple[str, ...]
    test: list[VisualItem]
    train: list[VisualItem] | None = None
    source: str = ""
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def pairwise(self) -> bool:
        return any(item.alt is not None for item in self.test)

    @property
    def graded(self) -> bool:
        return any(item.target is not None for item in self.test)


def fill_template(template: str, fill: dict[str, str], where: str | Path) -> str:
    """The template with every `{slot}` replaced by the item's value (whitespace collapsed: an empty
    descriptor leaves no double space)."""
    def value(match: re.Match[str]) -> str:
        if match.group(1) not in fill:
            raise VlkdError(f"template {template!r} has an unknown slot {{{match.group(1)}}} "
                            f"(known: {', '.join(sorted(fill))})", where)
        return fill[match.group(1)]
    return " ".join(SLOT.sub(value, template).split())


def read_rows(path: Path, fields: tuple[str, ...], types: dict[str, type | tuple[type, ...]] | None = None
              ) -> list[tuple[int, dict[str, Any]]]:
    """The JSON objects of a JSON-lines file with their line numbers; each must have every field of
    `fields` (of the type in `types`, default str)."""
    rows = []
    for line, text in text_lines(path):
        try:
            row = json.loads(text)
        except json.JSONDecodeError as e:
            raise VlkdError(f"line {line}: malformed JSON ({e.msg})", path) from None
        if not isinstance(row, dict):
            raise VlkdError(f"line {line}: not a JSON object", path)
        for name in fields:
            if name not in row:
                raise VlkdError(f"line {line}: missing field {name!r}", path)
            expected = (types or {}).get(name, str)
            if not isinstance(row[name], expected) or isinstance(row[name], bool) and expected is not bool:
                raise VlkdError(f"line {line}: field {name!r} is {type(row[name]).__name__} "
                                f"({row[name]!r})", path)
        rows.append((line, row))
    if not rows:
        raise VlkdError("no data lines", path)
    return rows


def colour_index(value: str, line: int, path: Path) -> int:
    """The index in COLOURS of a colour name ("grey" is "gray"); an unknown colour is an error."""
    name = value.strip().lower()
    name = "gray" if name == "grey" else name
    if name not in COLOURS:
        raise VlkdError(f"line {line}: unknown colour {value!r} (known: {', '.join(COLOURS)})", path)
    return COLOURS.index(name)
