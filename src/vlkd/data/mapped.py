"""The read side of every memory-mapped prepared directory (the token store, HowTo100M teacher samples, the
teacher-target cache), written once: meta.json's common check, every file's size against the shape meta.json
gives, a read-only memory map opened on first use, and pickling without the maps (a DataLoader worker opens
its own, once, never per item)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from vlkd.errors import VlkdError
from vlkd.io import read_json

Spec = tuple[str, tuple[int, ...]]  # numpy dtype string (e.g. "<u2"), shape


def read_meta(path: Path, what: str, version: int) -> dict[str, Any]:
    """meta.json of a prepared directory: a JSON object of format `version`, else a one-line error naming
    `what` the directory should be."""
    meta = read_json(path)
    if not isinstance(meta, dict):
        raise VlkdError(f"malformed {what} metadata: not a JSON object", path)
    if meta.get("format_version") != version:
        raise VlkdError(f"unsupported {what} format_version {meta.get('format_version')!r} (expected {version})",
                        path)
    return meta


class MappedArrays:
    """`arrays[name]`: the raw little-endian array in file `name` of `directory`, of the dtype and shape
    `specs` gives. Every file is checked when this is made (`fix` says what to do about a bad one)."""

    def __init__(self, directory: str | os.PathLike, specs: dict[str, Spec], fix: str) -> None:
        self.directory = Path(directory)
        self.specs = specs
        for name, (dtype, shape) in specs.items():
            path = self.directory / name
            itemsize = np.dtype(dtype).itemsize
            expected = math.prod(shape) * itemsize
            if not path.is_file():
                raise VlkdError(f"file not found; {fix}", path)
            size = path.stat().st_size
            if size != expected:
                raise VlkdError(f"size {size} bytes does not match meta.json ({' x '.join(map(str, shape))} x "
                                f"{itemsize} bytes = {expected}); {fix}", path)
        self._maps: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._maps:
            dtype, shape = self.specs[name]
            self._maps[name] = (np.memmap(self.directory / name, dtype=dtype, mode="r", shape=shape)
                                if math.prod(shape) else np.empty(shape, dtype=dtype))  # mmap refuses 0 bytes
        return self._maps[name]

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_maps": {}}
