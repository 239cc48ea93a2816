"""The skeleton of every preparation command (`vlkd prepare ...`, `vlkd extract-features`): what they share,
written once. A command reads and checks its inputs, then hands the writing to one of two drivers:

- `WriteOnce` (prepare text, howto100m, videoqa, world, bundled; merge-shards): the output is built in a
  temporary sibling and renamed onto OUT when complete, so a failure or a kill leaves nothing and a re-run
  starts again. It needs no lock: two runs build in their own temporaries and each rename is atomic.
- `Resumable` (extract-features, prepare teacher-targets): long runs written in place item by item, under
  OUT's lock (`lock.DirLock`), with SIGTERM/SIGUSR1 finishing the item in hand and stopping (exit code 75,
  `preempt`); a re-run of the same command and settings skips the finished items.

Both apply the one existing-output rule (`outputs`: refused with one line unless `--overwrite`, which starts
again) and `--shard K/N` (`shards`): shard K claims OUT.shards/K-of-N/ with the identity of its inputs and
settings, writes there, and records the result its merge (`vlkd merge-shards`) needs; a complete shard is
not built again. `progress_bar` is every command's progress display.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import TracebackType
from typing import Any, Callable, Iterable, Iterator, TypeVar

from tqdm import tqdm

from vlkd.errors import Preempted
from vlkd.io import atomic_path, read_json, remove_path
from vlkd.lock import LOCK_FILE, DirLock
from vlkd.outputs import NOT_EMPTY, check_output, existing_output, is_vacant
from vlkd.preempt import StopSignals
from vlkd.shards import Shard, begin_shard, finish_shard

T = TypeVar("T")
SHARD_DATA = "data"  # a write-once shard's output, inside OUT.shards/K-of-N/


def progress_bar(total: int, desc: str, unit: str, enabled: bool = True, initial: int = 0, **options: Any) -> tqdm:
    """The progress display of every preparation command (on stderr; `options` go to tqdm)."""
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=not enabled, file=sys.stderr,
                dynamic_ncols=True, **options)


class Preparation:
    """Where one run of `command` writes: OUT, or with `shard` its shard directory, claimed at once (a
    directory of another command or other `identity` is refused unless `overwrite`). `finished` is the
    recorded result of a shard that is already complete, else None."""

    def __init__(self, command: str, out: str | os.PathLike, *, overwrite: bool = False, shard: Shard | None = None,
                 identity: dict[str, Any] | None = None) -> None:
        self.command, self.out, self.overwrite, self.shard = command, Path(out), overwrite, shard
        self.finished: Any = None
        self.dir = self.out
        if shard is not None:
            self.dir, self.finished = begin_shard(out, shard, command, identity or {}, overwrite)


class WriteOnce(Preparation):
    """A write-once output: made (the output checked, or the shard claimed) before any work; then
    `write(build)` builds it."""

    def __init__(self, command: str, out: str | os.PathLike, **options: Any) -> None:
        super().__init__(command, out, **options)
        if self.shard is None:
            check_output(self.out, self.overwrite)

    def write(self, build: Callable[[Path], T]) -> T:
        """`build(directory)` writes everything into a fresh directory, renamed onto OUT (a shard: onto
        OUT.shards/K-of-N/data, then marked complete with `build`'s result) once it returns; returns that
        result (a complete shard's recorded one, without building)."""
        if self.finished is not None:
            return self.finished
        if self.shard is None:
            check_output(self.out, self.overwrite)  # again: work between the two checks may be long
        with atomic_path(self.dir / SHARD_DATA if self.shard else self.out) as tmp:
            tmp.mkdir()
            result = build(tmp)
        if self.shard is not None:
            finish_shard(self.dir, result)
        return result


class Resumable(Preparation):
    """`with Resumable(...) as run:` a resumable output, under its lock and with stop signals caught. The
    command then `claim`s its own record, loops over its work with `each`, writes its final files and
    `complete`s (a shard)."""

    def __enter__(self) -> "Resumable":
        self._lock = DirLock(self.dir).acquire()
        self.signals = StopSignals().__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.signals.__exit__(kind, exc, tb)
        self._lock.release()

    def claim(self, records: tuple[str, ...], ours: Callable[[Any], bool], other: str,
              foreign: str = NOT_EMPTY) -> tuple[str, Any] | None:
        """The output rule for a resumable output: (name, content) of the first of the `records` files (e.g.
        a finished build's meta.json, then an unfinished one's progress file) when `ours(content)`: this
        command made it from the same inputs and settings, so continue it. None: start afresh (nothing there,
        or `overwrite` emptied it). A record of other settings is refused saying `other`, any other content
        saying `foreign`. A shard directory was checked when claimed."""
        overwrite = self.overwrite and self.shard is None  # begin_shard already emptied an overwritten shard
        for name in records:
            path = self.dir / name
            if path.is_file():
                if overwrite:
                    break
                content = read_json(path)
                if self.shard is None and not ours(content):
                    raise existing_output(self.dir, other)
                return name, content
        if self.shard is None and not is_vacant(self.dir):
            if not overwrite:
                raise existing_output(self.dir, foreign)
            for child in self.dir.iterdir():
                if child.name != LOCK_FILE:
                    remove_path(child)
        return None

    def each(self, items: Iterable[T], *, total: int, done: int, unit: str, size: Callable[[T], int] = lambda _: 1,
             save: Callable[[int], None] | None = None, every: int = 1, progress: bool = True,
             stopped: str = "stopped with {done:,} of {total:,} {unit}s done") -> Iterator[T]:
        """Yield the unfinished `items` (`done` of `total` units already done; an item is `size(item)` units)
        with a progress bar. `save(units done)` records progress every `every` items, at a stop and at the
        end. After a stop signal the item in hand is finished, then `Preempted` says what `stopped`."""
        with progress_bar(total, self.command, unit, progress, done) as bar:
            count = 0
            for count, item in enumerate(items, 1):
                yield item
                done += size(item)
                bar.update(size(item))
                signal = self.signals.requested
                if save is not None and (signal or count % every == 0):
                    save(done)
                if signal and done < total:
                    raise Preempted(f"{signal}: {stopped.format(done=done, total=total, unit=unit)} in {self.dir}; "
                                    "run the same command again to continue")
            if save is not None and count % every:
                save(done)

    def complete(self, result: Any) -> None:
        """A shard: mark it complete with what its merge needs (an unsharded output's final file says so)."""
        if self.shard is not None:
            finish_shard(self.dir, result)
