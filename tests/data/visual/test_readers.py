"""The visual-knowledge readers on hand-made fixtures in the published formats (tests/fixtures/visual/), and
their one-line errors on bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from vlkd.data.visual.registry import BENCHMARKS, read_benchmark
from vlkd.data.visual.spec import COLOURS, fill_template
from vlkd.errors import VlkdError

FIXTURES = Path(__file__).parents[2] / "fixtures" / "visual"


def test_memory_colors() -> None:
    (part,) = read_benchmark("memory-colors", FIXTURES / "memory-colors.jsonl")
    rows = [json.loads(line) for line in (FIXTURES / "memory-colors.jsonl").read_text().splitlines()]
    assert part.candidates == COLOURS and len(COLOURS) == 11
    assert [item.objects for item in part.test] == [(r["item"],) for r in rows]
    assert [part.candidates[item.label] for item in part.test] == [r["label"] for r in rows]
    assert fill_template(part.templates[2], part.test[4].fill, "") == "The color of grass is [MASK]."


def test_coda_distributions_and_templates() -> None:
    (part,) = read_benchmark("coda", FIXTURES / "coda")
    assert [item.objects[0] for item in part.test] == ["banana", "broccoli", "coal", "butterfly", "apple"]
    assert part.templates == ("Most {object_areis_pl} [MASK].", "All {object_areis_pl} [MASK].",
                              "This {object_areis_s} [MASK].")
    banana = np.zeros(11)
    banana[COLOURS.index("green")], banana[COLOURS.index("yellow")], banana[COLOURS.index("brown")] = 2, 5, 1
    second = np.zeros(11)
    second[COLOURS.index("green")], second[COLOURS.index("yellow")] = 1, 4
    np.testing.assert_allclose(part.test[0].target, (banana / 8 + second / 5) / 2)
    coal = np.zeros(11)  # the excluded worker 3 is left out
    coal[COLOURS.index("black")], coal[COLOURS.index("brown")], coal[COLOURS.index("gray")] = 5, 1, 3
    np.testing.assert_allclose(part.test[2].target, coal / 9)
    assert part.test[0].label == COLOURS.index("yellow")
    assert part.test[4].label == COLOURS.index("green")  # apple: green ties red; the first in COLOURS
    assert fill_template(part.templates[0], part.test[1].fill, "") == "Most broccoli is [MASK]."
    assert fill_template("a photo of {a:object_s}.", part.test[4].fill, "") == "a photo of an apple."


def test_vicomte_size_world() -> None:
    (part,) = read_benchmark("vicomte", FIXTURES / "vicomte" / "color")
    assert part.name == "color" and len(part.test) == 5 and len(part.train) == 8
    assert part.candidates == ("black", "blue", "green", "red", "white", "yellow")
    assert (part.candidates[part.test[0].label], part.candidates[part.test[0].alt]) == ("yellow", "blue")
    (size,) = read_benchmark("size", FIXTURES / "size.jsonl")
    assert [i.label for i in size.test] == [1, 0, 1, 0, 1, 0, 1] and size.test[0].objects == ("elephant", "ant")
    parts = read_benchmark("world", FIXTURES / "world")
    assert [p.name for p in parts] == ["colour", "shape", "size", "motion"]
    assert [len(p.test) for p in parts] == [4] * 4 and [len(p.train) for p in parts] == [8] * 4
    assert parts[0].candidates == ("blue", "green", "red")
    assert [parts[3].candidates[i.label] for i in parts[3].test] == ["zigzag", "bounce", "spin", "spin"]


def test_registry_names() -> None:
    assert list(BENCHMARKS) == ["memory-colors", "coda", "vicomte", "size", "height", "world"]


def edit_line(path: Path, number: int, change) -> None:
    lines = path.read_text().splitlines()
    row = json.loads(lines[number])
    change(row)
    lines[number] = json.dumps(row)
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("benchmark, target, edit, message", [
    ("memory-colors", "memory-colors.jsonl", lambda r: r.pop("picture"), "line 2: missing field 'picture'"),
    ("memory-colors", "memory-colors.jsonl", lambda r: r.update(label="magenta"), "line 2: unknown colour 'magenta'"),
    ("size", "size.jsonl", lambda r: r.update(label=2), "line 2: label 2 is not 0 or 1"),
    ("size", "size.jsonl", lambda r: r.pop("obj_b"), "line 2: missing field 'obj_b'"),
    ("vicomte", "vicomte/color/test.jsonl", lambda r: r.pop("alt"), "line 2: missing field 'alt'"),
    ("world", "world/kinds.jsonl", lambda r: r.update(split="dev"), "line 2: split 'dev' is not train or probe"),
    ("coda", "coda/annotations.jsonl", lambda r: r.pop("red"), "line 2: missing field 'red'"),
    ("coda", "coda/objects.jsonl", lambda r: r.pop("areis_pl"), "line 2: missing field 'areis_pl'"),
])
def test_bad_input(tmp_path: Path, benchmark: str, target: str, edit, message: str) -> None:
    data = tmp_path / "data"
    shutil.copytree(FIXTURES, data)
    edit_line(data / target, 1, edit)
    root = target.split("/")[0] if "/" in target else target
    where = data / ("vicomte/color" if benchmark == "vicomte" else root)
    with pytest.raises(VlkdError, match=message) as e:
        read_benchmark(benchmark, where)
    assert str(data / target) in str(e.value) and "\n" not in str(e.value)


def test_coda_object_without_annotations(tmp_path: Path) -> None:
    data = tmp_path / "coda"
    shutil.copytree(FIXTURES / "coda", data)
    lines = [line for line in (data / "annotations.jsonl").read_text().splitlines() if "/m/01sy7" not in line
             or '"included": false' in line]  # coal keeps only its excluded row
    (data / "annotations.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(VlkdError, match=r"line 3: object '/m/01sy7' \(Coal\) has no included annotation"):
        read_benchmark("coda", data)
