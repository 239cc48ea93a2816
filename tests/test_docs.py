"""Docs that cannot drift: every name a registry holds appears in the doc that lists it, and the layer
diagrams and table say what tests/test_layers.py enforces. A new loss, preset, recipe, downstream task or
backbone fails here until its doc names it (in backquotes)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

import pytest

from tests.test_layers import LEVELS
from vlkd.config import list_model_presets, list_presets
from vlkd.data.tasks.registry import TASKS
from vlkd.losses import LOSSES
from vlkd.recipes import RECIPES
from vlkd.video.backbones import SPECS

ROOT = Path(__file__).resolve().parents[1]
REGISTRIES: dict[str, Callable[[], list[str]]] = {
    "presets (config.list_presets)": list_presets,
    "model presets (config.list_model_presets)": list_model_presets,
    "recipes (RECIPES)": lambda: list(RECIPES),
    "losses (LOSSES)": lambda: list(LOSSES),
    "downstream tasks (TASKS)": lambda: list(TASKS),
    "backbones (SPECS)": lambda: list(SPECS),
}
# where each registry is listed in full: (registry, doc, the header row of the table listing it, or None: anywhere)
DOCS = [
    ("presets (config.list_presets)", "docs/commands.md", "| preset | what |"),
    ("model presets (config.list_model_presets)", "docs/commands.md", None),
    ("recipes (RECIPES)", "README.md", None),
    ("recipes (RECIPES)", "docs/commands.md", "| key | default | meaning |"),
    ("losses (LOSSES)", "docs/losses.md", None),
    ("downstream tasks (TASKS)", "docs/commands.md", None),
    ("backbones (SPECS)", "docs/commands.md", None),
]


def quoted(doc: str, table: str | None) -> set[str]:
    """Every `name` in backquotes in the doc, or in the table with that header row."""
    text = (ROOT / doc).read_text(encoding="utf-8")
    if table is not None:
        assert table in text, f"{doc} has no table {table!r}"
        text = text[text.index(table):].split("\n\n")[0]
    return set(re.findall(r"`([^`\n]+)`", text))


@pytest.mark.parametrize("registry, doc, table", DOCS)
def test_every_registered_name_is_documented(registry: str, doc: str, table: str | None) -> None:
    missing = [name for name in REGISTRIES[registry]() if name not in quoted(doc, table)]
    assert not missing, f"{doc} does not name these {registry}{f' in its table {table}' if table else ''}: {missing}"


def diagram(doc: str) -> list[set[str]]:
    """The layer diagram (the code block with `<-`), as the set of parts at each level."""
    text = (ROOT / doc).read_text(encoding="utf-8")
    (block,) = [b for b in re.findall(r"```\n(.*?)```", text, re.S) if "<-" in b]
    return [{p.strip() for p in level.split(",")} for level in " ".join(block.split()).split("<-")]


def expected_levels(*skip: str) -> list[set[str]]:
    levels: list[set[str]] = [set() for _ in range(max(LEVELS.values()) + 1)]
    for name, level in LEVELS.items():
        if name not in skip:
            levels[level].add(name)
    return levels


@pytest.mark.parametrize("doc", ["docs/architecture.md", "CONTRIBUTING.md"])
def test_layer_diagram_is_the_enforced_one(doc: str) -> None:
    assert diagram(doc) == expected_levels("__init__", "__main__")


def test_layer_table_is_the_enforced_one() -> None:
    text = (ROOT / "docs/architecture.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (\d+) \| (.*) \|$", text, re.M)
    table = [set() for _ in rows]
    for level, parts in rows:
        table[int(level)] = {name.removeprefix("vlkd/") for name in re.findall(r"`([^`]+)`", parts)}
    assert table == expected_levels()
