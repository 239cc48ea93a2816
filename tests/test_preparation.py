"""The preparation skeleton (vlkd.preparation): the output rule, atomic write-once outputs, shards, and a
resumable output's claim, progress records and stop signals. The commands' own tests check their bytes."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from tests.test_shards import tree_bytes
from vlkd.errors import Preempted, VlkdError
from vlkd.lock import LOCK_FILE
from vlkd.preparation import Resumable, WriteOnce
from vlkd.shards import SHARD_FILE, Shard, shard_dir


def write_two(tmp: Path) -> dict:
    (tmp / "a.txt").write_text("a")
    (tmp / "b.txt").write_text("b")
    return {"files": 2}


def test_write_once_renames_a_complete_output_and_leaves_nothing_on_failure(tmp_path: Path) -> None:
    out = tmp_path / "out"

    def fail(tmp: Path) -> None:
        (tmp / "a.txt").write_text("a")
        raise VlkdError("bad input")

    with pytest.raises(VlkdError, match="bad input"):
        WriteOnce("prepare x", out).write(fail)
    assert list(tmp_path.iterdir()) == []
    assert WriteOnce("prepare x", out).write(write_two) == {"files": 2}
    assert tree_bytes(out) == {"a.txt": b"a", "b.txt": b"b"}
    with pytest.raises(VlkdError) as refused:  # refused when made, before any work
        WriteOnce("prepare x", out)
    assert (refused.value.path, refused.value.problem) == (
        str(out), "output already exists and is not an empty directory; pass --overwrite to replace it")
    WriteOnce("prepare x", out, overwrite=True).write(lambda tmp: (tmp / "c.txt").write_text("c"))
    assert tree_bytes(out) == {"c.txt": b"c"}


def test_a_write_once_shard_builds_into_its_directory_once(tmp_path: Path) -> None:
    out, shard = tmp_path / "out", Shard(1, 2)
    output = WriteOnce("prepare x", out, shard=shard, identity={"input": 1})
    assert output.finished is None and not out.exists()
    assert output.write(write_two) == {"files": 2}
    assert tree_bytes(shard_dir(out, shard) / "data") == {"a.txt": b"a", "b.txt": b"b"}
    record = json.loads((shard_dir(out, shard) / SHARD_FILE).read_text())
    assert (record["complete"], record["result"]) == (True, {"files": 2})
    again = WriteOnce("prepare x", out, shard=shard, identity={"input": 1})
    assert again.write(lambda tmp: pytest.fail("a complete shard is built again")) == {"files": 2}
    with pytest.raises(VlkdError, match="output already exists .*other inputs"):
        WriteOnce("prepare x", out, shard=shard, identity={"input": 2})


def claim(run: Resumable, plan: dict) -> tuple[str, object] | None:
    return run.claim(("done.json", "progress.json"), lambda record: record.get("plan") == plan, " (other plan)",
                     " and is not ours")


def test_claim_continues_its_own_output_and_refuses_or_replaces_the_rest(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with Resumable("prepare x", out) as run:
        assert claim(run, {"p": 1}) is None  # nothing there
        (out / "progress.json").write_text(json.dumps({"plan": {"p": 1}, "done": 3}))
    with Resumable("prepare x", out) as run:
        assert claim(run, {"p": 1}) == ("progress.json", {"plan": {"p": 1}, "done": 3})
        (out / "done.json").write_text(json.dumps({"plan": {"p": 1}}))
        assert claim(run, {"p": 1}) == ("done.json", {"plan": {"p": 1}})  # the finished record first
        with pytest.raises(VlkdError, match=r"output already exists \(other plan\); pass --overwrite"):
            claim(run, {"p": 2})
    with Resumable("prepare x", out, overwrite=True) as run:
        assert claim(run, {"p": 1}) is None
        assert [p.name for p in out.iterdir()] == [LOCK_FILE]
        (out / "stray.txt").write_text("x")
    with Resumable("prepare x", out) as run, pytest.raises(VlkdError, match="exists and is not ours"):
        claim(run, {"p": 1})


def test_each_saves_progress_and_a_stop_signal_finishes_the_item_in_hand(tmp_path: Path) -> None:
    out, saved, seen = tmp_path / "out", [], []
    with Resumable("prepare x", out) as run:
        with pytest.raises(Preempted) as stopped:
            for item in run.each(range(0, 10, 2), total=10, done=0, unit="block", size=lambda _: 2,
                                 save=saved.append, every=2, progress=False):
                seen.append(item)
                if item == 4:
                    os.kill(os.getpid(), signal.SIGTERM)
    assert seen == [0, 2, 4] and saved == [4, 6]  # every 2 items, then at the stop
    assert str(stopped.value) == (f"SIGTERM: stopped with 6 of 10 blocks done in {out}; run the same command "
                                  "again to continue")
    with Resumable("prepare x", out) as run:
        assert list(run.each(range(6, 10, 2), total=10, done=6, unit="block", size=lambda _: 2,
                             save=saved.append, every=2, progress=False)) == [6, 8]
    assert saved == [4, 6, 10]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored


def test_a_resumable_shard_is_locked_in_its_own_directory(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run = Resumable("prepare x", out, shard=Shard(0, 2), identity={"input": 1})
    with run:
        assert run.dir == shard_dir(out, Shard(0, 2)) and (run.dir / LOCK_FILE).is_file()
        assert run.claim(("progress.json",), lambda record: False, " (other)") is None  # checked when claimed
        run.complete({"rows": 3})
    assert Resumable("prepare x", out, shard=Shard(0, 2), identity={"input": 1}).finished == {"rows": 3}
