"""Kill anywhere, for every training recipe: five SIGKILLs at points drawn from a fixed seed (inside a step,
while a checkpoint is written, inside an evaluation, during a metrics append) and one SIGTERM, each
followed by resume=true; the final weights equal an uninterrupted run's and every checkpoint left on disk
verifies and loads after every attempt. The runs are forked from one helper process
(tests/engine/kill_anywhere.py), so an attempt costs a few tiny training steps, not an interpreter start."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file
from transformers import BertConfig, BertModel

from tests.recipes.test_distill import teacher_data
from tests.recipes.test_videoqa import write_dataset
from vlkd.data.bundled import bundled_path
from vlkd.data.teacher.howto100m import prepare_howto100m
from vlkd.data.text.store import TokenStore
from vlkd.models.bert import ModelConfig, build_masked_lm
from vlkd.models.teacher import VideoTextTeacher, VideoTowerConfig, save_teacher

MAX_STEPS = 8
# saves at 2, 4, 6, 8; evaluations at 3, 6 and the final one at 8; log lines at 2, 4, 6, 8
SCHEDULE = [f"max_steps={MAX_STEPS}", "save_every=2", "eval_every=3", "log_every=2", "progress=false",
            "precision=fp32"]
BERT = ["model.num_layers=1", "model.hidden_size=32", "model.num_heads=2", "model.intermediate_size=64",
        "model.max_position_embeddings=128"]
VIDEO = ["video.feature_dim=24", "video.hidden_size=32", "video.num_layers=1", "video.num_heads=2",
         "video.intermediate_size=64"]
RECIPES = ["mlm", "teacher", "distill", "videoqa", "finetune"]


def kill_points(seed: int) -> list[list]:
    """Five SIGKILL points (one of each main kind, then two of any kind) and one SIGTERM, from `seed`. Each
    lies past the step the run resumes from after the previous one, so every attempt is interrupted."""
    rng = random.Random(seed)
    at = {"step": list(range(1, MAX_STEPS + 1)), "checkpoint": [2, 4, 6, 8], "eval": [3, 6],
          "metrics": [2, 4, 6, 8], "sigterm": list(range(1, MAX_STEPS))}
    kinds = ["step", "checkpoint", "eval"] + [rng.choice(["step", "checkpoint", "eval", "metrics"]) for _ in range(2)]
    rng.shuffle(kinds)
    kinds.insert(rng.randint(1, 4), "sigterm")
    points, start = [], 0  # start: the step the next attempt resumes from
    for kind in kinds:
        # a kill at S leaves the checkpoint before S (an eval or log line at S comes before the save at S)
        if not [s for s in at[kind] if s > start]:
            kind = "step"  # (no evaluation or stop point left past `start`)
        choices = [s for s in at[kind] if start < s <= start + 3] or [min(s for s in at[kind] if s > start)]
        step = rng.choice(choices)
        points.append([kind, step, rng.randint(1, 3)])
        start = step if kind == "sigterm" else (step - 1) // 2 * 2
    return points


def howto100m_data(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for kind in ("2d", "3d"):
        (root / "feats" / kind).mkdir(parents=True)
    captions = {}
    for v in range(24):
        captions[f"v{v:02d}"] = {"start": [0.0, 2.0], "end": [2.0, 4.0],
                                 "text": [f"now we cut item {v % 5}", f"the item {v % 5} is ready"]}
        np.save(root / "feats" / "2d" / f"v{v:02d}.npy", rng.normal(size=(3, 16)).astype(np.float32))
        np.save(root / "feats" / "3d" / f"v{v:02d}.npy", rng.normal(size=(4, 8)).astype(np.float32))
    (root / "caption.json").write_text(json.dumps(captions))
    prepare_howto100m(root / "caption.json", root / "feats", root / "data", valid_fraction=0.25, progress=False)
    return root / "data"


def tiny_teacher_run(root: Path, store: Path) -> Path:
    torch.manual_seed(0)
    text = build_masked_lm(ModelConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64,
                                       max_position_embeddings=128))
    # feature_dim: teacher_data's 2d + 3d widths (8 + 8), so its voken bank can be built
    teacher = VideoTextTeacher(text, VideoTowerConfig(feature_dim=16, hidden_size=32, num_layers=1, num_heads=2,
                                                      intermediate_size=64))
    run = root / "teacher-run"
    (run / "final").mkdir(parents=True)
    save_teacher(teacher, run / "final", TokenStore(store).tokenizer_dir)
    (run / "config.yaml").write_text(yaml.safe_dump({"task": "teacher", "data": {"path": str(teacher_data(run))}}))
    return run


def tiny_bert(root: Path) -> Path:
    path = root / "tiny-bert"
    torch.manual_seed(0)
    BertModel(BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                         max_position_embeddings=128)).save_pretrained(path)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        shutil.copy2(bundled_path("minilm") / name, path / name)
    return path


def recipe_argv(recipe: str, root: Path, store: Path) -> list[str]:
    out = "output_dir={out}"
    if recipe == "mlm":
        return ["train", "mlm-tiny", f"data.train={store}", out, "batch_size=8", "eval_batches=1", *BERT, *SCHEDULE]
    if recipe == "teacher":
        return ["train", "teacher-tiny", f"data.path={howto100m_data(root)}", out, "batch_size=8", *BERT, *VIDEO,
                *SCHEDULE]
    if recipe == "distill":
        return ["train", "distill-tiny", f"data.train={store}", f"teacher={tiny_teacher_run(root, store)}", out,
                "batch_size=8", "eval_batches=1",
                "kd.terms=[{loss: nst, student: tokens, teacher: tokens}, {loss: crd, student: hidden, "
                "teacher: hidden, weight: 0.5, args: {embed_dim: 8, num_negatives: 16}}]", *BERT, *SCHEDULE]
    if recipe == "videoqa":
        data, feats = write_dataset(root / "videoqa", videos=60)
        return ["train", "quickstart-videoqa", out, f"data.path={data}", f"data.features={feats}",
                "model.module_dim=16", "model.word_dim=4", "model.num_clips=4", "model.mfb_dim=8",
                "model.graph_layers=1", "model.heads=2", "batch_size=8", "eval_every_epochs=0", "epochs=0",
                *SCHEDULE]
    assert recipe == "finetune"
    data = Path(__file__).parents[1] / "fixtures" / "finetune" / "SST-2"
    return ["finetune", "--task", "sst2", "--data-dir", str(data), "--model", str(tiny_bert(root)), "--out", "{out}",
            "batch_size=4", "data.eval_batch_size=4", *SCHEDULE]


def safetensors_under(path: Path) -> dict[str, dict[str, torch.Tensor]]:
    return {str(p.relative_to(path)): load_file(p) for p in sorted(path.rglob("*.safetensors"))}


@pytest.fixture(scope="module")
def driver() -> subprocess.Popen:
    """One helper process for every recipe: it pays the imports once. Single-threaded: forking after a
    multi-threaded OpenMP region is unsafe, and tiny models gain nothing from threads."""
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": str(Path(__file__).parents[2]) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("kill_anywhere.py"))], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    yield proc
    proc.stdin.close()
    proc.wait(timeout=60)


@pytest.mark.parametrize("recipe", RECIPES)
def test_kill_anywhere_then_resume_matches_an_uninterrupted_run(recipe: str, token_store: Path, driver,
                                                                tmp_path: Path) -> None:
    # the first seed (from the recipe's own start) whose points include a step, a checkpoint and an evaluation
    seed = next(s for s in range(100 * RECIPES.index(recipe), 10**6)
                if {"step", "checkpoint", "eval"} <= {kind for kind, _, _ in kill_points(s)})
    spec = {"argv": recipe_argv(recipe, tmp_path, token_store), "root": str(tmp_path), "points": kill_points(seed)}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    driver.stdin.write(f"{tmp_path / 'spec.json'}\n")
    driver.stdin.flush()
    answer = driver.stdout.readline()
    logs = "".join((tmp_path / name).read_text()[-3000:] for name in ("straight.log", "killed.log")
                   if (tmp_path / name).is_file())
    assert answer == "done\n", logs
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["straight"] == "exit 0", logs
    outcomes = [outcome for _, outcome in report["attempts"]]
    expected = ["exit 75" if point[0] == "sigterm" else "killed" for point in spec["points"]] + ["exit 0"]
    assert outcomes == expected, (report["attempts"], logs)
    assert report["checkpoints_checked"] >= 6
    straight = safetensors_under(tmp_path / "straight" / "final")
    killed = safetensors_under(tmp_path / "killed" / "final")
    assert straight and straight.keys() == killed.keys()
    for name, tensors in straight.items():
        assert tensors.keys() == killed[name].keys()
        for key, value in tensors.items():
            assert torch.equal(value, killed[name][key]), (name, key)
