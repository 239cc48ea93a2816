"""Commands under a multi-process launch (torchrun, accelerate launch), decided from the launcher's variables:
a command that does not share its work runs on process 0 as one process would; the others do nothing. The
same commands really started in two processes: tests/engine/test_two_processes.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import wiki_extracts
from vlkd.cli import main
from vlkd.cli.common import launch_rank, one_process


def launched(monkeypatch: pytest.MonkeyPatch, rank: int, processes: int) -> None:
    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setenv("LOCAL_RANK", str(rank))
    monkeypatch.setenv("WORLD_SIZE", str(processes))


def test_rank_and_processes_from_torchrun_or_mpi(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert launch_rank() == (0, 1)
    launched(monkeypatch, 3, 4)
    assert launch_rank() == (3, 4)
    monkeypatch.delenv("RANK")
    monkeypatch.delenv("WORLD_SIZE")
    monkeypatch.setenv("OMPI_COMM_WORLD_RANK", "1")
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")
    assert launch_rank() == (1, 2)


def test_one_process_hides_the_launch_and_restores_it(monkeypatch: pytest.MonkeyPatch) -> None:
    launched(monkeypatch, 0, 2)
    with one_process():
        assert launch_rank() == (0, 1) and "LOCAL_RANK" not in os.environ
    assert launch_rank() == (0, 2) and os.environ["LOCAL_RANK"] == "0"


def small_corpus(tmp_path: Path) -> Path:
    text = tmp_path / "wiki.txt"
    text.write_text("\n".join(wiki_extracts(20)) + "\n", encoding="utf-8")
    return text


def test_process_1_of_2_does_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                     capsys: pytest.CaptureFixture) -> None:
    launched(monkeypatch, 1, 2)
    out = tmp_path / "store"
    assert main(["prepare", "text", "--input", str(small_corpus(tmp_path)), "--out", str(out)]) == 0
    assert not out.exists()
    assert "process 1 of 2: `vlkd prepare text` runs on process 0 only" in capsys.readouterr().err


def test_process_0_of_2_runs_the_command_as_one_process(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    launched(monkeypatch, 0, 2)
    out = tmp_path / "store"
    assert main(["prepare", "text", "--input", str(small_corpus(tmp_path)), "--out", str(out)]) == 0
    assert (out / "meta.json").is_file()
    assert launch_rank() == (0, 2)
