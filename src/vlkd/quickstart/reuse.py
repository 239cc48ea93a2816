"""Before the first stage: check every prepared store an earlier `vlkd quickstart` left in OUT and a re-run
reuses (a finished store is not rebuilt), so a truncated or damaged one is a one-line error at once rather
than after the teacher has trained. A store that is not there yet is built by its stage as usual."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from vlkd.data.teacher.howto100m import SPLITS as TEACHER_SPLITS, TeacherSamples
from vlkd.data.text.split import open_store
from vlkd.data.videoqa.prepare import SPLITS as VIDEOQA_SPLITS, load_split
from vlkd.io import read_json
from vlkd.quickstart.videoqa import VIDEOQA_DATA
from vlkd.quickstart.vidlankd import TEACHER_DATA, TEXT_STORE

# the stores each pipeline reuses, by their directory under OUT
REUSED: dict[str, dict[str, Callable[[Path], object]]] = {
    "vidlankd": {
        TEACHER_DATA: lambda path: [TeacherSamples(path, split) for split in TEACHER_SPLITS],
        TEXT_STORE: lambda path: open_store(str(path), TEXT_STORE),
    },
    "videoqa": {VIDEOQA_DATA: lambda path: [load_split(path, split) for split in VIDEOQA_SPLITS]},
}


def check_reused_stores(out: Path, pipelines: list[str]) -> list[Path]:
    """Open every finished store (its meta.json present) of `pipelines` under `out` with the checks its
    readers make; returns the stores checked. Raises the reader's VlkdError, naming the damaged file."""
    checked = []
    for pipeline in pipelines:
        for name, check in REUSED[pipeline].items():
            path = out / name
            if (path / "meta.json").is_file():
                read_json(path / "meta.json")
                check(path)
                checked.append(path)
    return checked
