"""The one policy of every preparation command (`prepare ...`, `extract-features`, `merge-shards`) for an
output that already exists: without `--overwrite` it is refused with one line, the same for every command
(`output already exists...; pass --overwrite to replace it`); with it, it is replaced. A resumable command
(extract-features, prepare teacher-targets) continues an output of its own made from the same inputs and
settings; one made otherwise is refused the same way."""

from __future__ import annotations

import os
from pathlib import Path

from vlkd.errors import VlkdError
from vlkd.lock import LOCK_FILE

NOT_EMPTY = " and is not an empty directory"


def existing_output(out: str | os.PathLike, why: str = NOT_EMPTY) -> VlkdError:
    """The error for an output a command may not write over; `why` says what is there (after 'exists')."""
    return VlkdError(f"output already exists{why}; pass --overwrite to replace it", out)


def is_vacant(out: str | os.PathLike) -> bool:
    """Nothing there yet: no path, or a directory holding nothing but a lock file."""
    out = Path(out)
    return not out.exists() or (out.is_dir() and all(p.name == LOCK_FILE for p in out.iterdir()))


def check_output(out: str | os.PathLike, overwrite: bool) -> None:
    """Refuse an existing output unless `overwrite` (the caller replaces it, atomically where it can)."""
    if not overwrite and not is_vacant(out):
        raise existing_output(out)
