from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from vlkd.cli import build_parser, main
from vlkd.report import summarize_run


def commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[list[str]]:
    """Every command and command group the parser holds, walked from its subparsers (so none is forgotten)."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += [[*prefix, name], *commands(child, (*prefix, name))]
    return found


COMMANDS = commands(build_parser())


def test_every_command_is_walked() -> None:
    for command in (["prepare", "teacher-targets"], ["merge-shards"], ["evaluate", "diagnostic"], ["evaluate", "visual-knowledge"], ["ls"]):
        assert command in COMMANDS


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_explains_itself(command: list[str], capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: vlkd" in capsys.readouterr().out


def test_prepare_text_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "store"
    assert main(["prepare", "text", "--input", str(tmp_path / "missing.txt"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "missing.txt" in err and not out.exists()
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    assert main(["prepare", "text", "--input", str(empty), "--out", str(out)]) == 2
    assert "empty.txt" in capsys.readouterr().err and not out.exists()
    text = tmp_path / "t.txt"
    text.write_text("some words here\n" * 100)
    assert main(["prepare", "text", "--input", str(text), "--tokenizer", str(tmp_path / "no-tok"),
                 "--out", str(out)]) == 2
    assert "no-tok" in capsys.readouterr().err and not out.exists()


def test_report_writes_markdown_and_png(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    records = [{"step": 0, "valid_mlm": 10.0, "valid_perplexity": 22026.0},
               {"step": 10, "loss": 9.0, "mlm": 9.0, "tokens_per_s": 100.0},
               {"step": 20, "loss": 7.5, "mlm": 7.5, "tokens_per_s": 110.0},
               {"step": 20, "valid_mlm": 7.0, "valid_perplexity": 1096.6}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    text = summarize_run(run)
    assert "| last log | 20 | 7.5000 |" in text and "| 20 | 7.0000 | 1096.6000 |" in text
    assert (run / "report.md").read_text() == text
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["report", str(tmp_path / "nothing")]) == 2


def test_help_choices_come_from_the_registries(capsys: pytest.CaptureFixture) -> None:
    from vlkd.data.tasks.registry import TASK_NAMES
    from vlkd.video.backbones import SPECS

    with pytest.raises(SystemExit):
        build_parser().parse_args(["extract-features", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for name in SPECS:
        assert name in help_text
    args = build_parser().parse_args(["finetune", "--task", "wiki-topic", "--data-dir", "d", "--model", "m",
                                      "--out", "o"])
    assert args.task == "wiki-topic" and "wiki-topic" in TASK_NAMES
    with pytest.raises(SystemExit):
        build_parser().parse_args(["finetune", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert all(name in help_text for name in TASK_NAMES if "-" not in name)  # argparse may wrap at a hyphen
    # an unknown name is the library's one-line error, not argparse's usage message
    assert main(["finetune", "--task", "glue", "--data-dir", "d", "--model", "m", "--out", "o"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vlkd: error: config (vlkd finetune): unknown task 'glue'") and err.count("\n") == 1
