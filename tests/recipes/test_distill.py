"""The distillation recipe end to end: equal compute with the MLM baseline (same blocks, masks and initial
weights), training through the CLI with several KD terms, a plain BERT in final/ with the KD head beside it,
no teacher weights in checkpoints, exact resume after kill -9 with CRD's memory banks, and bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from accelerate.utils import set_seed
from safetensors import safe_open
from safetensors.torch import load_file
from transformers import AutoModelForMaskedLM

from tests.conftest import kill_mid_run, run_cli
from vlkd.data.teacher.howto100m import prepare_howto100m
from vlkd.data.text.store import TokenStore
from vlkd.engine.batches import ShardedBatches
from vlkd.eval.teacher_targets import prepare_teacher_targets
from vlkd.models.bert import ModelConfig, build_masked_lm
from vlkd.models.teacher import VideoTextTeacher, VideoTowerConfig, save_teacher
from vlkd.recipes import load_config, recipe_module

STUDENT = ["model.num_layers=1", "model.hidden_size=64", "model.num_heads=2", "model.intermediate_size=128",
           "model.max_position_embeddings=128", "progress=false"]
NST_CRD = ("kd.terms=[{loss: nst, student: tokens, teacher: tokens}, "
           "{loss: crd, student: hidden, teacher: hidden, weight: 0.5, args: {embed_dim: 16, num_negatives: 32}}]")


@pytest.fixture(scope="module")
def teacher_run(token_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A teacher run directory (final/text + final/video + config.yaml) of another width than the student."""
    torch.manual_seed(0)
    text = build_masked_lm(ModelConfig(hidden_size=48, num_layers=1, num_heads=2, intermediate_size=96,
                                       max_position_embeddings=128))
    teacher = VideoTextTeacher(text, VideoTowerConfig(feature_dim=16, hidden_size=32, num_layers=1, num_heads=2,
                                                      intermediate_size=64))
    run = tmp_path_factory.mktemp("teacher") / "run"
    (run / "final").mkdir(parents=True)
    save_teacher(teacher, run / "final", TokenStore(token_store).tokenizer_dir)
    (run / "config.yaml").write_text(yaml.safe_dump({"task": "teacher", "data": {"path": str(teacher_data(run))}}))
    return run


def teacher_data(root: Path) -> Path:
    """The teacher's (synthetic) HowTo100M training samples: the voken set is their video embeddings."""
    rng = np.random.default_rng(0)
    captions = {}
    for kind in ("2d", "3d"):
        (root / "feats" / kind).mkdir(parents=True)
    for v in range(12):
        captions[f"v{v:02d}"] = {"start": [0.0], "end": [3.0], "text": [f"now we cut the item number {v}"]}
        np.save(root / "feats" / "2d" / f"v{v:02d}.npy", rng.normal(size=(3, 8)).astype(np.float32))
        np.save(root / "feats" / "3d" / f"v{v:02d}.npy", rng.normal(size=(4, 8)).astype(np.float32))
    (root / "caption.json").write_text(json.dumps(captions))
    prepare_howto100m(root / "caption.json", root / "feats", root / "data", valid_fraction=0.25, progress=False)
    return root / "data"


def test_distill_and_baseline_draw_the_same_blocks_masks_and_initial_weights(token_store: Path,
                                                                            teacher_run: Path, tmp_path: Path) -> None:
    common = [f"data.train={token_store}", "batch_size=8", *STUDENT]
    kd = load_config("distill-tiny", [f"teacher={teacher_run}", f"output_dir={tmp_path / 'kd'}", NST_CRD, *common])
    base = load_config("mlm-tiny", [f"output_dir={tmp_path / 'mlm'}", *common])
    assert (kd.seed, kd.max_steps, kd.batch_size, kd.lr) == (base.seed, base.max_steps, base.batch_size, base.lr)
    jobs = []
    for config in (kd, base):
        set_seed(config.seed)  # as the engine does before building a job
        jobs.append(recipe_module(config.task).build(config))
        jobs[-1].rng_after_build = torch.get_rng_state()
    kd_job, base_job = jobs
    student, baseline = kd_job.module.student.state_dict(), base_job.module.model.state_dict()
    assert student.keys() == baseline.keys()
    assert all(torch.equal(student[k], baseline[k]) for k in student)
    assert torch.equal(kd_job.rng_after_build, base_job.rng_after_build)  # same dropout streams
    a = ShardedBatches(kd_job.train_data, kd_job.collate, 8, seed=kd.seed)
    b = ShardedBatches(base_job.train_data, base_job.collate, 8, seed=base.seed)
    assert len(a) == len(b)
    for m in (0, 1, 2, len(a) - 1, len(a), 3 * len(a) + 5):  # across epochs too
        x, y = a[m], b[m]
        assert torch.equal(x["input_ids"], y["input_ids"]) and torch.equal(x["labels"], y["labels"]), m
    assert len(kd_job.valid_data) == len(base_job.valid_data)


