"""The one policy for an existing output (vlkd.outputs), checked on every preparation command: a second run
onto an output is refused with the same one line and exit code 2, writing nothing; `--overwrite` replaces it.
A resumable command (extract-features, prepare teacher-targets) continues its own output of the same
settings, so its second run changes one setting."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Callable

import pytest

from tests.data.teacher.test_howto100m import make_fixture
from tests.data.teacher.test_targets import store, teacher_run  # noqa: F401 (fixtures)
from tests.cli.test_commands import commands
from tests.data.videoqa.test_prepare import FIXTURE as QA_FIXTURE
from vlkd.cli import build_parser, main
from vlkd.data.world.generate import build_world

REFUSED = re.compile(r"vlkd: error: (\S+): output already exists[^\n]*; pass --overwrite to replace it\n")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("world") / "world"
    build_world(out, 2, seed=3, workers=1, progress=False)
    return out


# name -> (setup commands, first run, second run); OUT stands for the output path
Runs = tuple[list[list[str]], list[str], list[str]]


def text(paths: dict) -> Runs:
    run = ["prepare", "text", "--input", str(paths["wiki"]), "--block-size", "30", "--out", "OUT"]
    return [], run, run


def world_runs(paths: dict) -> Runs:
    run = ["prepare", "world", "--videos", "1", "--workers", "1", "--out", "OUT"]
    return [], run, run


def bundled(paths: dict) -> Runs:
    run = ["prepare", "bundled", "--out", "OUT"]
    return [], run, run


def howto100m(paths: dict) -> Runs:
    captions, feats = make_fixture(paths["tmp"])
    run = ["prepare", "howto100m", "--captions", str(captions), "--features", str(feats), "--out", "OUT"]
    return [], run, run


def videoqa(paths: dict) -> Runs:
    run = ["prepare", "videoqa", "--dataset", "msvd-qa", "--qa-dir", str(QA_FIXTURE), "--mapping",
           str(QA_FIXTURE / "youtube_mapping.txt"), "--glove", str(QA_FIXTURE / "glove.txt"), "--out", "OUT"]
    return [], run, run


def extract(paths: dict) -> Runs:
    run = ["extract-features", "--videos", str(paths["world"] / "videos"), "--layout", "howto100m",
           "--device", "cpu", "--out", "OUT"]
    return [], run, [*run, "--appearance-size", "64"]


def teacher_targets(paths: dict) -> Runs:
    run = ["prepare", "teacher-targets", "--teacher", str(paths["teacher"]), "--store", str(paths["store"]),
           "--batch-size", "64", "--out", "OUT"]
    return [], run, [*run, "--form", "nst-gram"]


def merge(paths: dict) -> Runs:
    shard = ["prepare", "text", "--input", str(paths["wiki"]), "--block-size", "30", "--shard", "0/1", "--out", "OUT"]
    run = ["merge-shards", "OUT", "--keep-shards"]
    return [shard], run, run


COMMANDS: dict[str, Callable[[dict], Runs]] = {
    "prepare text": text, "prepare world": world_runs, "prepare bundled": bundled, "prepare howto100m": howto100m,
    "prepare videoqa": videoqa, "extract-features": extract, "prepare teacher-targets": teacher_targets,
    "merge-shards": merge}


def files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name", list(COMMANDS))
def test_an_existing_output_is_one_line_and_overwrite_replaces_it(
        name: str, world: Path, wiki_txt: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
        request: pytest.FixtureRequest) -> None:
    paths = {"wiki": wiki_txt, "world": world, "tmp": tmp_path}
    if name == "prepare teacher-targets":
        paths["teacher"] = request.getfixturevalue("teacher_run")
        paths["store"] = request.getfixturevalue("store").path
    out = tmp_path / "out"
    setup, first, again = COMMANDS[name](paths)

    def run(argv: list[str], *extra: str) -> int:
        return main([str(out) if a == "OUT" else a for a in argv] + list(extra))

    for argv in setup:
        assert run(argv) == 0
    assert run(first) == 0, capsys.readouterr().err
    before = files(out)
    capsys.readouterr()
    assert run(again) == 2
    err = capsys.readouterr().err
    refused = REFUSED.fullmatch(err)
    assert refused and refused.group(1).startswith(str(out)), err
    assert files(out) == before
    assert run(again, "--overwrite") == 0, capsys.readouterr().err
    if again != first:  # a resumable command: the other setting's output replaced the first
        assert files(out) != before


def test_every_preparation_command_is_covered_and_offers_overwrite() -> None:
    parser = build_parser()
    preparations = [c for c in commands(parser) if c[0] in ("extract-features", "merge-shards")
                    or (c[0] == "prepare" and len(c) > 1)]
    assert sorted(" ".join(c) for c in preparations) == sorted(COMMANDS)
    for command in preparations:
        sub = parser
        for name in command:
            sub = next(a for a in sub._actions if isinstance(a, argparse._SubParsersAction)).choices[name]
        assert "--overwrite" in sub._option_string_actions, command
