"""Sharded preparation: `--shard K/N` splits a long preparation command over N processes or machines.

Shard K of N (0 <= K < N, as a Slurm array's task id) of a command with `--out OUT` writes only to
`OUT.shards/K-of-N/`, so shards never collide. Its `shard.json` records the command, K, N and a digest of
everything that decides the output (inputs and settings); it says `"complete": true` once the shard is done.
`vlkd merge-shards OUT` checks that all N shards are there, complete and of the same inputs, and writes OUT
exactly as one unsharded run would (byte for byte), then removes `OUT.shards/`.

The work is split into contiguous ranges of a deterministic item order (`Shard.span`), so concatenating
the shards' results in K order is the unsharded order.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from vlkd.errors import VlkdError
from vlkd.io import read_json, remove_path, write_json_atomic
from vlkd.outputs import existing_output, is_vacant

SHARD_FILE = "shard.json"
_NAME = re.compile(r"^(\d+)-of-(\d+)$")


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count` (0-based)."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def name(self) -> str:
        return f"{self.index}-of-{self.count}"

    def span(self, n: int, align: int = 1) -> tuple[int, int]:
        """This shard's contiguous range [lo, hi) of `n` items; with `align`, whole groups of `align` items
        (e.g. batches, so every batch is the same as in an unsharded run)."""
        groups = -(-n // align)
        lo, hi = self.index * groups // self.count, (self.index + 1) * groups // self.count
        return min(lo * align, n), min(hi * align, n)


def parse_shard(text: str | None) -> Shard | None:
    """`K/N` -> Shard(K, N); None stays None. A malformed value is a VlkdError."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m or int(m.group(2)) < 1 or int(m.group(1)) >= int(m.group(2)):
        raise VlkdError(f"--shard must be K/N with 0 <= K < N (e.g. 0/4 ... 3/4), got {text!r}")
    return Shard(int(m.group(1)), int(m.group(2)))


def shards_root(out: str | os.PathLike) -> Path:
    """`OUT.shards`: where the shards of output OUT live."""
    out = Path(out)
    return out.with_name(out.name + ".shards")


def shard_dir(out: str | os.PathLike, shard: Shard) -> Path:
    return shards_root(out) / shard.name


def digest(obj: Any) -> str:
    """sha256 (hex, first 16) of `obj` as canonical JSON: the identity of a shard's inputs and settings."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_identity(paths: Iterable[str | os.PathLike]) -> list[list[Any]]:
    """[absolute path, size] per file: cheap enough to compute for every shard of a big input."""
    return [[os.fspath(Path(p).resolve()), Path(p).stat().st_size] for p in paths]


def begin_shard(out: str | os.PathLike, shard: Shard, command: str, identity: dict[str, Any],
                overwrite: bool = False) -> tuple[Path, dict[str, Any] | None]:
    """Claim `OUT.shards/K-of-N` for `command` with these inputs; returns (directory, the result recorded by
    `finish_shard` when this shard is already complete, else None).

    A directory left by the same command and inputs is continued (or found complete); one of other inputs
    or settings is refused (`outputs.existing_output`); `overwrite` starts the shard again."""
    path = shard_dir(out, shard)
    if overwrite:
        remove_path(path)
    record = {"command": command, "shard": shard.index, "of": shard.count, "identity": digest(identity),
              "inputs": identity, "complete": False}
    existing = path / SHARD_FILE
    if existing.is_file():
        old = read_json(existing)
        if not isinstance(old, dict) or (old.get("command"), old.get("identity")) != (command, record["identity"]):
            raise existing_output(path, f" (shard {shard} of another command or other inputs/settings)")
        return path, old.get("result") if old.get("complete") else None
    if not is_vacant(path):
        raise existing_output(path, " and is not a shard directory")
    path.mkdir(parents=True, exist_ok=True)
    write_json_atomic(existing, record)
    return path, None


def finish_shard(path: Path, result: dict[str, Any]) -> None:
    """Mark the shard in `path` complete, with what its merge needs (`result`)."""
    record = read_json(path / SHARD_FILE)
    write_json_atomic(path / SHARD_FILE, {**record, "complete": True, "result": result})


@dataclass(frozen=True)
class ShardSet:
    """All shards of one output, checked: same command, same inputs, every K of N present and complete."""

    command: str
    count: int
    dirs: list[Path]
    records: list[dict[str, Any]]

    @property
    def inputs(self) -> dict[str, Any]:
        return self.records[0]["inputs"]

    @property
    def results(self) -> list[dict[str, Any]]:
        return [r["result"] for r in self.records]


def collect_shards(out: str | os.PathLike) -> ShardSet:
    """Find and check the shards of OUT (see the module docstring); any problem is a one-line VlkdError."""
    root = shards_root(out)
    if not root.is_dir():
        raise VlkdError(f"no shards of {os.fspath(out)} (run the command with --shard K/N first)", root)
    found = {}
    for p in root.iterdir():
        m = _NAME.match(p.name)
        if p.is_dir() and m:
            found[(int(m.group(1)), int(m.group(2)))] = p
    counts = sorted({n for _, n in found})
    if not counts:
        raise VlkdError("no shard directories (K-of-N) found", root)
    if len(counts) > 1:
        raise VlkdError(f"shards of different splits (N = {', '.join(map(str, counts))}); keep one N", root)
    n = counts[0]
    records, dirs = [], []
    for k in range(n):
        path = found.get((k, n))
        if path is None:
            raise VlkdError(f"shard {k}/{n} is missing (run the command with --shard {k}/{n})", root / f"{k}-of-{n}")
        if not (path / SHARD_FILE).is_file():
            raise VlkdError(f"shard {k}/{n} is incomplete (no {SHARD_FILE}; re-run it with --shard {k}/{n})", path)
        record = read_json(path / SHARD_FILE)
        if not isinstance(record, dict) or not record.get("complete"):
            raise VlkdError(f"shard {k}/{n} is incomplete (re-run it with --shard {k}/{n})", path)
        if records and (record.get("command"), record.get("identity")) != (records[0]["command"],
                                                                             records[0]["identity"]):
            raise VlkdError(f"shard {k}/{n} was made by another command or from other inputs/settings than "
                            f"shard 0/{n} (identity {record.get('identity')} vs {records[0]['identity']})", path)
        records.append(record)
        dirs.append(path)
    return ShardSet(records[0]["command"], n, dirs, records)


def remove_shards(out: str | os.PathLike) -> None:
    """Delete `OUT.shards/` after a successful merge."""
    shutil.rmtree(shards_root(out), ignore_errors=True)


def concat_files(parts: Iterable[Path], target: Path, limit: int | None = None) -> int:
    """Write the bytes of `parts` one after another into `target` (at most `limit` bytes); returns the size."""
    written = 0
    with open(target, "wb") as f:
        for part in parts:
            with open(part, "rb") as src:
                while limit is None or written < limit:
                    chunk = src.read(1 << 24 if limit is None else min(1 << 24, limit - written))
                    if not chunk:
                        break
                    f.write(chunk)
                    written += len(chunk)
        f.flush()
        os.fsync(f.fileno())
    return written


def link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link `src` to `dst` (no copy of big feature files), copying when the file system refuses."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)
