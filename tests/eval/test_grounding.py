"""`vlkd evaluate grounding` on a tiny synthetic HowTo100M world with an untrained (random, deterministic)
teacher: the head and probe routes checked against straightforward loop implementations."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from transformers import BertConfig, BertForMaskedLM

from vlkd.cli import main
from vlkd.data.teacher.howto100m import TeacherSamples, prepare_howto100m
from vlkd.eval import grounding as grounding_module
from vlkd.eval.text_grounding import chance_levels, evaluate_text_grounding, fit_ridge
from vlkd.models.student import KDHead, KDHeadConfig, load_kd_head, save_kd_head
from vlkd.models.teacher import (
    VideoTextTeacher,
    VideoTowerConfig,
    load_teacher,
    save_teacher,
)

OBJECTS = ["onion", "carrot", "bread", "egg", "cheese", "apple", "rice", "fish"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("howto")
    rng = np.random.default_rng(0)
    signatures = rng.normal(size=(len(OBJECTS), 12)).astype(np.float32)
    (root / "feats" / "2d").mkdir(parents=True)
    (root / "feats" / "3d").mkdir()
    captions = {}
    for v in range(48):
        obj = v % len(OBJECTS)
        captions[f"v{v:03d}"] = {"start": [0.0], "end": [4.0], "text": [f"now we cut the {OBJECTS[obj]}"]}
        np.save(root / "feats" / "2d" / f"v{v:03d}.npy",
                (signatures[obj] + 0.3 * rng.normal(size=(4, 12))).astype(np.float32))
        np.save(root / "feats" / "3d" / f"v{v:03d}.npy", rng.normal(size=(6, 4)).astype(np.float32))
    (root / "caption.json").write_text(json.dumps(captions))
    prepare_howto100m(root / "caption.json", root / "feats", root / "data", valid_fraction=0.3, progress=False)
    return root / "data"


def tiny_bert(seed: int, vocab_size: int) -> BertForMaskedLM:
    torch.manual_seed(seed)
    return BertForMaskedLM(BertConfig(vocab_size=vocab_size, hidden_size=16, num_hidden_layers=1,
                                      num_attention_heads=2, intermediate_size=32, max_position_embeddings=160))


@pytest.fixture(scope="module")
def teacher_run(world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "teacher"
    vocab = json.loads((world / "meta.json").read_text())["vocab_size"]
    text = BertForMaskedLM(BertConfig(vocab_size=vocab, hidden_size=24, num_hidden_layers=1, num_attention_heads=2,
                                      intermediate_size=32, max_position_embeddings=160))
    video = VideoTowerConfig(feature_dim=16, hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32,
                             max_steps=16, dropout=0.0)
    torch.manual_seed(1)
    teacher = VideoTextTeacher(text, video)
    (run / "final").mkdir(parents=True)
    save_teacher(teacher, run / "final", world / "tokenizer")
    return run


ALIGNED = [{"loss": "nst", "student": "tokens", "teacher": "tokens", "weight": 1.0},
           {"loss": "hidden_cos", "student": "tokens", "teacher": "tokens", "weight": 0.5}]


def save_student(world: Path, path: Path, seed: int, head: bool, terms: list | None = ALIGNED) -> Path:
    """A run directory: final/ (BERT, tokenizer, KD head) and, with `terms`, a distill config.yaml."""
    if terms is not None:
        path.mkdir(parents=True, exist_ok=True)
        (path / "config.yaml").write_text(yaml.safe_dump({"task": "distill", "kd": {"terms": terms}}))
    vocab = json.loads((world / "meta.json").read_text())["vocab_size"]
    tiny_bert(seed, vocab).save_pretrained(path / "final")
    for file in (world / "tokenizer").iterdir():
        shutil.copy2(file, path / "final" / file.name)
    if head:
        torch.manual_seed(seed + 100)
        save_kd_head(KDHead(KDHeadConfig(student_width=16, teacher_width=24)), path / "final")
    return path


@pytest.fixture(scope="module")
def student(world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_student(world, tmp_path_factory.mktemp("runs") / "student", seed=2, head=True)


@pytest.fixture(scope="module")
def baseline(world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_student(world, tmp_path_factory.mktemp("runs") / "mlm", seed=3, head=False)


def ridge_reference(x: np.ndarray, y: np.ndarray, ridge: float, x_new: np.ndarray) -> np.ndarray:
    """Independent: least squares on the augmented system [Z 1; sqrt(ridge) I 0] [W; b] = [Y; 0]."""
    mean, std = x.mean(0), x.std(0)
    std[std < 1e-12] = 1.0
    z = (x - mean) / std
    n, d = z.shape
    a = np.block([[z, np.ones((n, 1))], [np.sqrt(ridge) * np.eye(d), np.zeros((d, 1))]])
    b = np.vstack([y, np.zeros((d, y.shape[1]))])
    coef = np.linalg.lstsq(a, b, rcond=None)[0]
    return np.hstack([(x_new - mean) / std, np.ones((len(x_new), 1))]) @ coef


def test_ridge_matches_the_augmented_least_squares_solution() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 6)) * np.array([1, 10, 0.1, 3, 1, 2]) + 5
    y = x @ rng.normal(size=(6, 3)) + 0.1 * rng.normal(size=(40, 3)) + 7
    x_new = rng.normal(size=(9, 6))
    for ridge in (0.0, 1.0, 25.0):
        np.testing.assert_allclose(fit_ridge(x, y, ridge).predict(x_new), ridge_reference(x, y, ridge, x_new),
                                   rtol=1e-8, atol=1e-8)


def test_chance_levels() -> None:
    assert chance_levels(20) == {"r1_chance": 0.05, "r5_chance": 0.25, "r10_chance": 0.5,
                                 "median_rank_chance": 10.5}
    assert chance_levels(4) == {"r1_chance": 0.25, "r5_chance": 1.0, "r10_chance": 1.0, "median_rank_chance": 2.5}


@torch.no_grad()
def loop_features(world: Path, split: str, model_dir: Path, teacher_run: Path, head: bool):
    """One caption and one clip at a time, unpadded: pooled hiddens, head scores' token vectors, videos."""
    samples = TeacherSamples(world, split)
    special = samples.meta["special_ids"]
    bert = BertForMaskedLM.from_pretrained(model_dir).eval()
    teacher = load_teacher(teacher_run / "final")
    kd = None
    if head:
        kd = load_kd_head(model_dir)
    pooled, tokens, videos = [], [], []
    for i in range(len(samples)):
        s = samples[i]
        ids = torch.tensor([[special["cls"], *s["tokens"].tolist(), special["sep"]]])
        hidden = bert.bert(input_ids=ids).last_hidden_state[0]
        pooled.append(hidden.mean(0).numpy())
        if kd is not None:
            tokens.append(F.normalize(kd(hidden), dim=-1))
        steps = torch.from_numpy(s["steps"])[None]
        videos.append(teacher.encode_video(steps, torch.ones(1, steps.shape[1], dtype=torch.long))[0])
    return np.array(pooled, np.float64), tokens, torch.stack(videos)


