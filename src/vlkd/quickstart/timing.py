"""Time per quickstart task, kept in OUT/stage-seconds.json: wall seconds and CPU seconds (the process that
ran it and its finished children, user + system). A task's times are recorded when it first completes, so a
resumed run reports the run that did the work (and rewrites an identical report). On a busy machine the wall
time is inflated by other work."""

from __future__ import annotations

import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vlkd.io import read_json, write_json_atomic


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class StageClock:
    """One file, OUT/NAME.json; times are recorded in the quickstart's own process."""

    def __init__(self, out: Path, name: str = "stage-seconds") -> None:
        self.path = out / f"{name}.json"
        saved = read_json(self.path) if self.path.is_file() else {}
        self.wall: dict[str, float] = saved.get("wall", {})
        self.cpu: dict[str, float] = saved.get("cpu", {})

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start, cpu = time.perf_counter(), cpu_seconds()
        yield
        self.record(name, time.perf_counter() - start, cpu_seconds() - cpu)

    def record(self, name: str, wall: float, cpu: float) -> None:
        """Keep `name`'s times unless an earlier run recorded them."""
        if name not in self.wall:
            self.wall[name] = round(wall, 1)
            self.cpu[name] = round(cpu, 1)
            write_json_atomic(self.path, {"wall": self.wall, "cpu": self.cpu})

    def as_dict(self) -> dict[str, dict[str, float]]:
        return {"wall": dict(self.wall), "cpu": dict(self.cpu)}
