"""The quickstart's task schedule: dependencies first, results by name, times reported, failures raised."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch

from vlkd.quickstart.schedule import Task, check_order, run_tasks


def write(path: Path, text: str) -> int:
    time.sleep(0.2)  # long enough for the other worker to pick up a task meanwhile
    path.write_text(text)
    return torch.get_num_threads()


def append(path: Path, source: Path, text: str) -> str:
    path.write_text(source.read_text() + text)  # fails if `source` is not written yet
    return path.read_text()


def fail(message: str) -> None:
    raise ValueError(message)


def chain(tmp_path: Path) -> list[Task]:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    return [Task("a", write, (a, "A")), Task("b", append, (b, a, "B"), after=("a",), stage="ab"),
            Task("c", write, (c, "C")), Task("d", append, (tmp_path / "d", b, "D"), after=("b", "c"))]


@pytest.mark.parametrize("workers", [1, 2])
def test_tasks_run_after_what_they_need_and_report_their_times(tmp_path: Path, workers: int) -> None:
    seen: list[tuple[str, str, float, float]] = []
    results = run_tasks(chain(tmp_path), workers, lambda t, r, wall, cpu: seen.append((t.name, t.row, wall, cpu)))
    assert results["b"] == "AB" and results["d"] == "ABD"
    order = [name for name, *_ in seen]
    assert sorted(order) == ["a", "b", "c", "d"] and order.index("a") < order.index("b") < order.index("d")
    assert dict((n, row) for n, row, *_ in seen) == {"a": "a", "b": "ab", "c": "c", "d": "d"}
    assert all(wall >= 0 and cpu >= 0 for *_, wall, cpu in seen)
    assert next(wall for n, _, wall, _ in seen if n == "a") >= 0.2
    if workers == 2:  # each worker on its share of the cores
        assert results["a"] == results["c"] == max(1, (os.cpu_count() or 1) // 2)


def test_a_failing_task_raises_its_error(tmp_path: Path) -> None:
    tasks = [Task("a", write, (tmp_path / "a", "A")), Task("boom", fail, ("no such thing",), after=("a",))]
    with pytest.raises(ValueError, match="no such thing"):
        run_tasks(tasks, 2, lambda *_: None)


def test_a_dependency_must_come_first() -> None:
    with pytest.raises(ValueError, match="needs"):
        check_order([Task("b", fail, after=("a",)), Task("a", fail)])
    with pytest.raises(ValueError, match="duplicate"):
        check_order([Task("a", fail), Task("a", fail)])
