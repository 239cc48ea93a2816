"""The teacher recipe end to end on a synthetic HowTo100M-format dataset whose captions are grounded in
the features: each video shows one of 8 "objects", its 2D features carry that object's signature."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
from safetensors.torch import load_file
from transformers import AutoModelForMaskedLM

from tests.conftest import run_cli
from vlkd.data.teacher.howto100m import prepare_howto100m
from vlkd.eval.retrieval import EVAL_BATCH
from vlkd.recipes.teacher import loss_items_count

OBJECTS = ["onion", "carrot", "bread", "egg", "cheese", "apple", "rice", "fish"]


@pytest.fixture(scope="module")
def grounded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("howto")
    rng = np.random.default_rng(0)
    signatures = rng.normal(size=(len(OBJECTS), 24)).astype(np.float32)
    (root / "feats" / "2d").mkdir(parents=True)
    (root / "feats" / "3d").mkdir()
    captions = {}
    for v in range(160):
        obj = v % len(OBJECTS)
        captions[f"v{v:03d}"] = {"start": [0.0, 2.0], "end": [2.0, 4.0],
                                 "text": [f"now we cut the {OBJECTS[obj]}", f"the {OBJECTS[obj]} is ready"]}
        f2 = signatures[obj] + 0.3 * rng.normal(size=(5, 24))
        np.save(root / "feats" / "2d" / f"v{v:03d}.npy", f2.astype(np.float32))
        np.save(root / "feats" / "3d" / f"v{v:03d}.npy", rng.normal(size=(7, 8)).astype(np.float32))
    (root / "caption.json").write_text(json.dumps(captions))
    prepare_howto100m(root / "caption.json", root / "feats", root / "data", valid_fraction=0.2, progress=False)
    return root / "data"


TINY = ["model.num_layers=1", "model.hidden_size=32", "model.num_heads=2", "model.intermediate_size=64",
        "video.feature_dim=32", "video.hidden_size=32", "video.num_layers=1", "video.num_heads=2",
        "video.intermediate_size=64", "progress=false"]


@pytest.fixture(scope="module")
def trained(grounded: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "teacher"
    result = run_cli("train", "teacher-tiny", f"data.path={grounded}", f"output_dir={out}", "max_steps=60",
                     "batch_size=16", "lr=3e-3", "warmup=5", "log_every=10", "save_every=30", "eval_every=30",
                     "eval_at_start=true", *TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_teacher_trains_and_retrieves(trained: Path) -> None:
    records = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if "loss" in r]
    assert {"match", "mlm"} <= set(train[0]) and train[-1]["match"] < train[0]["match"]
    valid = [r for r in records if "valid_r1" in r]
    assert [r["step"] for r in valid] == [0, 30, 60]
    assert valid[-1]["valid_gallery_size"] >= 20
    # 8 object kinds: the trained teacher ranks same-object clips first, far above chance
    assert valid[-1]["valid_r5"] > valid[0]["valid_r5"] and valid[-1]["valid_r5"] >= 0.3, valid
    text = AutoModelForMaskedLM.from_pretrained(trained / "final" / "text")
    assert text.config.hidden_size == 32
    video = load_file(trained / "final" / "video" / "model.safetensors")
    assert video["proj.weight"].shape == (32, 32)


def write_mp4(path: Path, color: tuple[int, int, int]) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=4)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for _ in range(4):
            image = np.zeros((32, 32, 3), np.uint8) + np.array(color, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())


def test_evaluate_retrieval_scores_and_draws_the_grid(trained: Path, grounded: Path, tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    for v in json.loads((grounded / "meta.json").read_text())["splits"]["valid"]["videos"]:
        write_mp4(videos / f"{v}.mp4", (10 * int(v[1:]) % 255, 80, 160))
    out = tmp_path / "ret"
    result = run_cli("evaluate", "retrieval", "--run", str(trained), "--data", str(grounded), "--videos", str(videos),
                     "--queries", "2", "--top", "3", "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    scores = json.loads(result.stdout.strip().splitlines()[-1])
    final = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()][-1]
    assert scores["r5"] == pytest.approx(final["valid_r5"], abs=1e-6)  # same model, same split, same score
    assert json.loads((out.with_suffix(".json")).read_text())["r1"] == scores["r1"]
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    missing = run_cli("evaluate", "retrieval", "--run", str(trained), "--data", str(grounded), "--videos",
                      str(tmp_path / "none"), "--out", str(tmp_path / "x"))
    assert missing.returncode == 2 and "no video file" in missing.stderr and not (tmp_path / "x.json").exists()


def test_feature_width_mismatch_is_exit_2(grounded: Path, tmp_path: Path) -> None:
    result = run_cli("train", "teacher-tiny", f"data.path={grounded}", f"output_dir={tmp_path / 'x'}", "max_steps=2",
                     *TINY[:-1], "video.feature_dim=4096")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("vlkd: error: ") and "feature width 32" in result.stderr


@pytest.mark.parametrize("even", [True, False])
def test_loss_items_count_matches_trimming_each_batch(even: bool) -> None:
    """Against the plain loop: batches of EVAL_BATCH, the last trimmed to even (halfswap), one of <2 dropped."""
    def kept(n: int) -> int:
        total = 0
        for start in range(0, n, EVAL_BATCH):
            size = min(EVAL_BATCH, n - start)
            size = size // 2 * 2 if even else size
            total += size if size >= 2 else 0
        return total

    assert [loss_items_count(n, even) for n in range(3 * EVAL_BATCH + 2)] == [kept(n) for n in range(3 * EVAL_BATCH + 2)]
