"""HowTo100M preparation on a hand-made fixture in the real formats."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.test_shards import tree_bytes
from vlkd.cli import main
from vlkd.data.teacher.howto100m import TeacherSamples, caption_windows, prepare_howto100m, read_captions, window_steps
from vlkd.errors import VlkdError

CAPTIONS = {
    # 3 segments; overlapping times (2-6 and 5-8) and an empty one; budget 4 words -> 2 samples
    "vidA": {"start": [0.0, 2.0, 5.0, 9.0], "end": [3.0, 6.0, 8.0, 9.5],
             "text": ["cut the onion", "", "then fry it slowly in oil", "done"]},
    # 3D much shorter than 1.5 x 2D: a length mismatch, still used
    "vidB": {"start": [1.0], "end": [4.0], "text": ["whisk two eggs"]},
    # no feature files at all
    "vidC": {"start": [0.0], "end": [2.0], "text": ["no features here"]},
    # empty 2D feature file
    "vidD": {"start": [0.0], "end": [2.0], "text": ["empty features"]},
    # only empty text
    "vidE": {"start": [0.0], "end": [1.0], "text": ["   "]},
}


def make_fixture(root: Path) -> tuple[Path, Path]:
    feats = root / "features"
    (feats / "2d").mkdir(parents=True)
    (feats / "3d").mkdir()
    for vid, t2, t3 in (("vidA", 10, 15), ("vidB", 6, 3), ("vidE", 2, 3)):
        np.save(feats / "2d" / f"{vid}.npy", (np.arange(t2)[:, None] + np.zeros((1, 4))).astype(np.float32))
        np.save(feats / "3d" / f"{vid}.npy", (100 + np.arange(t3)[:, None] + np.zeros((1, 3))).astype(np.float32))
    np.save(feats / "2d" / "vidD.npy", np.zeros((0, 4), np.float32))
    np.save(feats / "3d" / "vidD.npy", np.zeros((3, 3), np.float32))
    captions = root / "caption.json"
    captions.write_text(json.dumps(CAPTIONS))
    return captions, feats


def test_windows_join_segments_to_the_word_budget(tmp_path: Path) -> None:
    captions, _ = make_fixture(tmp_path)
    segments = read_captions(captions)["vidA"]
    windows = list(caption_windows(segments, word_budget=4))
    # "cut the onion" (3 words) + "then fry ..." reaches 4: window 0.0 -> 8.0, text cut to 4 words
    assert windows == [(0.0, 8.0, "cut the onion then"), (9.0, 9.5, "done")]


def test_window_steps_concatenate_2d_and_resampled_3d() -> None:
    f2 = np.arange(10)[:, None].astype(np.float32)  # 1/s: index = second
    f3 = 100 + np.arange(15)[:, None].astype(np.float32)  # 1.5/s
    steps = window_steps(f2, f3, 2.0, 6.0, max_steps=384)
    assert steps[:, 0].tolist() == [2, 3, 4, 5]  # seconds 2..5
    assert steps[:, 1].tolist() == [103, 105, 106, 108]  # 3D indices 3..8 resampled onto 4 steps
    long = window_steps(f2, f3, 0.0, 10.0, max_steps=4)
    assert long[:, 0].tolist() == [0, 3, 6, 9]  # subsampled uniformly


def test_prepare_counts_samples_and_skips(tmp_path: Path) -> None:
    captions, feats = make_fixture(tmp_path)
    meta = prepare_howto100m(captions, feats, tmp_path / "out", word_budget=4, max_tokens=6, valid_fraction=0.0,
                             progress=False)
    assert meta["videos_total"] == 5 and meta["videos_kept"] == 2
    assert meta["videos_skipped"] == {"empty feature file": 1, "missing feature file": 1, "no caption text": 1}
    assert meta["videos_length_mismatch"] == 1 and meta["feature_dim"] == 7
    train = TeacherSamples(tmp_path / "out", "train")
    assert len(train) == 3 and train.videos == ["vidA", "vidB"]
    first = train[0]
    assert first["steps"].shape == (8, 7) and first["steps"][:, 0].tolist() == list(range(8))
    assert len(first["tokens"]) <= 6 and train[2]["video"] == 1
    vid_b = train[2]["steps"]
    assert vid_b[:, 0].tolist() == [1, 2, 3] and vid_b[:, 4].tolist() == [101, 102, 102]  # 3D clipped at its end
    assert len(TeacherSamples(tmp_path / "out", "valid")) == 0


@pytest.mark.parametrize(
    "content, message",
    [
        ("[1, 2]", "must be a JSON object"),
        ('{"v": {"start": [0], "end": [1, 2], "text": ["a"]}}', "lengths differ"),
        ('{"v": {"start": [3], "end": [1], "text": ["a"]}}', "before start"),
        ('{"v": {"start": [0]', "malformed JSON"),
    ],
)
def test_bad_captions_are_clear_errors(tmp_path: Path, content: str, message: str) -> None:
    _, feats = make_fixture(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    with pytest.raises(VlkdError, match=message) as info:
        prepare_howto100m(bad, feats, tmp_path / "out", progress=False)
    assert "bad.json" in str(info.value) and not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def sharding_inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, bytes]]:
    """The fixture plus 8 ordinary videos, and the bytes of one unsharded run over them (both splits used)."""
    root = tmp_path_factory.mktemp("shard")
    captions, feats = make_fixture(root)
    caps = json.loads(captions.read_text())
    rng = np.random.default_rng(0)
    for v in range(8):
        caps[f"v{v}"] = {"start": [0.0, 3.0], "end": [3.0, 5.0], "text": [f"stir the pot {v} times", "and serve"]}
        np.save(feats / "2d" / f"v{v}.npy", rng.normal(size=(6, 4)).astype(np.float32))
        np.save(feats / "3d" / f"v{v}.npy", rng.normal(size=(9, 3)).astype(np.float32))
    captions.write_text(json.dumps(caps))
    prepare_howto100m(captions, feats, root / "whole", word_budget=4, valid_fraction=0.3, progress=False)
    meta = json.loads((root / "whole" / "meta.json").read_text())
    assert all(s["samples"] for s in meta["splits"].values())
    return captions, feats, tree_bytes(root / "whole")


@pytest.mark.parametrize("count", [2, 3])
def test_shards_then_merge_give_the_bytes_of_one_run(sharding_inputs: tuple[Path, Path, dict[str, bytes]],
                                                     tmp_path: Path, count: int,
                                                     capsys: pytest.CaptureFixture) -> None:
    captions, feats, whole = sharding_inputs
    out = tmp_path / "data"
    args = ["prepare", "howto100m", "--captions", str(captions), "--features", str(feats), "--out", str(out),
            "--word-budget", "4", "--valid-fraction", "0.3"]
    for k in range(count):
        if k == 1:  # a missing shard: one line at merge, nothing written
            capsys.readouterr()
            assert main(["merge-shards", str(out)]) == 2
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and f"shard 1/{count} is missing" in err and not out.exists()
        assert main([*args, "--shard", f"{k}/{count}"]) == 0
    assert main(["merge-shards", str(out)]) == 0
    assert tree_bytes(out) == whole
    assert TeacherSamples(out, "valid")[0]["tokens"].size > 0
