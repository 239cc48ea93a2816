"""metrics.jsonl: one JSON object per log or eval step, appended; trimmed on resume."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable

from vlkd.errors import VlkdError
from vlkd.io import disk_full_error, is_disk_full, remove_path, write_text_atomic


class MetricsLog:
    def __init__(self, path: Path, enabled: bool) -> None:
        self.path, self.enabled = path, enabled

    def trim_after(self, step: int, say: Callable[[str], None] = print) -> None:
        """Drop lines logged after `step` (they belong to work a resume will redo), and a torn last line
        (what a kill during an append leaves); a malformed line elsewhere is an error naming it."""
        if not self.enabled or not self.path.is_file():
            return
        lines = self.path.read_text(encoding="utf-8", errors="replace").splitlines()
        kept = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError
            except ValueError:
                if number == len(lines):
                    say(f"dropped the torn last line of {self.path} (line {number}, written when the run was killed)")
                    continue
                raise VlkdError(f"line {number} is not a JSON object", self.path) from None
            if record.get("step", 0) <= step:
                kept.append(line)
        write_text_atomic(self.path, "".join(line + "\n" for line in kept))

    def reset(self) -> None:
        """A run starting at step 0: forget the lines of an earlier attempt that saved no checkpoint."""
        if self.enabled:
            remove_path(self.path)

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        clean = {k: (round(v, 6) if isinstance(v, float) and math.isfinite(v) else v) for k, v in record.items()}
        try:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(clean) + "\n")
        except OSError as e:
            if is_disk_full(e):
                raise disk_full_error(self.path) from None
            raise
