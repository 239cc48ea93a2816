"""Wall time per quickstart stage, kept in OUT/stage-seconds.json: a stage's time is recorded when it first
completes, so a resumed run reports the run that did the work (and rewrites an identical report)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vlkd.io import read_json, write_json_atomic


class StageClock:
    def __init__(self, out: Path) -> None:
        self.path = out / "stage-seconds.json"
        self.seconds: dict[str, float] = read_json(self.path) if self.path.is_file() else {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        if name not in self.seconds:
            self.seconds[name] = round(time.perf_counter() - start, 1)
            write_json_atomic(self.path, self.seconds)
