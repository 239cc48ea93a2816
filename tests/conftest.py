"""Shared fixtures: a small real-text token store (bundled Wikipedia, bert-base-uncased vocabulary)."""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vlkd.data.bundled import bundled_path
from vlkd.data.text.store import build_token_store

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tests compare exact values in fp32: `precision: auto` must not turn to bf16 on a CPU with AMX (engine/precision.py).
os.environ["VLKD_CPU_BF16"] = "0"
# Under pytest-xdist (`make test` runs one worker per core) each worker, and the processes its tests start,
# gets its share of the cores instead of every worker's torch using them all.
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    _threads = max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ["OMP_NUM_THREADS"] = str(_threads)
    import torch

    torch.set_num_threads(_threads)


def wiki_extracts(n: int) -> list[str]:
    """The first n bundled Wikipedia lead sections."""
    raw = json.loads(bundled_path("wikipedia").read_text(encoding="utf-8"))
    out = []
    for value in list(raw.values())[:n]:
        record = ast.literal_eval(value) if isinstance(value, str) else value
        out.append(record["extract"])
    return out


@pytest.fixture(scope="session")
def wiki_txt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "wiki.txt"
    path.write_text("\n".join(wiki_extracts(400)) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def token_store(tmp_path_factory: pytest.TempPathFactory, wiki_txt: Path) -> Path:
    out = tmp_path_factory.mktemp("stores") / "wiki"
    build_token_store([wiki_txt], "bundled:minilm", out, progress=False)
    return out


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `python -m vlkd ARGS` in a subprocess (the way users run it)."""
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run([sys.executable, "-m", "vlkd", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout, env=env)


def kill_mid_run(cmd: list[str], marker: Path) -> None:
    """Start `cmd`, SIGKILL it as soon as `marker` exists (a checkpoint's state file), and check the kill
    landed mid-run (the marker written, no final/ yet)."""
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    run_dir = marker.parents[2]
    assert marker.exists() and not (run_dir / "final").exists(), "the kill must land mid-run"
