"""Text-only BERT trained with masked language modelling on a token store: the paper's baseline BERT
and the backbone of the distillation student."""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Subset
from transformers import BertForMaskedLM

from vlkd.config import TrainConfig
from vlkd.data.text.collate import BlockCollator
from vlkd.data.text.store import TokenStore
from vlkd.engine import Job
from vlkd.errors import VlkdError
from vlkd.losses import mlm
from vlkd.models.bert import ModelConfig, build_masked_lm, encode


@dataclass
class MLMData:
    train: str = ""  # token store directory (`vlkd prepare text`)
    valid: str | None = None  # a separate token store; else the last `valid_blocks` of train are held out
    valid_blocks: int = 512
    mlm_probability: float = 0.15


@dataclass
class Config(TrainConfig):
    task: str = "mlm"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: MLMData = field(default_factory=MLMData)


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


def open_store(path: str, key: str) -> TokenStore:
    if not path:
        raise VlkdError(f"config key {key!r} is required: a token store directory from `vlkd prepare text`")
    return TokenStore(path)


def split_train_valid(config: Config) -> tuple[TokenStore, Subset | TokenStore, Subset | TokenStore]:
    """The training blocks and a held-out validation set (a separate store, or the tail of train)."""
    store = open_store(config.data.train, "data.train")
    if config.data.valid:
        valid = open_store(config.data.valid, "data.valid")
        if valid.vocab_sha != store.vocab_sha:
            raise VlkdError(f"vocabulary differs from the training store's ({config.data.train})", config.data.valid)
        return store, store, valid
    held = min(config.data.valid_blocks, len(store) // 10)
    return store, Subset(store, range(len(store) - held)), Subset(store, range(len(store) - held, len(store)))


def check_model_fits(model: BertForMaskedLM, store: TokenStore) -> None:
    if model.config.vocab_size < store.vocab_size:
        raise VlkdError(f"mismatched vocab: model vocab_size {model.config.vocab_size} < token store vocab_size "
                        f"{store.vocab_size}", store.path)
    if store.block_size + 2 > model.config.max_position_embeddings:
        raise VlkdError(f"block_size {store.block_size} + 2 exceeds the model's max_position_embeddings "
                        f"{model.config.max_position_embeddings}", store.path)


def build(config: Config) -> Job:
    store, train, valid = split_train_valid(config)
    model = build_masked_lm(config.model)
    check_model_fits(model, store)
    collate = BlockCollator(store.special_ids, store.vocab_size, config.data.mlm_probability)

    def save_final(module: nn.Module, path: Path) -> None:
        module.model.save_pretrained(path)
        for file in sorted(Path(store.tokenizer_dir).iterdir()):
            shutil.copy2(file, path / file.name)

    def eval_summary(metrics: dict[str, float]) -> dict[str, float]:
        if "valid_mlm" in metrics:
            metrics["valid_perplexity"] = math.exp(min(metrics["valid_mlm"], 50.0))
        return metrics

    return Job(module=MaskedLM(model), train_data=train, collate=collate, save_final=save_final,
               valid_data=valid, eval_summary=eval_summary)
