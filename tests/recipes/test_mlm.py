"""The MLM recipe end to end through the CLI: training lowers the loss, the final model loads with
transformers, and a kill -9 followed by resume gives the same weights as an uninterrupted run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import AutoModelForMaskedLM, AutoTokenizer

from tests.conftest import kill_mid_run, run_cli

TINY = ["model.num_layers=1", "model.hidden_size=64", "model.num_heads=2", "model.intermediate_size=128",
        "model.max_position_embeddings=128", "progress=false"]


def test_train_lowers_loss_and_final_loads_with_transformers(token_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = run_cli("train", "mlm-tiny", f"data.train={token_store}", f"output_dir={out}", "max_steps=30",
                     "batch_size=16", "lr=2e-3", "warmup=3", "log_every=5", "save_every=15", "eval_every=15",
                     "eval_at_start=true", "eval_batches=4", *TINY)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [r["mlm"] for r in records if "mlm" in r]
    valid = [r["valid_perplexity"] for r in records if "valid_perplexity" in r]
    assert losses[-1] < losses[0] - 1.0, losses
    assert len(valid) == 3 and valid[-1] < valid[0] / 3, valid
    model = AutoModelForMaskedLM.from_pretrained(out / "final")
    tokenizer = AutoTokenizer.from_pretrained(out / "final")
    assert model.config.hidden_size == 64 and len(tokenizer) == 30522
    batch = tokenizer(["the capital of france is [MASK]."], return_tensors="pt")
    assert model(**batch).logits.shape[-1] == 30522
    saved = load_file(out / "checkpoints" / "step-30" / "model.safetensors")
    assert torch.equal(saved["model.bert.embeddings.word_embeddings.weight"],
                       model.bert.embeddings.word_embeddings.weight)


def _train_cmd(store: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "vlkd", "train", "mlm-tiny", f"data.train={store}", f"output_dir={out}",
            "max_steps=24", "batch_size=32", "save_every=8", "log_every=4", "eval_batches=2", *TINY, *extra]


def test_kill_9_then_resume_matches_uninterrupted_run(token_store: Path, tmp_path: Path) -> None:
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    straight = tmp_path / "straight"
    subprocess.run(_train_cmd(token_store, straight), check=True, env=env, capture_output=True)

    killed = tmp_path / "killed"
    kill_mid_run(_train_cmd(token_store, killed), killed / "checkpoints" / "step-8" / "trainer_state.json")

    resumed = subprocess.run(_train_cmd(token_store, killed, "resume=true"), env=env, capture_output=True,
                             text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stderr
    a = load_file(straight / "final" / "model.safetensors")
    b = load_file(killed / "final" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key
    records = [json.loads(line) for line in (killed / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if "loss" in r]
    assert steps == [4, 8, 12, 16, 20, 24]  # no duplicated log lines after resume


def test_bad_training_input_is_one_line_exit_2(token_store: Path, tmp_path: Path) -> None:
    cases = [
        (["data.train=" + str(tmp_path / "nope")], "nope"),
        (["data.train=" + str(token_store), "learning_rate=3"], "unknown config key 'learning_rate'"),
        (["data.train=" + str(token_store), "model.vocab_size=100"], "mismatched vocab"),
        (["data.train="], "'data.train' is required"),
    ]
    for overrides, expected in cases:
        out = tmp_path / f"run{len(expected)}"
        result = run_cli("train", "mlm-tiny", f"output_dir={out}", *overrides)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("vlkd: error:") and expected in lines[0], result.stderr
        assert not out.exists()


def test_truncated_checkpoints_on_resume_are_named_and_none_intact_is_exit_2(token_store: Path,
                                                                            tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["train", "mlm-tiny", f"data.train={token_store}", f"output_dir={out}", "batch_size=8", "save_every=2",
            "log_every=2", "eval_batches=1", *TINY]
    assert run_cli(*args, "max_steps=4").returncode == 0
    for step in (2, 4):  # every checkpoint truncated: resume has nothing intact to fall back to
        weights = out / "checkpoints" / f"step-{step}" / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:1000])
    result = run_cli(*args, "max_steps=6", "resume=true")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert f"vlkd: checkpoint step-4 is unusable: {weights}: checkpoint file is truncated or altered (1000 bytes, " \
           "expected" in result.stderr
    assert lines[-1].startswith(f"vlkd: error: {out / 'checkpoints'}: no intact checkpoint to resume from "
                                "(step-4, step-2 unusable")
    assert len([line for line in lines if line.startswith("vlkd: error")]) == 1
    assert not (out / "checkpoints" / "step-6").exists()
