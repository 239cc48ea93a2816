"""`text_lines`, the shared line reader of the JSONL/TXT task files (PIQA, TRACIE)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vlkd.data.tasks.choice import read_piqa
from vlkd.data.tasks.tracie import read_tracie
from vlkd.data.tasks.tsv import text_lines
from vlkd.errors import VlkdError


def test_numbers_non_blank_lines_from_one(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    path.write_text("a\n\n  \nb\n")
    assert list(text_lines(path)) == [(1, "a\n"), (4, "b\n")]
    with pytest.raises(VlkdError, match="file not found"):
        list(text_lines(tmp_path / "missing.txt"))


def test_piqa_and_tracie_files_that_are_not_utf8_are_one_line_errors(tmp_path: Path) -> None:
    (tmp_path / "valid.jsonl").write_bytes(b'{"goal": "\xff"}\n')
    (tmp_path / "tracie_test.txt").write_bytes(b"event: \xfe story: x\tanswer: positive\n")
    for read, split, name in ((read_piqa, "dev", "valid.jsonl"), (read_tracie, "test", "tracie_test.txt")):
        with pytest.raises(VlkdError, match="not UTF-8") as info:
            read(tmp_path, split)
        assert name in str(info.value) and "\n" not in str(info.value)
