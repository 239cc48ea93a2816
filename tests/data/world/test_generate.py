"""The synthetic video world: formats, determinism, and that the videos show what the language says."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vlkd.cli import main
from vlkd.data.world.generate import DIRECTIONS, DURATION, FPS, SIZE, build_world, render_scene, sample_scene
from vlkd.data.world.render import COLORS
from vlkd.video.decode import probe


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("world") / "w"
    assert main(["prepare", "world", "--out", str(out), "--videos", "6", "--seed", "3", "--workers", "1"]) == 0
    return out


def test_files_and_formats(world: Path) -> None:
    assert sorted(p.name for p in (world / "videos").iterdir()) == [f"video{i}.mp4" for i in range(6)]
    captions = json.loads((world / "caption.json").read_text())
    assert sorted(captions) == sorted(f"video{i}" for i in range(6))
    for entry in captions.values():
        assert len(entry["start"]) == len(entry["end"]) == len(entry["text"]) == 3
        assert all(0 <= s < e <= DURATION for s, e in zip(entry["start"], entry["end"]))
        assert all(t == t.lower() and "?" not in t and t for t in entry["text"])
    meta = json.loads((world / "world.json").read_text())
    seen: set[int] = set()
    ids: list[int] = []
    for split in ("train", "val", "test"):
        records = json.loads((world / f"{split}_qa.json").read_text())
        videos = {r["video_id"] for r in records}
        assert videos == set(meta["splits"][split]) and not (videos & seen)
        seen |= videos
        for r in records:
            assert set(r) == {"video_id", "question", "answer", "id"} and r["question"].endswith("?")
            assert len(r["answer"].split()) == 1
            assert r["question"].split()[0] in ("what", "which", "how", "where")
            ids.append(r["id"])
    assert seen == set(range(6)) and sorted(ids) == list(range(meta["num_questions"]))
    kinds = meta["question_kinds"]
    assert {k["needs"] for k in kinds.values()} == {"motion", "appearance"}
    assert "Grammar" in (world / "README.md").read_text()


def test_videos_decode(world: Path) -> None:
    info = probe(world / "videos" / "video0.mp4")
    assert (info.num_frames, info.fps, info.width, info.height) == (int(DURATION * FPS), FPS, SIZE, SIZE)


def test_same_seed_same_world(world: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    build_world(again, 6, seed=3, workers=2, progress=False)
    for name in ("caption.json", "corpus.txt", "visual_knowledge/kinds.jsonl", "train_qa.json", "val_qa.json",
                 "test_qa.json", "world.json", "README.md"):
        assert (again / name).read_bytes() == (world / name).read_bytes(), name
    for i in range(6):
        assert (again / "videos" / f"video{i}.mp4").read_bytes() == (world / "videos" / f"video{i}.mp4").read_bytes()
    other = sample_scene(4, 0)
    assert json.dumps(other.questions) != json.dumps(sample_scene(3, 0).questions) or other.objects != sample_scene(3, 0).objects


def test_workers_are_spawned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its callers have threads (a quickstart worker's watcher, torch's pools): a forked child can inherit a
    lock another thread held and wait forever, which hung the quickstart twice."""
    import vlkd.data.world.generate as generate

    methods: list[str | None] = []
    real = generate.get_context

    def recording(method: str | None = None):
        methods.append(method)
        return real(method)

    monkeypatch.setattr(generate, "get_context", recording)
    build_world(tmp_path / "w", 2, seed=3, workers=2, progress=False, events=True)
    assert methods == ["spawn"]
    assert sorted(p.name for p in (tmp_path / "w" / "videos").iterdir()) == ["video0.mp4", "video1.mp4"]


def _centroid(image: np.ndarray, color: str) -> np.ndarray:
    mask = np.abs(image.astype(int) - np.array(COLORS[color])).sum(-1) < 60
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean(), mask.sum()])


def test_the_video_shows_the_action() -> None:
    """Find scenes with each action and check the actor's pixels move/grow as the ground truth says."""
    found: dict[str, int] = {}
    vid = 0
    while len(found) < 6 and vid < 200:
        scene = sample_scene(11, vid)
        if [o.color for o in scene.objects].count(scene.actor.color) == 1:  # its pixels alone have its colour
            found.setdefault(scene.actor.action, vid)
        vid += 1
    for action, vid in found.items():
        scene = sample_scene(11, vid)
        frames = render_scene(scene)
        first, last = _centroid(frames[0], scene.actor.color), _centroid(frames[-1], scene.actor.color)
        if action in DIRECTIONS:
            moved = (last - first)[:2]
            assert np.dot(moved, DIRECTIONS[action]) > 10, (action, moved)
        elif action == "grow":
            assert last[2] > 1.5 * first[2]
        elif action == "shrink":
            assert last[2] < 0.6 * first[2]


def test_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("x")
    assert main(["prepare", "world", "--out", str(busy), "--videos", "2"]) == 2
    assert "busy" in capsys.readouterr().err and (busy / "keep.txt").exists()
    assert main(["prepare", "world", "--out", str(tmp_path / "w"), "--videos", "0"]) == 2
    assert not (tmp_path / "w").exists()
