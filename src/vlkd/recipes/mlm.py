"""Text-only BERT trained with masked language modelling on a token store: the paper's baseline BERT
and the backbone of the distillation student."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from transformers import BertForMaskedLM

from vlkd.config import TrainConfig
from vlkd.data.text.collate import BlockCollator
from vlkd.data.text.split import TextData, check_model_fits, split_train_valid
from vlkd.engine import Job
from vlkd.losses import mlm
from vlkd.models.bert import ModelConfig, build_masked_lm, encode, save_with_tokenizer


@dataclass
class Config(TrainConfig):
    task: str = "mlm"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: TextData = field(default_factory=TextData)


class MaskedLM(nn.Module):
    """BertForMaskedLM whose vocabulary head runs only at masked positions."""

    def __init__(self, model: BertForMaskedLM) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        hidden = encode(self.model, batch["input_ids"], batch.get("attention_mask"))
        loss = mlm(hidden, batch["labels"], self.model.cls)
        return {"loss": loss, "mlm": loss}


def eval_metrics(config: Config) -> list[str]:
    """What the engine's default evaluation logs for MaskedLM's losses, plus `eval_summary`'s perplexity."""
    return ["valid_loss", "valid_mlm", "valid_perplexity"]


def build(config: Config) -> Job:
    store, train, valid = split_train_valid(config.data)
    model = build_masked_lm(config.model)
    check_model_fits(model.config.vocab_size, model.config.max_position_embeddings, store)
    collate = BlockCollator(store.special_ids, store.vocab_size, config.data.mlm_probability)

    def save_final(module: nn.Module, path: Path) -> None:
        save_with_tokenizer(module.model, path, store.tokenizer_dir)

    def eval_summary(metrics: dict[str, float]) -> dict[str, float]:
        if "valid_mlm" in metrics:
            metrics["valid_perplexity"] = math.exp(min(metrics["valid_mlm"], 50.0))
        return metrics

    return Job(module=MaskedLM(model), train_data=train, collate=collate, save_final=save_final,
               valid_data=valid, eval_summary=eval_summary)
