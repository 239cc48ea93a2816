"""A re-run of `vlkd quickstart` checks every store it reuses before its first stage: a damaged one is a
one-line error before anything is generated or trained."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from vlkd.errors import VlkdError
from vlkd.quickstart import run_quickstart
from vlkd.quickstart.reuse import check_reused_stores


def test_a_truncated_token_store_is_found_before_the_first_stage(token_store: Path, tmp_path: Path) -> None:
    shutil.copytree(token_store, tmp_path / "text-tokens")
    assert check_reused_stores(tmp_path, ["vidlankd"]) == [tmp_path / "text-tokens"]
    blocks = tmp_path / "text-tokens" / "blocks.bin"
    blocks.write_bytes(blocks.read_bytes()[:-10])
    with pytest.raises(VlkdError, match="corrupt") as error:
        run_quickstart(tmp_path, only="vidlankd", world_videos=12)
    assert "blocks" in str(error.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["text-tokens"]  # no world, no teacher


def test_a_damaged_videoqa_split_is_found_before_the_first_stage(tmp_path: Path) -> None:
    data = tmp_path / "world-videoqa-data"
    data.mkdir()
    (data / "meta.json").write_text("{}")
    (data / "train.jsonl").write_text('{"id": 1, "question"\n')
    with pytest.raises(VlkdError, match="malformed JSON"):
        run_quickstart(tmp_path, only="videoqa", world_videos=12)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["world-videoqa-data"]
