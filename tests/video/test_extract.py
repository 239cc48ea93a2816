"""`vlkd extract-features`: both layouts, bad videos in the batch, bad weights, resume after a kill."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import torchvision

from tests.test_shards import tree_bytes
from tests.video.noise import write_noise_video
from tests.video.test_decode import write_video
from vlkd.cli import main
from vlkd.data.world.generate import build_world
from vlkd.errors import Preempted, VlkdError
from vlkd.lock import DirLock
from vlkd.video.backbones import SPECS, load_backbone
from vlkd.video.extract import Plan, Writer, extract_features

SMALL = ["--appearance-size", "32", "--motion-size", "32", "--workers", "1", "--device", "cpu"]


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-video world plus bad files: truncated mp4s (index at the end / at the front), a zero-frame mp4,
    text named .mp4."""
    root = tmp_path_factory.mktemp("extract")
    build_world(root / "world", 4, seed=5, workers=1, progress=False)
    folder = root / "world" / "videos"
    good = (folder / "video0.mp4").read_bytes()
    (folder / "truncated.mp4").write_bytes(good[: len(good) // 2])
    write_video(folder / "empty.mp4", 0)
    (folder / "notes.mp4").write_text("not a video at all\n")
    fast = root / "fast.mp4"  # index at the front: a cut file still opens, and decodes short
    write_noise_video(fast, 32, 32, 48, {"movflags": "faststart"})
    (folder / "cut.mp4").write_bytes(fast.read_bytes()[: fast.stat().st_size // 2])
    return folder


def test_howto100m_layout_and_failed_list(videos: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "h"
    assert main(["extract-features", "--videos", str(videos), "--layout", "howto100m", "--out", str(out), *SMALL]) == 0
    assert "4 failed" in capsys.readouterr().out
    for i in range(4):  # 4 s at 1/s; 96 frames at 24 fps -> 6 clips of 16
        assert np.load(out / "2d" / f"video{i}.npy").shape == (4, 1280)
        assert np.load(out / "3d" / f"video{i}.npy").shape == (6, 150)
    failed = dict(line.split("\t") for line in (out / "failed.txt").read_text().splitlines())
    assert {Path(p).name for p in failed} == {"truncated.mp4", "empty.mp4", "notes.mp4", "cut.mp4"}
    assert failed[str(videos / "cut.mp4")].startswith("truncated: decoded")
    assert all(reason.strip() for reason in failed.values())
    meta = json.loads((out / "meta.json").read_text())
    assert meta["appearance"]["normalisation"]["std"] == [0.229, 0.224, 0.225]
    assert meta["appearance"]["weights"].endswith("mobilenet_v2-b0353104.pth")
    assert sorted(p.name for p in out.rglob("*") if p.name.startswith(".")) == []  # no temp files left


def test_hcrn_layout(videos: Path, tmp_path: Path) -> None:
    listing = tmp_path / "list.txt"
    listing.write_text("".join(f"{videos}/video{i}.mp4\n" for i in (2, 0, 3)) + f"{videos}/notes.mp4\n")
    out = tmp_path / "c"
    counts = extract_features(listing, out, layout="hcrn", num_clips=3, appearance_size=32, motion_size=32,
                              workers=0, device="cpu", progress=False)
    assert counts == {"videos": 4, "extracted": 3, "skipped": 0, "failed": 1}
    with h5py.File(out / "appearance_feat.h5") as f:
        assert f["resnet_features"].shape == (3, 3, 16, 1280) and list(f["ids"][()]) == [2, 0, 3]
        app = f["resnet_features"][()]
    with h5py.File(out / "motion_feat.h5") as f:
        assert f["resnext_features"].shape == (3, 3, 150) and list(f["ids"][()]) == [2, 0, 3]
    assert not (out / ".parts").exists()
    # the features are the backbone's on the centred clips
    model = load_backbone("mobilenet_v2")
    from vlkd.video.decode import FrameSize, iter_frames
    from vlkd.video.sampling import clip_indices
    frames = np.stack([f.image for f in iter_frames(videos / "video2.mp4", FrameSize(32, "stretch"))])
    idx = clip_indices(len(frames), 3)
    with torch.inference_mode():
        expected = model(torch.from_numpy(frames[idx[1]])).numpy()
    assert np.allclose(app[0, 1], expected, atol=1e-4)
    # a re-run with nothing left to do changes nothing
    before = (out / "appearance_feat.h5").read_bytes()
    assert extract_features(listing, out, layout="hcrn", num_clips=3, appearance_size=32, motion_size=32,
                            workers=0, device="cpu", progress=False)["skipped"] == 3
    assert (out / "appearance_feat.h5").read_bytes() == before
    with pytest.raises(VlkdError, match="different settings"):  # resuming with other settings is refused
        extract_features(listing, out, layout="hcrn", num_clips=3, appearance_size=32, motion_size=32,
                         weights="random", workers=0, device="cpu", progress=False)


def test_hcrn_ids_from_a_youtube_mapping(videos: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """MSVD's files are YouTube clip names; --mapping gives them the vidN ids the questions use."""
    named = tmp_path / "named"
    named.mkdir()
    for i, name in ((0, "-4wsuPCjDBc_5_15"), (1, "abc_12_15")):  # same trailing number: the end second
        (named / f"{name}.mp4").write_bytes((videos / f"video{i}.mp4").read_bytes())
    mapping = tmp_path / "youtube_mapping.txt"
    mapping.write_text("-4wsuPCjDBc_5_15 vid7\nabc_12_15 vid1203\n")
    out = tmp_path / "m"
    args = ["extract-features", "--videos", str(named), "--layout", "hcrn", "--num-clips", "2", *SMALL]
    assert main([*args, "--out", str(out), "--mapping", str(mapping)]) == 0
    with h5py.File(out / "motion_feat.h5") as f:
        assert list(f["ids"][()]) == [7, 1203]
    mapping.write_text("-4wsuPCjDBc_5_15 vid7\n")
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "m2"), "--mapping", str(mapping)]) == 2
    err = capsys.readouterr().err
    assert "youtube_mapping.txt" in err and "abc_12_15.mp4" in err and not (tmp_path / "m2").exists()


@pytest.mark.parametrize("layout", ["howto100m", "hcrn"])
def test_kill_and_resume_gives_identical_outputs(videos: Path, tmp_path: Path, layout: str) -> None:
    args = ["--videos", str(videos), "--layout", layout, "--num-clips", "2", *SMALL]
    whole = tmp_path / "whole"
    assert main(["extract-features", *args, "--out", str(whole)]) == 0
    resumed = tmp_path / "resumed"
    proc = subprocess.Popen([sys.executable, "-m", "vlkd", "extract-features", *args, "--out", str(resumed)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = resumed / ("2d" if layout == "howto100m" else ".parts")
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not (marker.exists() and any(marker.iterdir())):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL  # killed halfway, not finished
    if layout == "hcrn":
        assert not (resumed / "appearance_feat.h5").exists()
    else:
        assert len(list((resumed / "2d").glob("*.npy"))) < 4
    assert main(["extract-features", *args, "--out", str(resumed)]) == 0
    files = sorted(p.relative_to(whole) for p in whole.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(resumed) for p in resumed.rglob("*") if p.is_file())
    for rel in files:
        if rel.suffix == ".npy":
            assert np.array_equal(np.load(whole / rel), np.load(resumed / rel)), rel
        elif rel.suffix == ".h5":
            with h5py.File(whole / rel) as a, h5py.File(resumed / rel) as b:
                assert set(a) == set(b) and all(np.array_equal(a[k][()], b[k][()]) for k in a), rel
        elif rel.name == "failed.txt":
            assert (whole / rel).read_text() == (resumed / rel).read_text()


def test_bad_weights_are_one_line_errors(videos: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "o"
    base = ["extract-features", "--videos", str(videos), "--layout", "howto100m", "--out", str(out), *SMALL]
    assert main([*base, "--weights", str(tmp_path / "missing.pth")]) == 2
    err = capsys.readouterr().err.strip()
    assert "missing.pth" in err and "not found" in err and "\n" not in err
    wrong = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), wrong)
    assert main([*base, "--weights", str(wrong)]) == 2
    err = capsys.readouterr().err.strip()
    assert "resnet18.pth" in err and "do not fit mobilenet_v2" in err and "\n" not in err
    junk = tmp_path / "junk.pth"
    junk.write_text("hello")
    assert main([*base, "--weights", str(junk)]) == 2
    assert "not a PyTorch checkpoint" in capsys.readouterr().err
    assert main([*base, "--appearance", "resnet152"]) == 2  # no weights anywhere: say so, download nothing
    assert "--weights" in capsys.readouterr().err
    assert main([*base, "--appearance", "r3d_18", "--weights", "random"]) == 2
    assert "2D backbone" in capsys.readouterr().err
    assert not out.exists()


def test_torchvision_backbones_and_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    spec = SPECS["r3d_18"]
    reference = spec.build()
    torch.save(reference.state_dict(), tmp_path / "hub" / "checkpoints" / spec.cache_file)
    model = load_backbone("r3d_18")  # found in the cache
    assert torch.equal(model.net.layer2[0].conv1[0].weight, reference.layer2[0].conv1[0].weight)
    clips = torch.randint(0, 256, (2, 8, 32, 32, 3), dtype=torch.uint8)
    with torch.inference_mode():
        for name in ("r3d_18", "r2plus1d_18", "mc3_18"):
            assert load_backbone(name, "random")(clips).shape == (2, SPECS[name].dim)
        assert load_backbone("flow")(clips).shape == (2, SPECS["flow"].dim)
    for name in ("resnet101", "resnext101_32x8d", "s3d"):
        assert SPECS[name].cache_file.endswith(".pth")
    assert load_backbone("resnet50", "random")(torch.zeros(1, 32, 32, 3, dtype=torch.uint8)).shape == (1, 2048)


@pytest.mark.parametrize("layout", ["howto100m", "hcrn"])
def test_three_shards_then_merge_give_the_bytes_of_one_run(videos: Path, tmp_path: Path, layout: str,
                                                           capsys: pytest.CaptureFixture) -> None:
    """8 files (4 unreadable, so failed.txt too), 3 shards in a scrambled order, one missing at first."""
    args = ["extract-features", "--videos", str(videos), "--layout", layout, "--num-clips", "2", *SMALL]
    whole = tmp_path / "whole"
    assert main([*args, "--out", str(whole)]) == 0
    out = tmp_path / "sharded"
    for k in (2, 0):
        assert main([*args, "--out", str(out), "--shard", f"{k}/3"]) == 0
    capsys.readouterr()
    assert main(["merge-shards", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "shard 1/3 is missing" in err and not out.exists()
    assert main([*args, "--out", str(out), "--shard", "1/3"]) == 0
    assert main(["merge-shards", str(out)]) == 0
    assert tree_bytes(out) == tree_bytes(whole)
    assert (out / "failed.txt").read_text().count("\n") == 4


def test_sigterm_finishes_the_video_in_hand_and_a_rerun_continues(videos: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    listing = tmp_path / "list.txt"
    listing.write_text("".join(f"{videos}/video{i}.mp4\n" for i in range(3)))
    real = Writer.write

    def write_then_signal(self, vid, app, mot):
        real(self, vid, app, mot)
        os.kill(os.getpid(), signal.SIGTERM)  # arrives after the first video is written

    monkeypatch.setattr(Writer, "write", write_then_signal)
    out = tmp_path / "stopped"
    kwargs = dict(layout="howto100m", appearance_size=32, motion_size=32, workers=0, device="cpu", progress=False)
    with pytest.raises(Preempted, match=r"SIGTERM: stopped with 1 of 3 videos done .*run the same command again"):
        extract_features(listing, out, **kwargs)
    assert sorted(p.name for p in (out / "2d").iterdir()) == ["video0.npy"]
    monkeypatch.setattr(Writer, "write", real)
    assert extract_features(listing, out, **kwargs) == {"videos": 3, "extracted": 2, "skipped": 1, "failed": 0}
    with DirLock(out):  # one extraction per output directory
        with pytest.raises(VlkdError, match=rf"{out}: in use by another vlkd process \(pid {os.getpid()}"):
            extract_features(listing, out, **kwargs)


def test_disk_full_while_writing_features_keeps_no_partial_file(videos: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    def full(file, array, *args, **kwargs):
        file.write(b"\x93NUMPY partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "save", full)
    out = tmp_path / "full"
    with pytest.raises(VlkdError, match=r"3d/video0.npy: no space left on device"):
        Writer(out, Plan("howto100m", "mobilenet_v2", "flow", 32, 32), ["video0"]).write(
            "video0", np.zeros((2, 4)), np.zeros((3, 4)))
    assert list(out.rglob("*.npy*")) == [] and not list(out.rglob(".*"))


def test_appearance_frames_keeps_evenly_spread_frames_of_each_clip(videos: Path, tmp_path: Path) -> None:
    """--appearance-frames F: the F frames at the centres of F equal parts of each clip, the same numbers the
    16-frame run gives for them; the default keeps meta.json as before the option existed."""
    listing = tmp_path / "list.txt"
    listing.write_text(f"{videos}/video1.mp4\n")
    kwargs = dict(layout="hcrn", num_clips=2, appearance_size=32, motion_size=32, weights="random", workers=0,
                  device="cpu", progress=False)
    extract_features(listing, tmp_path / "all", **kwargs)
    extract_features(listing, tmp_path / "two", appearance_frames=2, **kwargs)
    with h5py.File(tmp_path / "all" / "appearance_feat.h5") as f:
        every = f["resnet_features"][()]
    with h5py.File(tmp_path / "two" / "appearance_feat.h5") as f:
        two = f["resnet_features"][()]
    assert every.shape == (1, 2, 16, 1280) and two.shape == (1, 2, 2, 1280)
    assert np.allclose(two, every[:, :, [4, 12]], atol=1e-5)
    assert "appearance_frames" not in json.loads((tmp_path / "all" / "meta.json").read_text())["plan"]
    assert json.loads((tmp_path / "two" / "meta.json").read_text())["plan"]["appearance_frames"] == 2
    with pytest.raises(VlkdError, match="appearance-frames"):
        extract_features(listing, tmp_path / "bad", appearance_frames=17, **kwargs)
    with pytest.raises(VlkdError, match="for --layout hcrn"):
        extract_features(listing, tmp_path / "bad", **{**kwargs, "layout": "howto100m"}, appearance_frames=1)


def test_decoding_workers_default_to_none_on_a_small_cpu_and_one_elsewhere(monkeypatch) -> None:
    from vlkd.video.extract import default_workers

    for cores, device, expected in [(1, "cpu", 0), (2, "cpu", 0), (4, "cpu", 1), (2, "cuda", 1), (16, "cuda", 1)]:
        monkeypatch.setattr("os.cpu_count", lambda: cores)
        assert default_workers(device) == expected, (cores, device)
