"""The shared shard scheme: K/N parsing, contiguous spans, and the merge's checks (vlkd.shards)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from vlkd.errors import VlkdError
from vlkd.shards import Shard, begin_shard, collect_shards, finish_shard, parse_shard, shard_dir


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file under `root` (relative path -> bytes): what "byte-identical output" compares."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_parse_shard_accepts_k_of_n_and_refuses_the_rest() -> None:
    assert parse_shard("2/3") == Shard(2, 3) and parse_shard(None) is None
    for bad in ("3/3", "-1/3", "1/0", "1", "a/b", "1/2/3"):
        with pytest.raises(VlkdError, match="--shard must be K/N"):
            parse_shard(bad)


@pytest.mark.parametrize("n", [0, 1, 5, 10, 11, 100])
@pytest.mark.parametrize("count", [1, 2, 3, 7])
@pytest.mark.parametrize("align", [1, 4])
def test_spans_cover_every_item_once_in_order_on_whole_groups(n: int, count: int, align: int) -> None:
    spans = [Shard(k, count).span(n, align) for k in range(count)]
    assert spans[0][0] == 0 and spans[-1][1] == n
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    assert all(lo % align == 0 and lo <= hi for lo, hi in spans)


def test_merge_checks_name_the_missing_incomplete_or_foreign_shard(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(VlkdError, match="no shards of"):
        collect_shards(out)
    for k in (0, 2):
        path, done = begin_shard(out, Shard(k, 3), "prepare text", {"x": 1})
        assert done is None
        finish_shard(path, {"k": k})
    with pytest.raises(VlkdError, match=r"shard 1/3 is missing \(run the command with --shard 1/3\)"):
        collect_shards(out)
    begin_shard(out, Shard(1, 3), "prepare text", {"x": 1})
    with pytest.raises(VlkdError, match="shard 1/3 is incomplete"):
        collect_shards(out)
    assert begin_shard(out, Shard(0, 3), "prepare text", {"x": 1})[1] == {"k": 0}  # done: its result
    with pytest.raises(VlkdError, match="another command or other inputs"):
        begin_shard(out, Shard(1, 3), "prepare text", {"x": 2})
    finish_shard(shard_dir(out, Shard(1, 3)), {"k": 1})
    shards = collect_shards(out)
    assert (shards.command, shards.count, [r["k"] for r in shards.results]) == ("prepare text", 3, [0, 1, 2])
    (shard_dir(out, Shard(1, 3)) / "shard.json").write_text(
        (shard_dir(out, Shard(1, 3)) / "shard.json").read_text().replace('"identity": "', '"identity": "0'))
    with pytest.raises(VlkdError, match="shard 1/3 was made by another command or from other inputs"):
        collect_shards(out)
    begin_shard(out, Shard(0, 2), "prepare text", {"x": 1})
    with pytest.raises(VlkdError, match="shards of different splits"):
        collect_shards(out)
