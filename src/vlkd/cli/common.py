"""What every command module shares: the parser class, number types, registry choices, output checks, and
which process of a multi-process launch runs a command."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import typing
from typing import Callable, Iterator


class Parser(argparse.ArgumentParser):
    """argparse with the house rule for bad input: one line on stderr (no usage block) and exit code 2."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"vlkd: error: {message} (see {self.prog} --help)\n")


def number(ge: float | None = None, gt: float | None = None, le: float | None = None, lt: float | None = None,
           kind: type = float) -> Callable[[str], float]:
    """An argparse `type` that parses a number and checks its range with the configs' own `Range` rule."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        from vlkd.config import Range

        problem = Range(ge=ge, gt=gt, le=le, lt=lt).problem(value)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def integer(ge: float | None = None, gt: float | None = None, le: float | None = None,
            lt: float | None = None) -> Callable[[str], float]:
    return number(ge, gt, le, lt, kind=int)


class RegistryChoices:
    """The names a registry holds, for `%(choices)s` in --help, read on first use (building the parser imports
    nothing heavy). Every value passes argparse: the library checks it, with its one-line error and exit 2."""

    def __init__(self, names: Callable[[], list[str]]) -> None:
        self._names = names
        self._cache: list[str] | None = None

    def _list(self) -> list[str]:
        if self._cache is None:
            self._cache = list(self._names())
        return self._cache

    def __contains__(self, value: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(self._list())

    def __len__(self) -> int:
        return len(self._list())


def version() -> str:
    """The version of the vlkd package that is running (its `__version__`, the one pyproject.toml states)."""
    return importlib.import_module("vlkd").__version__


SHARD_HELP = ("do only shard K of N (0 <= K < N, e.g. $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT) into "
              "OUT.shards/K-of-N/; then `vlkd merge-shards OUT` (docs/commands.md)")


def add_overwrite(p: argparse.ArgumentParser) -> None:
    """--overwrite, the same on every preparation command (the policy: vlkd.outputs)."""
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing output (without it, an existing or differently-built output is "
                        "refused; the same command on its own unfinished output resumes)")


def shard_done(out: str, shard: object) -> int:
    from vlkd.shards import shard_dir

    print(f"{shard_dir(out, shard)}: shard {shard} complete; when all are, run `vlkd merge-shards {out}`")
    return 0



def check_outputs(args: argparse.Namespace) -> None:
    """Before any work: --out must be usable as what the command writes (a directory, or a path prefix)."""
    from vlkd.io import check_output_dir, check_output_prefix

    out, kind = getattr(args, "out", None), getattr(args, "out_kind", None)
    if out and kind == "dir":
        check_output_dir(out, "--out")
    elif out and kind == "prefix":
        check_output_prefix(out, "--out")



# What a multi-process launcher (torchrun, accelerate launch, mpirun) tells each process: its rank, the number
# of processes, its rank on its machine. Accelerate reads the same names.
RANK_VARS = ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")
SIZE_VARS = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
LAUNCH_VARS = (*RANK_VARS, *SIZE_VARS, "LOCAL_RANK", "LOCAL_WORLD_SIZE")


def _first_int(names: tuple[str, ...], default: int) -> int:
    for name in names:
        if os.environ.get(name, "").strip().isdigit():
            return int(os.environ[name])
    return default


def launch_rank() -> tuple[int, int]:
    """(this process's rank, the number of processes) of a multi-process launch; (0, 1) without one."""
    return _first_int(RANK_VARS, 0), _first_int(SIZE_VARS, 1)


@contextlib.contextmanager
def one_process() -> Iterator[None]:
    """While the block runs, the launcher's variables are hidden, so the command (and any training it starts,
    as the quickstart does) runs as a single process would instead of waiting for processes that never join."""
    saved = {name: os.environ.pop(name) for name in LAUNCH_VARS if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)
