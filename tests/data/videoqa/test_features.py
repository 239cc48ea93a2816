"""HCRN-layout feature files: lookup by id, validation, and reads from DataLoader worker processes."""

from __future__ import annotations

import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from vlkd.data.videoqa.features import HCRNFeatures
from vlkd.errors import VlkdError


def write(folder: Path, ids, clips: int = 3, motion_clips: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    app = rng.normal(size=(len(ids), clips, 4, 5)).astype(np.float32)
    mot = rng.normal(size=(len(ids), motion_clips or clips, 6)).astype(np.float32)
    with h5py.File(folder / "appearance_feat.h5", "w") as f:
        f.create_dataset("resnet_features", data=app)
        f.create_dataset("ids", data=ids)
    with h5py.File(folder / "motion_feat.h5", "w") as f:
        f.create_dataset("resnext_features", data=mot)
        f.create_dataset("ids", data=ids)
    return app, mot


def test_rows_by_id_with_repeats_and_any_order(tmp_path: Path) -> None:
    app, mot = write(tmp_path, np.array([12, 3, 7], dtype=np.int64))
    store = HCRNFeatures(tmp_path)
    assert (store.num_clips, store.frames, store.appearance_dim, store.motion_dim) == (3, 4, 5, 6)
    a, m = store.read([7, "12", 7, 3])  # a digit string matches the integer id
    assert np.array_equal(a, app[[2, 0, 2, 1]]) and np.array_equal(m, mot[[2, 0, 2, 1]])
    assert store.missing([3, 99, "x", 99]) == [99, "x"]
    assert np.allclose(store.mean_motion(chunk=2), mot.mean(axis=(0, 1)), atol=1e-6)


def test_string_ids(tmp_path: Path) -> None:
    write(tmp_path, np.array(["vidA", "vidB"], dtype=h5py.string_dtype()))
    store = HCRNFeatures(tmp_path)
    assert store.missing(["vidB", "vidC"]) == ["vidC"]
    assert store.read(["vidB"])[0].shape == (1, 3, 4, 5)


class Reads(Dataset):
    def __init__(self, store: HCRNFeatures) -> None:
        self.store = store

    def __len__(self) -> int:
        return 6

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(self.store.read([[12, 3, 7][i % 3]])[0][0])


def test_reads_from_worker_processes_after_the_main_process_opened_the_files(tmp_path: Path) -> None:
    app, _ = write(tmp_path, np.array([12, 3, 7], dtype=np.int64))
    store = HCRNFeatures(tmp_path)
    store.read([3])  # the main process holds open handles; each worker must open its own
    state = pickle.loads(pickle.dumps(store)).__dict__
    assert state["_files"] is None
    got = torch.cat(list(DataLoader(Reads(store), batch_size=2, num_workers=2)))
    assert np.array_equal(got.numpy(), app[[0, 1, 2, 0, 1, 2]])


def test_bad_files_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(VlkdError, match="feature file not found"):
        HCRNFeatures(tmp_path / "nothing")
    write(tmp_path / "clips", np.arange(2), clips=3, motion_clips=4)
    with pytest.raises(VlkdError, match="3 clips per video but motion_feat.h5 has 4"):
        HCRNFeatures(tmp_path / "clips")
    bad = tmp_path / "names"
    write(bad, np.arange(2))
    with h5py.File(bad / "motion_feat.h5", "w") as f:
        f.create_dataset("features", data=np.zeros((2, 3, 6)))
    with pytest.raises(VlkdError, match="expected datasets 'resnext_features' and 'ids'"):
        HCRNFeatures(bad)
    (bad / "appearance_feat.h5").write_text("not hdf5")
    with pytest.raises(VlkdError, match="not a readable HDF5 file"):
        HCRNFeatures(bad)
