"""`vlkd prepare text --shard K/N` + `vlkd merge-shards`: the same bytes as one run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import wiki_extracts
from tests.test_shards import tree_bytes
from vlkd.cli import main
from vlkd.data.text.store import TokenStore, build_token_store


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three formats in one corpus: plain text, WikiText-103 raw (headings, short lines, no final newline),
    a wiki-json file, and a WikiText .tokens excerpt with `<unk>`."""
    root = tmp_path_factory.mktemp("text")
    texts = wiki_extracts(40)
    (root / "a.txt").write_text("\n".join(texts[:15]) + "\n", encoding="utf-8")
    wikitext = [" = Title = ", ""] + [f" {t} " for t in texts[15:25]] + [" too short ", " = = Part = = "]
    (root / "b.raw").write_text("\n".join(wikitext), encoding="utf-8")
    (root / "c.json").write_text(json.dumps({f"t{i}": {"extract": t} for i, t in enumerate(texts[25:])}),
                                 encoding="utf-8")
    shutil.copy(Path(__file__).parents[2] / "fixtures" / "text" / "wiki.excerpt.tokens", root / "d.tokens")
    return [root / "a.txt", root / "b.raw", root / "c.json", root / "d.tokens"]


@pytest.fixture(scope="module")
def whole(inputs: list[Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("whole") / "store"
    build_token_store(inputs, "bundled:minilm", out, block_size=30, progress=False)
    return tree_bytes(out)


@pytest.mark.parametrize("count", [2, 3])
def test_shards_then_merge_give_the_bytes_of_one_run(inputs: list[Path], whole: dict[str, bytes], tmp_path: Path,
                                                     count: int, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "store"
    args = ["prepare", "text", "--input", *map(str, inputs), "--out", str(out), "--block-size", "30"]
    for k in reversed(range(count)):  # any order
        assert main([*args, "--shard", f"{k}/{count}"]) == 0
    assert "merge-shards" in capsys.readouterr().out
    assert main(["merge-shards", str(out)]) == 0
    assert tree_bytes(out) == whole
    assert not (tmp_path / "store.shards").exists()
    meta = TokenStore(out).meta
    assert [s["lines_kept"] for s in meta["sources"]][:3] == [15, 10, 15]
    assert meta["sources"][3]["unk_replaced"] == inputs[3].read_text(encoding="utf-8").count("<unk>") > 0


def test_a_missing_shard_is_one_line_at_merge(inputs: list[Path], tmp_path: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "store"
    args = ["prepare", "text", "--input", *map(str, inputs), "--out", str(out), "--block-size", "30"]
    for k in (0, 2):
        assert main([*args, "--shard", f"{k}/3"]) == 0
    capsys.readouterr()
    assert main(["merge-shards", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "shard 1/3 is missing" in err
    assert not out.exists()
    assert main([*args, "--shard", "1/3", "--block-size", "31"]) == 0  # other settings: refused at merge
    assert main(["merge-shards", str(out)]) == 2
    assert "shard 1/3 was made by another command or from other inputs" in capsys.readouterr().err
    shutil.rmtree(tmp_path / "store.shards" / "1-of-3")
    assert main([*args, "--shard", "1/3"]) == 0
    assert main(["merge-shards", str(out)]) == 0 and TokenStore(out).num_blocks > 0
