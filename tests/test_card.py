"""Model cards: every final/ (and best/) of a finished run gets a README.md in the Hugging Face model-card
layout whose numbers are exactly those of the run's results files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from transformers import BertConfig, BertModel

from vlkd.card import write_model_cards
from vlkd.cli import main
from vlkd.data.bundled import bundled_path
from vlkd.errors import VlkdError
from vlkd.rundir import read_metrics

FIXTURES = Path(__file__).parent / "fixtures" / "finetune"


def card_numbers(path: Path) -> tuple[dict, dict, str]:
    """(front matter, {metric: value} of the evaluation table, text) of a card."""
    text = path.read_text(encoding="utf-8")
    _, front, body = text.split("---\n", 2)
    rows = body.split("| metric | value |\n|---|---|\n", 1)[1].split("\n\n", 1)[0] if "| metric |" in body else ""
    table = {cells[1].strip(): json.loads(cells[2]) for cells in (row.split("|") for row in rows.splitlines())}
    return yaml.safe_load(front), table, body


def numbers(record: dict) -> dict:
    return {k: v for k, v in record.items() if isinstance(v, (int, float)) and k != "step"}


def test_an_mlm_run_gets_a_card_with_its_results(token_store: Path, tmp_path: Path) -> None:
    run = tmp_path / "mlm"
    assert main(["train", "mlm-tiny", f"data.train={token_store}", f"output_dir={run}", "max_steps=2",
                 "batch_size=4", "log_every=1", "eval_every=2", "eval_batches=1", "save_every=2", "progress=false",
                 "model.num_layers=1", "model.hidden_size=32", "model.num_heads=2", "model.intermediate_size=64",
                 "model.max_position_embeddings=128"]) == 0
    front, table, body = card_numbers(run / "final" / "README.md")
    assert front == {"library_name": "transformers", "pipeline_tag": "fill-mask", "tags": ["vlkd", "mlm"]}
    results = json.loads((run / "results.json").read_text())
    assert table == numbers(results) and "valid_perplexity" in table
    assert "- recipe: `task: mlm` (vlkd)" in body and "- steps: 2 (batch size 4" in body
    assert "AutoModelForMaskedLM.from_pretrained(PATH)" in body
    assert not (run / "best").exists()


def test_a_finetuned_run_gets_cards_for_final_and_best(tmp_path: Path) -> None:
    model = tmp_path / "tiny-bert"
    torch.manual_seed(0)
    BertModel(BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)).save_pretrained(model)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        shutil.copy2(bundled_path("minilm") / name, model / name)
    run = tmp_path / "rte"
    assert main(["finetune", "--task", "rte", "--data-dir", str(FIXTURES / "RTE"), "--model", str(model), "--out",
                 str(run), "max_steps=3", "batch_size=4", "eval_every=1", "select_best=valid_accuracy",
                 "progress=false", "data.eval_batch_size=3"]) == 0
    _, table, body = card_numbers(run / "final" / "README.md")
    expected = numbers(json.loads((run / "results.json").read_text()))
    expected |= numbers(json.loads((run / "eval_results.json").read_text()))
    assert table == expected and "accuracy" in table
    selection = json.loads((run / "best" / "selection.json").read_text())
    _, best, body = card_numbers(run / "best" / "README.md")
    record = [r for r in read_metrics(run / "metrics.jsonl") if r["step"] == selection["step"] and "valid_accuracy" in r][-1]
    assert best == numbers(record) and f"chosen at step {selection['step']}" in body


def test_a_run_without_config_is_refused(tmp_path: Path) -> None:
    (tmp_path / "final").mkdir()
    with pytest.raises(VlkdError, match="config.yaml"):
        write_model_cards(tmp_path)
