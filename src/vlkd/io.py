"""Atomic file and directory writes: a reader (or a resume after kill -9) never sees a partial output."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterator

from vlkd.errors import VlkdError


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling path; on success rename it onto `target`, on error remove it.

    Works for files and directories. An existing `target` is replaced.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    remove_path(tmp)
    try:
        yield tmp
        if target.is_dir() and tmp.is_dir():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old)
        else:
            os.replace(tmp, target)
        _fsync_dir(target.parent)
    except BaseException:
        remove_path(tmp)
        raise


def remove_path(path: Path) -> None:
    """Remove a file or a directory tree if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


class DuplicateKey(ValueError):
    """A JSON object names one key twice (json keeps the last silently; we refuse)."""


def unique_json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise DuplicateKey(key)
        obj[key] = value
    return obj


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file, turning a missing, malformed or non-UTF-8 file, or an object with a duplicate key
    (where json would silently keep the last value), into a VlkdError."""
    path = Path(path)
    if not path.is_file():
        raise VlkdError("file not found", path)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f, object_pairs_hook=unique_json_object)
    except json.JSONDecodeError as e:
        raise VlkdError(f"malformed JSON (line {e.lineno}, column {e.colno}: {e.msg})", path) from None
    except DuplicateKey as e:
        raise VlkdError(f"key {e.args[0]!r} appears twice in one JSON object", path) from None
    except UnicodeDecodeError as e:
        raise VlkdError(f"not UTF-8 text (invalid byte at offset {e.start})", path) from None
    except RecursionError:
        raise VlkdError("malformed JSON (nested too deeply)", path) from None


def check_output_dir(path: str | os.PathLike, what: str = "output directory") -> Path:
    """Refuse, before any work, an output directory that cannot be one: a regular file (or other non-directory)
    at the path or at a parent, or a nearest existing parent without write permission. Returns the path."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise VlkdError(f"{what} exists and is not a directory", path)
    parent = path
    while not parent.exists():
        if parent.is_symlink():
            raise VlkdError(f"{what}: dangling symbolic link", parent)
        parent = parent.parent
    if not parent.is_dir():
        raise VlkdError(f"{what}: {parent} is a file, not a directory", path)
    if not os.access(parent, os.W_OK | os.X_OK, effective_ids=os.access in os.supports_effective_ids):
        raise VlkdError(f"{what}: no permission to write in {parent}", path)
    return path


def check_output_prefix(prefix: str | os.PathLike, what: str = "output") -> Path:
    """An output path without suffix (PREFIX.json, PREFIX.png): its folder must be usable (`check_output_dir`)
    and PREFIX.json must not be a directory."""
    prefix = Path(prefix)
    check_output_dir(prefix.parent, f"{what} folder")
    target = prefix.with_name(prefix.name + ".json")
    if target.is_dir():
        raise VlkdError(f"{what}: is a directory", target)
    return prefix
