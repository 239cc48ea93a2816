"""The VideoQA recipe end to end on a tiny synthetic dataset in the real formats (QA JSON, HCRN HDF5, GloVe
text): teacher, student with KD, evaluation on test, the motion ablation, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from safetensors import safe_open
import torch.nn.functional as F

from vlkd.cli import main
from vlkd.recipes import load_config
from vlkd.data.videoqa.prepare import prepare_videoqa
from vlkd.models.dualvgr import load_dualvgr
from vlkd.losses import dualvgr_consistency, feature_kl, hsic
from vlkd.recipes.videoqa import VideoQATask, build

COLORS, MOVES = ["red", "green", "blue"], ["left", "right", "up", "down"]
N_CLIPS, FRAMES, APP_DIM, MOT_DIM, WORD_DIM = 4, 16, 6, 5, 4


KD_WITH_LOGITS = ("kd=[{loss: feature_kl, student: appearance, teacher: fused, name: kd_appearance}, "
                  "{loss: feature_kl, student: motion, teacher: fused, name: kd_motion}, "
                  "{loss: soft_kl, student: logits, teacher: logits, name: kd_logit}]")

def write_dataset(root: Path, videos: int = 60, seed: int = 0) -> tuple[Path, Path]:
    """Colour is visible in the appearance features, direction only in the motion features."""
    rng = np.random.default_rng(seed)
    color, move = rng.integers(0, 3, videos), rng.integers(0, 4, videos)
    app = rng.normal(0, 0.3, (videos, N_CLIPS, FRAMES, APP_DIM)).astype(np.float32)
    mot = rng.normal(0, 0.3, (videos, N_CLIPS, MOT_DIM)).astype(np.float32)
    app[np.arange(videos), :, :, color] += 2.0
    mot[np.arange(videos), :, move] += 2.0
    feats = root / "features"
    feats.mkdir(parents=True)
    ids = np.arange(videos, dtype=np.int64)
    with h5py.File(feats / "appearance_feat.h5", "w") as f:
        f.create_dataset("resnet_features", data=app)
        f.create_dataset("ids", data=ids)
    with h5py.File(feats / "motion_feat.h5", "w") as f:
        f.create_dataset("resnext_features", data=mot)
        f.create_dataset("ids", data=ids)
    qa = root / "qa"
    qa.mkdir()
    splits = {"train": range(40), "val": range(40, 50), "test": range(50, videos)}
    for split, vids in splits.items():
        records = []
        for v in vids:
            records.append({"video_id": int(v), "question": "What color is the Ball?", "answer": COLORS[color[v]]})
            records.append({"video_id": int(v), "question": "where does the ball move?", "answer": MOVES[move[v]]})
        (qa / f"{split}_qa.json").write_text(json.dumps(records))
    words = ["what", "color", "is", "the", "ball", "where", "does", "move"]
    glove = root / "glove.txt"
    glove.write_text("".join(f"{w} " + " ".join(f"{x:.3f}" for x in rng.normal(size=WORD_DIM)) + "\n" for w in words))
    prepared = root / "prepared"
    prepare_videoqa("msrvtt-qa", qa, glove, prepared, progress=False)
    return prepared, feats


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, Path]:
    return write_dataset(tmp_path_factory.mktemp("videoqa"))


def overrides(data: Path, feats: Path, out: Path, *extra: str) -> list[str]:
    """The preset at a tiny size; alpha at the reference's 100 (the MSVD/MSRVTT presets' value): on 40
    training videos the consistency term keeps the teacher from overfitting (at the quickstart's 1 it gets
    8 of 10 test direction questions right)."""
    return ["loss.alpha=100", f"output_dir={out}", f"data.path={data}", f"data.features={feats}", "model.module_dim=32",
            "model.word_dim=4", f"model.num_clips={N_CLIPS}", "model.mfb_dim=16", "model.graph_layers=2", "model.heads=4",
            "batch_size=16", "epochs=40", "lr=3e-3", "decay_every_epochs=20", "eval_every_epochs=5",
            "progress=false", "save_every=1000", *extra]


@pytest.fixture(scope="module")
def teacher(dataset, tmp_path_factory) -> Path:
    data, feats = dataset
    out = tmp_path_factory.mktemp("runs") / "teacher"
    assert main(["train", "quickstart-videoqa", *overrides(data, feats, out)]) == 0
    return out


def test_teacher_learns_both_question_kinds_and_best_is_chosen_on_val(teacher: Path, dataset, capsys) -> None:
    records = [json.loads(line) for line in (teacher / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if "valid_accuracy" in r]
    selection = json.loads((teacher / "best" / "selection.json").read_text())
    assert selection["metric"] == "valid_accuracy"
    assert selection["value"] == max(r["valid_accuracy"] for r in evals)
    assert not any("test" in key for r in records for key in r)  # test is never looked at in training

    capsys.readouterr()
    assert main(["evaluate", "videoqa", "--run", str(teacher)]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["questions"] == 20 and result["split"] == "test"
    assert result["acc_what"] >= 0.9 and result["acc_where"] >= 0.9  # chance: 1/3 and 1/4
    preds = [json.loads(line) for line in (teacher / "eval-test.predictions.jsonl").read_text().splitlines()]
    assert len(preds) == 20 and np.mean([p["correct"] for p in preds]) == pytest.approx(result["accuracy"])


def test_without_motion_features_direction_questions_fail(dataset, tmp_path: Path, capsys) -> None:
    data, feats = dataset
    out = tmp_path / "no-motion"
    assert main(["train", "quickstart-videoqa", *overrides(data, feats, out, "data.drop_motion=true")]) == 0
    capsys.readouterr()
    assert main(["evaluate", "videoqa", "--run", str(out)]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["acc_what"] >= 0.9 and result["acc_where"] <= 0.6


def test_student_distils_from_the_frozen_teacher(teacher: Path, dataset, tmp_path: Path) -> None:
    data, feats = dataset
    before = {k: v.clone() for k, v in load_dualvgr(teacher)[0].state_dict().items()}
    out = tmp_path / "student"
    assert main(["train", "quickstart-videoqa", *overrides(data, feats, out, "role=student", f"teacher={teacher}",
                                                            "model.graph_layers=1", KD_WITH_LOGITS)]) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if '"loss"' in line]
    assert all({"kd_appearance", "kd_motion", "kd_logit"} <= set(r) for r in records)
    after = load_dualvgr(teacher)[0].state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    # the frozen teacher is not part of the student's checkpoints
    (checkpoint,) = [p for p in (out / "checkpoints").iterdir() if p.name.startswith("step-")][-1:]
    names = safe_open(str(checkpoint / "model.safetensors"), "pt").keys()
    assert names and all(n.startswith("model.") for n in names), sorted(n for n in names if not n.startswith("model."))
    student = load_dualvgr(out)[0]
    assert student.config.graph_layers == 1 and len(student.units[0].common_a) == 1


def test_loss_is_ce_plus_regularisers_plus_feature_kd(teacher: Path, dataset, tmp_path: Path) -> None:
    data, feats = dataset
    config = load_config("quickstart-videoqa", overrides(data, feats, tmp_path / "s", "role=student",
                                                         f"teacher={teacher}",
                                                         "kd=[{loss: feature_kl, student: appearance, teacher: fused, "
                                                         "weight: 0.5}, {loss: feature_kl, student: motion, "
                                                         "teacher: fused, args: {temperature: 2}}]"))
    job = build(config)
    task: VideoQATask = job.module.eval()
    batch = job.collate([job.train_data[i] for i in range(8)], None)
    with torch.no_grad():
        losses = task(batch)
        inputs = (batch["appearance"], batch["motion"], batch["question"], batch["question_len"])
        s, t = task.model(*inputs), task.teacher(*inputs)
    com = torch.stack([dualvgr_consistency(a, m) for a, m in zip(s.common_a, s.common_m)]).mean()
    dep = torch.stack([hsic(x, y) + hsic(u, w) for x, y, u, w in zip(s.specific_a, s.common_a, s.specific_m,
                                                                      s.common_m)]).mean()
    expected = (F.cross_entropy(s.logits, batch["labels"]) + 100 * com + 1e-6 * dep
                + 0.5 * feature_kl(s.appearance, t.fused, 1.0) + feature_kl(s.motion, t.fused, 2.0))
    torch.testing.assert_close(losses["loss"], expected)


def _one_line_exit_2(capsys, argv: list[str], *needles: str) -> None:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err


def test_bad_input_is_one_line_exit_2(dataset, tmp_path: Path, capsys) -> None:
    data, feats = dataset
    base = ["train", "quickstart-videoqa"]
    _one_line_exit_2(capsys, [*base, *overrides(data, feats, tmp_path / "a", "model.num_clips=8")],
                     "appearance_feat.h5", "4 clips per video", "num_clips=8")
    _one_line_exit_2(capsys, [*base, *overrides(data, feats, tmp_path / "a", "model.heads=5")],
                     "model.module_dim", "divisible by model.heads (5)")
    _one_line_exit_2(capsys, [*base, *overrides(data, feats, tmp_path / "b", "model.word_dim=50")],
                     "glove.npy", "4-d", "word_dim=50")
    # a feature file without one of the videos the questions need
    partial = tmp_path / "partial"
    partial.mkdir()
    for name, dataset_name in (("appearance_feat.h5", "resnet_features"), ("motion_feat.h5", "resnext_features")):
        with h5py.File(feats / name) as src, h5py.File(partial / name, "w") as dst:
            dst.create_dataset(dataset_name, data=src[dataset_name][1:])
            dst.create_dataset("ids", data=src["ids"][1:])
    _one_line_exit_2(capsys, [*base, *overrides(data, partial, tmp_path / "c")], "appearance_feat.h5",
                     "have no features (0;", "--features")
    _one_line_exit_2(capsys, [*base, *overrides(data, feats, tmp_path / "d", "role=student",
                                                 f"teacher={tmp_path / 'nothing'}")], "no DualVGR model")
    for run in "abcd":
        assert not (tmp_path / run / "final").exists()


def test_resume_gives_the_same_weights(dataset, tmp_path: Path) -> None:
    data, feats = dataset
    short = ["epochs=0", "save_every=5", "eval_every_epochs=0", "eval_every=5"]
    assert main(["train", "quickstart-videoqa", *overrides(data, feats, tmp_path / "whole", *short, "max_steps=10")]) == 0
    assert main(["train", "quickstart-videoqa", *overrides(data, feats, tmp_path / "cut", *short, "max_steps=5")]) == 0
    assert main(["train", "quickstart-videoqa", *overrides(data, feats, tmp_path / "cut", *short, "max_steps=10",
                                                             "resume=true")]) == 0
    whole, cut = load_dualvgr(tmp_path / "whole" / "final")[0], load_dualvgr(tmp_path / "cut" / "final")[0]
    for key, value in whole.state_dict().items():
        assert torch.equal(value, cut.state_dict()[key]), key


def test_a_teacher_with_another_vocabulary_is_refused(teacher: Path, dataset, tmp_path: Path, capsys) -> None:
    import shutil

    data, feats = dataset
    other = tmp_path / "other-data"
    shutil.copytree(data, other)
    vocab = json.loads((other / "vocab.json").read_text())
    answers = vocab["answer_token_to_idx"]
    answers["red"], answers["green"] = answers["green"], answers["red"]  # same words, other labels
    (other / "vocab.json").write_text(json.dumps(vocab))
    _one_line_exit_2(capsys, ["train", "quickstart-videoqa", *overrides(other, feats, tmp_path / "s", "role=student",
                                                                        f"teacher={teacher}")],
                     "mismatched vocab", "vocab.json")
    _one_line_exit_2(capsys, ["evaluate", "videoqa", "--run", str(teacher), "--data", str(other)], "mismatched vocab")
