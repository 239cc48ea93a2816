"""Read VideoQA clip features in HCRN's HDF5 layout (docs/formats.md), safely from DataLoader workers.

appearance file: `resnet_features` (V, N, F, Da) + `ids` (V,); motion file: `resnext_features` (V, N, Dm)
+ `ids` (V,). The files are checked once when opened here, then closed; each process (main or
DataLoader worker) reopens them on its first read and keeps them open (the reference reopened them on
every item; an h5py handle must not cross a fork).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

import h5py
import numpy as np

from vlkd.errors import VlkdError

APPEARANCE_FILE, MOTION_FILE = "appearance_feat.h5", "motion_feat.h5"
APPEARANCE_DATASET, MOTION_DATASET = "resnet_features", "resnext_features"


def video_key(value: Any) -> int | str:
    """How video ids compare: integers and strings of digits as ints (HCRN writes int64; JSON may hold
    "12"), other strings (and bytes, decoded) as strings."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    text = str(value)
    return int(text) if text.isascii() and text.isdigit() else text


def _check_datasets(f: h5py.File, dataset: str, ndim: int, path: Path, chunk: int = 64) -> tuple[tuple, np.ndarray]:
    """The features' shape and ids of one open HCRN file, checked: float features of rank `ndim` with one
    row per id, integer or string ids, and every value finite (read in chunks of `chunk` videos)."""
    found = {name: f.get(name) for name in (dataset, "ids")}
    if not all(isinstance(d, h5py.Dataset) for d in found.values()):
        raise VlkdError(f"expected datasets '{dataset}' and 'ids' (HCRN layout), found {sorted(f.keys())}", path)
    data, ids_data = found[dataset], found["ids"]
    if data.dtype.kind != "f":
        raise VlkdError(f"'{dataset}' must hold floating-point features, got dtype {data.dtype}", path)
    if ids_data.ndim != 1 or ids_data.dtype.kind not in "iuSOU":
        raise VlkdError(f"'ids' must be a 1-D array of integers or strings, got {ids_data.dtype} "
                        f"{ids_data.shape}", path)
    ids = ids_data[()]
    if data.ndim != ndim or data.shape[0] != len(ids):
        raise VlkdError(f"'{dataset}' has shape {data.shape}; expected {ndim} dimensions with one row per id "
                        f"({len(ids)} ids)", path)
    for start in range(0, data.shape[0], chunk):
        block = data[start:start + chunk]
        if not np.isfinite(block).all():
            row = start + int(np.argwhere(~np.isfinite(block))[0][0])
            raise VlkdError(f"'{dataset}' holds NaN or infinite values (video {video_key(ids[row])!r}, row {row})",
                            path)
    return data.shape, ids


class HCRNFeatures:
    """Appearance and motion rows of a set of videos, looked up by video id."""

    def __init__(self, folder: str | os.PathLike, appearance_file: str = APPEARANCE_FILE,
                 motion_file: str = MOTION_FILE) -> None:
        folder = Path(folder)
        self.paths = (folder / appearance_file, folder / motion_file)
        shapes, self.rows = [], []
        for path, dataset, ndim in zip(self.paths, (APPEARANCE_DATASET, MOTION_DATASET), (4, 3)):
            if not path.is_file():
                raise VlkdError("feature file not found (write it with `vlkd extract-features --layout hcrn`)", path)
            try:
                with h5py.File(path, "r") as f:
                    shape, ids = _check_datasets(f, dataset, ndim, path)
            except OSError as e:
                raise VlkdError(f"not a readable HDF5 file ({' '.join(str(e).split())[:160]})", path) from None
            shapes.append(shape)
            rows: dict[int | str, int] = {}
            for row, v in enumerate(ids):
                if rows.setdefault(video_key(v), row) != row:
                    raise VlkdError(f"'ids' names video {video_key(v)!r} twice (rows {rows[video_key(v)]} and {row})",
                                    path)
            self.rows.append(rows)
        (_, n_app, self.frames, self.appearance_dim), (_, n_mot, self.motion_dim) = shapes
        if n_app != n_mot:
            raise VlkdError(f"appearance has {n_app} clips per video but {self.paths[1].name} has {n_mot}",
                            self.paths[0])
        self.num_clips = n_app
        self._pid: int | None = None
        self._files: tuple[h5py.File, h5py.File] | None = None

    def missing(self, video_ids: Iterable[Any]) -> list[Any]:
        """The ids (in first-seen order, once each) absent from either file."""
        seen: dict[Any, None] = {}
        for vid in video_ids:
            key = video_key(vid)
            if key not in self.rows[0] or key not in self.rows[1]:
                seen.setdefault(vid)
        return list(seen)

    def _open(self) -> tuple[h5py.File, h5py.File]:
        if self._files is None or self._pid != os.getpid():
            self._files = (h5py.File(self.paths[0], "r"), h5py.File(self.paths[1], "r"))
            self._pid = os.getpid()
        return self._files

    def read(self, video_ids: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        """Appearance (B, N, F, Da) and motion (B, N, Dm) float32 rows for `video_ids` (repeats allowed).
        Each distinct row is read once, in file order (h5py's fancy indexing wants increasing rows)."""
        app_file, mot_file = self._open()
        out = []
        for f, dataset, rows in ((app_file, APPEARANCE_DATASET, self.rows[0]), (mot_file, MOTION_DATASET, self.rows[1])):
            wanted = np.array([rows[video_key(v)] for v in video_ids])
            unique, inverse = np.unique(wanted, return_inverse=True)
            out.append(np.asarray(f[dataset][unique], dtype=np.float32)[inverse])
        return out[0], out[1]

    def mean_motion(self, chunk: int = 256) -> np.ndarray:
        """The motion feature averaged over every video and clip (Dm,), read in chunks."""
        _, mot_file = self._open()
        data = mot_file[MOTION_DATASET]
        total = np.zeros(self.motion_dim, dtype=np.float64)
        for start in range(0, data.shape[0], chunk):
            total += np.asarray(data[start:start + chunk], dtype=np.float64).sum(axis=(0, 1))
        return (total / (data.shape[0] * self.num_clips)).astype(np.float32)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_files"], state["_pid"] = None, None  # each worker opens its own handles
        return state