def test_distill_trains_and_final_is_a_plain_bert_with_the_kd_head_beside_it(token_store: Path, teacher_run: Path,
                                                                          tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = run_cli("train", "distill-tiny", f"data.train={token_store}", f"teacher={teacher_run}",
                     f"output_dir={out}", NST_CRD, "max_steps=24", "batch_size=16", "lr=2e-3", "warmup=3",
                     "log_every=4", "save_every=12", "eval_every=12", "eval_batches=2", *STUDENT)
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if "loss" in r]
    assert {"mlm", "nst", "crd"} <= set(train[0])
    assert train[-1]["nst"] < train[0]["nst"] and train[-1]["mlm"] < train[0]["mlm"]
    valid = [r for r in records if "valid_perplexity" in r]
    assert valid and "valid_nst" in valid[-1]
    model = AutoModelForMaskedLM.from_pretrained(out / "final")
    assert model.config.hidden_size == 64
    head = json.loads((out / "final" / "kd_head" / "config.json").read_text())
    assert head == {"student_width": 64, "teacher_width": 48, "layer_norm_eps": model.config.layer_norm_eps}
    with safe_open(str(out / "checkpoints" / "step-24" / "model.safetensors"), "pt") as f:
        names = list(f.keys())
    assert not [n for n in names if n.startswith("teacher.")]
    assert any(n.startswith("kd.stateful.crd.") and "bank" in n for n in names)  # CRD's memory banks


NST_PKT = ("kd.terms=[{loss: nst, student: tokens, teacher: tokens}, {loss: pkt, student: hidden, teacher: tokens}, "
           "{loss: hidden_cos, student: tokens, teacher: tokens, weight: 0}]")


def test_nst_plus_pkt_from_kd_terms(token_store: Path, teacher_run: Path, tmp_path: Path) -> None:
    """A combination is a term list: NST on the KD head's tokens plus PKT on the hidden states (other
    widths: PKT compares similarities only), and a weight-0 term that is logged but adds nothing; each
    evaluation logs every term's gradient share."""
    out = tmp_path / "run"
    result = run_cli("train", "distill-tiny", f"data.train={token_store}", f"teacher={teacher_run}",
                     f"output_dir={out}", NST_PKT, "max_steps=6", "batch_size=8", "log_every=3", "eval_every=3",
                     "eval_batches=1", *STUDENT)
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if "loss" in r]
    assert {"mlm", "nst", "pkt", "hidden_cos"} <= set(train[0]) and train[0]["pkt"] > 0
    assert train[0]["loss"] == pytest.approx(train[0]["mlm"] + train[0]["nst"] + train[0]["pkt"], rel=1e-5)
    evals = [r for r in records if "valid_loss" in r]
    assert "valid_pkt" in evals[-1] and len(evals) == 2
    for r in evals:  # every term's share of the gradient on the student, the base mlm included
        shares = {k: v for k, v in r.items() if k.startswith("grad_share_")}
        assert set(shares) == {"grad_share_mlm", "grad_share_nst", "grad_share_pkt", "grad_share_hidden_cos"}
        assert sum(shares.values()) == pytest.approx(1.0) and shares["grad_share_hidden_cos"] == 0.0
        assert shares["grad_share_nst"] > 0 and shares["grad_share_pkt"] > 0


def _train_cmd(store: Path, teacher: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "vlkd", "train", "distill-tiny", f"data.train={store}", f"teacher={teacher}",
            f"output_dir={out}", NST_CRD, "max_steps=16", "batch_size=16", "save_every=4", "log_every=4",
            "eval_every=0", "eval_batches=1", *STUDENT, *extra]


