"""Checkpoints: `checkpoints/step-N/` written atomically (temp dir + rename) with a manifest of each file's
size and sha256, so a kill -9 never leaves a half-written checkpoint where resume would look, and
truncation or flipped bytes are detected (docs/run-directory.md)."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from vlkd.errors import VlkdError
from vlkd.io import atomic_path, file_sha256, remove_path
from vlkd.rundir import CheckpointDir, RunDir, checkpoint_step


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _storage_groups(module: torch.nn.Module, frozen: Sequence[torch.nn.Module]) -> tuple[list[list[str]], set[str]]:
    """The trained tensors grouped by storage (tied weights share one; the first name is the saved one),
    and the names that belong to frozen submodules."""
    skip = [name for name, sub in module.named_modules() if any(sub is f for f in frozen)]
    groups: dict[tuple[int, int, tuple[int, ...]], list[str]] = {}
    frozen_names: set[str] = set()
    for name, tensor in module.state_dict(keep_vars=True).items():
        if any(name.startswith(prefix + ".") for prefix in skip):
            frozen_names.add(name)
            continue
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
        groups.setdefault(key, []).append(name)
    return list(groups.values()), frozen_names


def trained_state(module: torch.nn.Module, frozen: Sequence[torch.nn.Module] = ()) -> dict[str, torch.Tensor]:
    """The module's parameters and buffers minus those of its `frozen` submodules (a distillation teacher
    is not part of a student's checkpoint), one name per storage (tied weights are saved once)."""
    state = module.state_dict(keep_vars=True)
    return {names[0]: state[names[0]] for names in _storage_groups(module, frozen)[0]}


def _torch_save(obj: Any, path: Path) -> None:
    """torch.save through a Python file, so a full disk surfaces as the OSError behind torch's error."""
    with open(path, "wb") as f:
        torch.save(obj, f)


def save_checkpoint(
    path: Path,
    *,
    module: torch.nn.Module,
    frozen: Sequence[torch.nn.Module] = (),
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    trainer_state: dict[str, Any],
    rngs: Sequence[dict[str, Any]],
) -> None:
    """Write one checkpoint directory atomically (single process, or the main one under DDP).

    Every process has the same RNG streams' role, but states differ per rank; the caller passes the
    gathered per-rank RNG states as `rngs` (index = rank).
    """
    with atomic_path(path) as tmp:
        tmp.mkdir(parents=True)
        files = CheckpointDir(tmp)
        save_file({k: v.detach().contiguous() for k, v in trained_state(module, frozen).items()}, str(files.model))
        _torch_save(optimizer.state_dict(), files.optimizer)
        _torch_save(scheduler.state_dict(), files.scheduler)
        for rank, state in enumerate(rngs):
            _torch_save(state, files.rng(rank))
        for p in tmp.iterdir():
            with open(p, "rb") as f:
                os.fsync(f.fileno())
        manifest = {p.name: {"bytes": p.stat().st_size, "sha256": file_sha256(p)} for p in sorted(tmp.iterdir())}
        trainer_state = {**trainer_state, "files": manifest}
        with open(files.state, "w", encoding="utf-8") as f:
            json.dump(trainer_state, f, indent=2, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())


def drop_optimizer_state(run_dir: Path) -> int:
    """Delete the optimizer state of a finished run's checkpoints (the largest file: two Adam moments per
    weight) and record that in each manifest; return the bytes freed. Such a checkpoint still marks the run
    complete for `resume`, but cannot continue training."""
    freed = 0
    for _, path in list_checkpoints(run_dir):
        state, files = read_trainer_state(path), CheckpointDir(path)
        if files.optimizer.name not in state.get("files", {}):
            continue
        freed += files.optimizer.stat().st_size
        state["files"] = {k: v for k, v in state["files"].items() if k != files.optimizer.name}
        state["optimizer_state"] = False
        tmp = files.state.with_name(f".{files.state.name}.tmp")
        tmp.write_text(json.dumps(state, indent=2, sort_keys=True), encoding="utf-8")
        os.replace(tmp, files.state)  # the manifest first: a kill between the two leaves a usable state
        files.optimizer.unlink()
    return freed


