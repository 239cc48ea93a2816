"""Shared fixtures: a small real-text token store (bundled Wikipedia, bert-base-uncased vocabulary)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vlkd.data.bundled import bundled_path
from vlkd.data.text.store import build_token_store

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


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