def metrics_of(scores: np.ndarray) -> dict[str, float]:
    ranks = np.array([1 + (scores[i] > scores[i, i]).sum() for i in range(len(scores))])
    return {"r1": (ranks <= 1).mean(), "r5": (ranks <= 5).mean(), "r10": (ranks <= 10).mean(),
            "median_rank": float(np.median(ranks))}


def test_head_and_probe_routes_match_loop_implementations(world: Path, teacher_run: Path, student: Path) -> None:
    result = evaluate_text_grounding(student, teacher_run, world, ridge=2.0)
    n = len(TeacherSamples(world, "valid"))
    assert result["gallery"] == n >= 10
    assert json.loads((student / "grounding.json").read_text()) == result

    _, tokens, videos = loop_features(world, "valid", student / "final", teacher_run, head=True)
    # the teacher's similarity: the mean over a caption's tokens of the cosine with the video
    head_scores = np.array([[float(F.cosine_similarity(t, v[None], dim=-1).mean()) for v in videos] for t in tokens])
    expected = metrics_of(head_scores)
    for key, value in expected.items():
        assert result["head"][key] == pytest.approx(value), key
    assert result["head"]["gallery_size"] == n and result["head"]["r1_chance"] == pytest.approx(1 / n)
    assert result["head"]["median_rank_chance"] == pytest.approx((n + 1) / 2)

    train_pooled, _, train_videos = loop_features(world, "train", student / "final", teacher_run, head=False)
    test_pooled, _, _ = loop_features(world, "valid", student / "final", teacher_run, head=False)
    predicted = ridge_reference(train_pooled, train_videos.numpy().astype(np.float64), 2.0, test_pooled)
    predicted /= np.linalg.norm(predicted, axis=1, keepdims=True)
    expected = metrics_of(predicted @ videos.numpy().T.astype(np.float64))
    for key, value in expected.items():
        assert result["probe"][key] == pytest.approx(value), key
    assert result["probe"]["train_samples"] == len(TeacherSamples(world, "train"))
    # captions name the object and clips carry its signature: even random towers leave the probe a signal
    assert result["probe"]["r1"] > 2 * result["probe"]["r1_chance"]


