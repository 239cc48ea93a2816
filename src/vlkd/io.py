"""Atomic file and directory writes: a reader (or a resume after kill -9) never sees a partial output, and a
full disk leaves the previous state in place with a one-line error naming the path."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import struct
from pathlib import Path
from typing import Any, Iterator

import yaml

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
    except BaseException as e:
        remove_path(tmp)
        if is_disk_full(e):
            raise disk_full_error(target) from None
        raise


_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def is_disk_full(exc: BaseException) -> bool:
    """Whether `exc` (or an exception it was raised from) says the disk or the quota is full. torch.save
    turns the OSError into a RuntimeError (chained), safetensors into its own error (with the OS text)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _DISK_FULL:
            return True
        text = str(current)
        if "No space left on device" in text or "Disk quota exceeded" in text:
            return True
        current = current.__cause__ or current.__context__
    return False


def disk_full_error(path: str | os.PathLike) -> VlkdError:
    return VlkdError("no space left on device (disk or quota full) while writing this; nothing was replaced, "
                     "the previous state is kept", path)


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


def read_yaml(path: str | os.PathLike) -> Any:
    """Read a YAML file, turning a malformed or non-UTF-8 file into a VlkdError (the caller checks that the
    file exists, with its own message, and the shape of what it holds)."""
    path = Path(path)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise VlkdError(f"malformed YAML ({' '.join(str(e).split())[:200]})", path) from None
    except UnicodeDecodeError:
        raise VlkdError("not UTF-8 text", path) from None


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


def check_safetensors(path: str | os.PathLike) -> None:
    """Refuse (one line naming the file) a .safetensors file that is truncated or not safetensors at all:
    its 8-byte header length, JSON header and the data size the header promises must all be there."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise VlkdError(f"not a safetensors file or truncated ({size} bytes)", path)
            (length,) = struct.unpack("<Q", head)
            if length > size - 8:
                raise VlkdError(f"truncated safetensors file ({size} bytes; its header alone needs {length + 8})",
                                path)
            header = json.loads(f.read(length))
    except OSError as e:
        raise VlkdError(f"cannot read ({e.strerror or e})", path) from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise VlkdError("not a safetensors file (malformed header)", path) from None
    if not isinstance(header, dict):
        raise VlkdError("not a safetensors file (malformed header)", path)
    ends = [v["data_offsets"][1] for k, v in header.items()
            if k != "__metadata__" and isinstance(v, dict) and isinstance(v.get("data_offsets"), list)]
    need = 8 + length + max(ends, default=0)
    if size < need:
        raise VlkdError(f"truncated safetensors file ({size} bytes, its header promises {need})", path)


def check_safetensors_dir(directory: str | os.PathLike) -> None:
    """check_safetensors on every weights file of a model directory (sharded ones included)."""
    for file in sorted(Path(directory).glob("*.safetensors")):
        check_safetensors(file)


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 hex digest of a file, read in 4 MiB chunks (memory does not grow with its size)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()
