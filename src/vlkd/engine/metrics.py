"""Where a run's scalars go: metrics.jsonl (one JSON object per log or eval step, appended; trimmed on
resume) and, when `report_to` names it, TensorBoard event files under RUN/tensorboard/ with the same
scalars under the same names (the `step` key is the global step)."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from typing import Any, Callable

from vlkd.errors import VlkdError
from vlkd.io import disk_full_error, is_disk_full, remove_path, write_text_atomic
from vlkd.rundir import RunDir

REPORTERS = ("jsonl", "tensorboard")


def check_report_to(report_to: list[str]) -> None:
    """A one-line error for an unknown reporter or a missing optional dependency."""
    unknown = [r for r in report_to if r not in REPORTERS]
    if unknown:
        raise VlkdError(f"config key 'report_to': unknown {unknown} (choose from {list(REPORTERS)})")
    if "tensorboard" in report_to:
        if importlib.util.find_spec("tensorboard") is None:  # an optional extra
            raise VlkdError("report_to: tensorboard needs the tensorboard package: pip install 'vlkd[tensorboard]'")


class MetricsLog:
    def __init__(self, path: Path, enabled: bool, report_to: tuple[str, ...] | list[str] = ("jsonl",)) -> None:
        check_report_to(list(report_to))
        self.path, self.enabled = path, enabled
        self.jsonl, self.tensorboard = "jsonl" in report_to, "tensorboard" in report_to
        self._writer: Any = None
        self._purge_step: int | None = None

    def trim_after(self, step: int, say: Callable[[str], None] = print) -> None:
        """Drop lines logged after `step` (they belong to work a resume will redo), and a torn last line
        (what a kill during an append leaves); a malformed line elsewhere is an error naming it."""
        if not self.enabled:
            return
        self._purge_step = step + 1  # TensorBoard drops the events at and after it when the writer opens
        if not self.jsonl or not self.path.is_file():
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
            remove_path(RunDir(self.path.parent).tensorboard)

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        clean = {k: (round(v, 6) if isinstance(v, float) and math.isfinite(v) else v) for k, v in record.items()}
        if self.jsonl:
            try:
                with open(self.path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(clean) + "\n")
            except OSError as e:
                if is_disk_full(e):
                    raise disk_full_error(self.path) from None
                raise
        if self.tensorboard:
            writer = self._tensorboard_writer()
            step = int(record.get("step", 0))
            for key, value in clean.items():
                if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                    writer.add_scalar(key, value, step)
            writer.flush()

    def _tensorboard_writer(self) -> Any:
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter  # optional dependency, loaded only when used

            self._writer = SummaryWriter(str(RunDir(self.path.parent).tensorboard), purge_step=self._purge_step)
        return self._writer

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