def checkpoint_dirs(run_dir: Path) -> list[tuple[int, Path]]:
    """Every `checkpoints/step-N` directory, complete or not, oldest first. Temp dirs are ignored."""
    root = RunDir(run_dir).checkpoints
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        step = checkpoint_step(child)
        if step is not None and child.is_dir():
            found.append((step, child))
    return sorted(found)


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints (those with a state file), oldest first. Temp dirs are ignored."""
    return [(step, path) for step, path in checkpoint_dirs(run_dir) if CheckpointDir(path).state.is_file()]


def prune_checkpoints(run_dir: Path, keep: int) -> None:
    """Keep the newest `keep` (at least 1) complete checkpoints; drop temp dirs a killed writer left."""
    if keep < 1:
        raise VlkdError(f"config key 'keep_checkpoints' must be at least 1, got {keep}")
    for _, path in list_checkpoints(run_dir)[:-keep]:
        remove_path(path)
    for stale in RunDir(run_dir).stale_checkpoints:
        remove_path(stale)


def read_trainer_state(path: Path) -> dict[str, Any]:
    """Read and verify a checkpoint's state file and manifest: every listed file present, of its size and
    (checkpoints written since checksums were added) of its sha256. A VlkdError names the bad file."""
    state_file = CheckpointDir(path).state
    if not state_file.is_file():
        raise VlkdError(f"incomplete checkpoint: no {state_file.name}", path)
    try:
        state = json.loads(state_file.read_text(encoding="utf-8"))
        files = state["files"]
        if not isinstance(files, dict) or not files:
            raise TypeError
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
        raise VlkdError("checkpoint state file is unreadable or malformed", state_file) from None
    for name, entry in files.items():
        size, digest = (entry, None) if isinstance(entry, int) else (entry.get("bytes"), entry.get("sha256"))
        file = path / name
        if not file.is_file():
            raise VlkdError("checkpoint file is missing", file)
        if file.stat().st_size != size:
            raise VlkdError(f"checkpoint file is truncated or altered ({file.stat().st_size} bytes, "
                            f"expected {size})", file)
        if digest is not None and file_sha256(file) != digest:
            raise VlkdError("checkpoint file is corrupt (sha256 differs from the manifest's)", file)
    return state


def load_checkpoint(
    path: Path, *, module: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, rank: int,
    frozen: Sequence[torch.nn.Module] = (), state: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Restore module, optimizer, scheduler and this process's RNG; returns the trainer state. `state`:
    the checkpoint's already verified state (read_trainer_state), to skip a second verification."""
    state = read_trainer_state(path) if state is None else state
    files = CheckpointDir(path)
    current = files.model
    try:
        _load_trained(module, frozen, current)
        current = files.optimizer
        if state.get("optimizer_state", True):  # dropped when a finished run did not keep it
            optimizer.load_state_dict(torch.load(current, map_location="cpu", weights_only=False))
        current = files.scheduler
        scheduler.load_state_dict(torch.load(current, map_location="cpu", weights_only=False))
        current = files.rng(rank)
        if not current.is_file():
            raise VlkdError(f"checkpoint has no RNG state for process {rank} (saved with fewer processes; "
                            "exact resume needs the same number of processes)", current)
        set_rng_state(torch.load(current, map_location="cpu", weights_only=False))
    except VlkdError:
        raise
    except Exception as e:  # corrupt or incompatible files: name the file, one line
        raise VlkdError(f"cannot load checkpoint ({type(e).__name__}: {str(e).splitlines()[0][:200]})", current) from None
    return state


def _load_trained(module: torch.nn.Module, frozen: Sequence[torch.nn.Module], path: Path) -> None:
    """Copy a checkpoint's tensors into the module in place. Every trained tensor must be there (under any
    of its tied names); a frozen submodule's tensors (written by versions before `Job.frozen`) are ignored."""
    saved = load_file(str(path))
    groups, frozen_names = _storage_groups(module, frozen)
    state = module.state_dict(keep_vars=True)
    known = {name for names in groups for name in names} | frozen_names
    missing = [names[0] for names in groups if not any(n in saved for n in names)]
    extra = sorted(set(saved) - known)
    if missing or extra:
        raise VlkdError(f"checkpoint does not match the model ({len(missing)} tensors missing, e.g. "
                        f"{missing[:1]}; {len(extra)} unexpected, e.g. {extra[:1]})", path)
    with torch.no_grad():
        for names in groups:
            name = next(n for n in names if n in saved)
            tensor = state[names[0]]
            if saved[name].shape != tensor.shape:
                raise VlkdError(f"checkpoint tensor {name} has shape {tuple(saved[name].shape)}, the model's is "
                                f"{tuple(tensor.shape)}", path)
            tensor.copy_(saved[name])