def test_baseline_without_head_gets_the_probe_only_via_the_cli(world: Path, teacher_run: Path, baseline: Path,
                                                               tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "g"
    assert main(["evaluate", "grounding", "--model", str(baseline / "final"), "--teacher", str(teacher_run),
                 "--data", str(world), "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["head"] is None and printed["probe"]["gallery_size"] == printed["gallery"]
    assert {"r1", "r5", "r10", "median_rank", "r1_chance", "r5_chance", "r10_chance",
            "median_rank_chance"} <= set(printed["probe"])
    assert json.loads(out.with_suffix(".json").read_text()) == printed


def error_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vlkd: error: ")
    return lines[0]


def test_bad_inputs_are_one_line_errors(world: Path, teacher_run: Path, student: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    base = ["evaluate", "grounding", "--model", str(student), "--data", str(world), "--out", str(tmp_path / "x")]
    line = error_line([*base, "--teacher", str(tmp_path / "nope")], capsys)
    assert "teacher run not found" in line and str(tmp_path / "nope") in line
    line = error_line(["evaluate", "grounding", "--model", str(student), "--teacher", str(teacher_run),
                       "--data", str(tmp_path / "nodata")], capsys)
    assert "data directory not found" in line
    line = error_line(["evaluate", "grounding", "--model", str(tmp_path / "nomodel"), "--teacher",
                       str(teacher_run), "--data", str(world)], capsys)
    assert "model directory not found" in line

    other = tmp_path / "other"  # same model, a vocabulary with one token renamed
    shutil.copytree(student, other)
    for name in ("tokenizer.json", "vocab.txt"):
        path = other / "final" / name
        if path.is_file():
            path.write_text(path.read_text(encoding="utf-8").replace("carrot", "karrot"), encoding="utf-8")
    line = error_line([*base[:3], str(other), *base[4:], "--teacher", str(teacher_run)], capsys)
    assert "vocabulary differs" in line and str(other / "final") in line

    wide = tmp_path / "wide"  # a KD head made for a 32-wide teacher
    shutil.copytree(student, wide)
    save_kd_head(KDHead(KDHeadConfig(student_width=16, teacher_width=32)), wide / "final")
    line = error_line([*base[:3], str(wide), *base[4:], "--teacher", str(teacher_run)], capsys)
    assert "teacher width 32" in line and "kd_head" in line
    assert not (tmp_path / "x.json").exists()


def test_a_model_that_is_not_a_bert_is_an_error(world: Path, teacher_run: Path, student: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    gpt = tmp_path / "gpt"
    shutil.copytree(student / "final", gpt)
    config = json.loads((gpt / "config.json").read_text())
    (gpt / "config.json").write_text(json.dumps({**config, "model_type": "gpt2"}))
    line = error_line(["evaluate", "grounding", "--model", str(gpt), "--teacher", str(teacher_run),
                       "--data", str(world)], capsys)
    assert "not a BERT" in line and str(gpt / "config.json") in line


@pytest.mark.parametrize("terms, reason", [
    ([{"loss": "nst", "student": "tokens", "teacher": "tokens", "weight": 1.0},
      {"loss": "pkt", "student": "tokens", "teacher": "tokens", "weight": 1.0}], "no kd.terms entry pulls the KD head"),
    ([{"loss": "crd", "student": "hidden", "teacher": "hidden", "weight": 1.0}], "crd (hidden -> hidden"),
    ([{"loss": "hidden_cos", "student": "tokens", "teacher": "tokens", "weight": 0.0}], "weight 0.0"),
    ([{"loss": "hidden_mse", "student": "layer1", "teacher": "layer1", "weight": 1.0}], "hidden_mse (layer1"),
    (None, "no run config (config.yaml)"),
])
def test_head_route_is_absent_with_its_reason_where_no_term_aligns_the_head(
        world: Path, teacher_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], terms, reason) -> None:
    run = save_student(world, tmp_path / "student", seed=2, head=True, terms=terms)
    assert main(["evaluate", "grounding", "--model", str(run), "--teacher", str(teacher_run), "--data", str(world),
                 "--out", str(tmp_path / "g")]) == 0
    captured = capsys.readouterr()
    printed = json.loads(captured.out.strip().splitlines()[-1])
    assert printed["head"] is None and reason in printed["head_absent"]
    assert f"vlkd: head route absent: {printed['head_absent']}" in captured.err
    assert printed["probe"]["gallery_size"] == printed["gallery"]  # the probe route is there for every model


def test_baseline_reason_and_aligned_student_gets_the_route_and_the_grid(
        world: Path, teacher_run: Path, baseline: Path, student: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert "no KD head" in evaluate_text_grounding(baseline, teacher_run, world, out=tmp_path / "b")["head_absent"]
    videos = tmp_path / "videos"
    videos.mkdir()
    samples = TeacherSamples(world, "valid")
    for vid in samples.videos:
        (videos / f"{vid}.mp4").write_bytes(b"")
    monkeypatch.setattr(grounding_module, "middle_frame", lambda path, size=112: np.zeros((8, 8, 3), np.uint8))
    result = evaluate_text_grounding(student, teacher_run, world, out=tmp_path / "s", videos_dir=videos,
                                     num_queries=2, top=3)
    assert "head_absent" not in result and result["head"]["gallery_size"] == len(samples)
    assert result["grid"] == str(tmp_path / "s.png") and (tmp_path / "s.png").stat().st_size > 0