def test_kill_9_then_resume_with_crd_matches_uninterrupted_run(token_store: Path, teacher_run: Path,
                                                              tmp_path: Path) -> None:
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    straight = tmp_path / "straight"
    subprocess.run(_train_cmd(token_store, teacher_run, straight), check=True, env=env, capture_output=True)
    killed = tmp_path / "killed"
    kill_mid_run(_train_cmd(token_store, teacher_run, killed), killed / "checkpoints" / "step-4" / "trainer_state.json")
    resumed = subprocess.run(_train_cmd(token_store, teacher_run, killed, "resume=true"), env=env,
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a = load_file(straight / "checkpoints" / "step-16" / "model.safetensors")
    b = load_file(killed / "checkpoints" / "step-16" / "model.safetensors")
    assert a.keys() == b.keys() and any("bank" in k for k in a)
    for key in a:
        assert torch.allclose(a[key].float(), b[key].float(), atol=1e-6), key


def test_bad_input_is_one_line_exit_2(token_store: Path, teacher_run: Path, tmp_path: Path) -> None:
    other_vocab = tmp_path / "other-vocab"
    shutil.copytree(teacher_run, other_vocab)
    tokenizer = other_vocab / "final" / "text" / "tokenizer.json"
    tokenizer.write_text(tokenizer.read_text(encoding="utf-8").replace('"the":', '"thee":', 1), encoding="utf-8")
    cases = [
        ([f"teacher={tmp_path / 'no-teacher'}"], "no-teacher"),
        ([f"teacher={other_vocab}"], "mismatched vocab"),
        ([f"teacher={teacher_run}", "kd.terms=[{loss: nsst, student: tokens, teacher: tokens}]"], "unknown loss 'nsst'"),
        ([f"teacher={teacher_run}", "kd.targets=/x"], "kd.teacher_input=unmasked"),
        ([f"teacher={teacher_run}", "kd.terms=[{loss: crd, student: hidden, teacher: hidden, "
                                    "args: {embed_dim: 100000000000}}]"], "bank"),
    ]
    for i, (overrides, expected) in enumerate(cases):
        out = tmp_path / f"run{i}"
        result = run_cli("train", "distill-tiny", f"data.train={token_store}", f"output_dir={out}", *STUDENT,
                         *overrides)
        assert result.returncode == 2, (expected, result.stderr[-2000:])
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("vlkd: error:") and expected in lines[0], result.stderr
        assert not out.exists()


@pytest.mark.parametrize("form", ["full", "nst-gram"])
def test_cached_targets_give_the_online_kd_loss(token_store: Path, teacher_run: Path, tmp_path: Path,
                                                form: str) -> None:
    cache = tmp_path / "targets"
    prepare_teacher_targets(teacher_run, token_store, cache, form=form, progress=False)
    losses = []
    for extra in ([], [f"kd.targets={cache}"]):
        config = load_config("distill-tiny", [f"data.train={token_store}", f"teacher={teacher_run}",
                                              f"output_dir={tmp_path / 'x'}", "kd.teacher_input=unmasked",
                                              "batch_size=8", *STUDENT, *extra])
        set_seed(config.seed)
        job = recipe_module("distill").build(config)
        assert (job.frozen == []) == bool(extra)  # with a cache the teacher is not even loaded
        batch = ShardedBatches(job.train_data, job.collate, 8, seed=config.seed)[3]
        with torch.no_grad():
            losses.append(job.module.eval()(batch))
    online, cached = losses
    torch.testing.assert_close(cached["mlm"], online["mlm"])
    torch.testing.assert_close(cached["nst"], online["nst"], rtol=2e-3, atol=1e-5)  # fp16 targets


def test_a_cache_of_another_store_is_refused(token_store: Path, teacher_run: Path, tmp_path: Path) -> None:
    other = tmp_path / "other-store"
    first = TokenStore(token_store)
    shutil.copytree(token_store, other)
    meta = json.loads((other / "meta.json").read_text())
    meta["sources"][0]["sha256"] = "0" * 64
    (other / "meta.json").write_text(json.dumps(meta))
    cache = tmp_path / "targets"
    prepare_teacher_targets(teacher_run, other, cache, progress=False)
    out = tmp_path / "run"
    result = run_cli("train", "distill-tiny", f"data.train={first.path}", f"teacher={teacher_run}",
                     f"output_dir={out}", f"kd.targets={cache}", "kd.teacher_input=unmasked", *STUDENT)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(cache) in lines[0] and "store" in lines[0], lines
    assert not out.exists()


def test_voken_classification_against_the_teachers_training_videos(token_store: Path, teacher_run: Path,
                                                                   tmp_path: Path) -> None:
    out = tmp_path / "voken"
    result = run_cli("train", "distill-tiny", f"data.train={token_store}", f"teacher={teacher_run}",
                     f"output_dir={out}", "kd.terms=[{loss: voken, student: vokens, teacher: vokens}]", "kd.head=false",
                     "max_steps=12", "batch_size=8", "lr=3e-3", "log_every=4", "save_every=12", "eval_every=0",
                     "eval_batches=1", *STUDENT, "model.hidden_size=48")  # kd.head=false: the teacher's width
    assert result.returncode == 0, result.stderr[-3000:]
    train = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if '"loss"' in line]
    assert "voken" in train[0] and train[-1]["voken"] < train[0]["voken"]
    num_videos = len(json.loads((teacher_run / "data" / "meta.json").read_text())["splits"]["train"]["videos"])
    with safe_open(str(out / "checkpoints" / "step-12" / "model.safetensors"), "pt") as f:
        assert f.get_slice("voken_head.out.weight").get_shape()[0] >= num_videos  # one class per training clip
