"""Every benchmark `vlkd evaluate visual-knowledge --benchmark` reads, by name: its reader and a one-line
description of the data it takes (the CLI's choices and help come from here)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from vlkd.data.visual.coda import read_coda
from vlkd.data.visual.comparisons import reader as comparison_reader
from vlkd.data.visual.memory_colors import read_memory_colors
from vlkd.data.visual.spec import VisualPart
from vlkd.data.visual.vicomte import read_vicomte
from vlkd.data.visual.world import read_world
from vlkd.errors import VlkdError


@dataclass(frozen=True)
class Benchmark:
    name: str
    read: Callable[[Path], list[VisualPart]]
    data: str


BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in (
    Benchmark("memory-colors", read_memory_colors, "JSON-lines file (descriptor, item, label, picture)"),
    Benchmark("coda", read_coda, "folder: objects.jsonl, annotations.jsonl, templates.yaml"),
    Benchmark("vicomte", read_vicomte, "a relation's folder: train.jsonl, test.jsonl (sub, obj, alt)"),
    Benchmark("size", comparison_reader("size"), "JSON-lines file (text, question, obj_a, obj_b, label)"),
    Benchmark("height", comparison_reader("height"), "JSON-lines file (text, question, obj_a, obj_b, label)"),
    Benchmark("world", read_world, "folder with kinds.jsonl (kind, colour, shape, size, motion, split)"),
)}


def read_benchmark(name: str, data: Path) -> list[VisualPart]:
    """The parts of a benchmark read from `data` (every format error a VlkdError naming the file)."""
    if name not in BENCHMARKS:
        raise VlkdError(f"unknown benchmark {name!r} (known: {', '.join(BENCHMARKS)})")
    data = Path(data)
    if not data.exists():
        raise VlkdError("benchmark data not found", data)
    return BENCHMARKS[name].read(data)
