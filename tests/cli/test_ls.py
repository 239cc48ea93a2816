from __future__ import annotations

import pytest

from vlkd.cli import build_parser, main


def test_ls_lists_every_registry(capsys: pytest.CaptureFixture) -> None:
    from vlkd.config import list_presets
    from vlkd.data.tasks.registry import TASK_NAMES
    from vlkd.losses import LOSSES
    from vlkd.recipes import RECIPES
    from vlkd.video.backbones import SPECS

    assert main(["ls"]) == 0
    out = capsys.readouterr().out
    for section in ("recipes:", "presets:", "losses:", "tasks:", "backbones:"):
        assert section in out.splitlines()
    assert main(["ls", "losses"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(LOSSES)
    for name, entry in LOSSES.items():
        (line,) = [line for line in lines if line.split()[0] == name]
        assert line.split()[1] == entry.kind and entry.summary[:20] in line
    expected = {"recipes": set(RECIPES), "presets": set(list_presets()), "tasks": set(TASK_NAMES),
                "backbones": set(SPECS)}
    for what, names in expected.items():
        assert main(["ls", what]) == 0
        assert names <= {line.split()[0] for line in capsys.readouterr().out.splitlines()}, what
    with pytest.raises(SystemExit):
        build_parser().parse_args(["ls", "nothing"])
