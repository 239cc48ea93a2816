"""BERT with a masked-LM head, built from a `ModelConfig`, weights compatible with HF `BertForMaskedLM`.

We use transformers' implementation (so `save_pretrained` output loads with `AutoModelForMaskedLM`) and
only change how the MLM head is applied: at masked positions only (see `vlkd.losses.mlm`).
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
from safetensors import SafetensorError
from transformers import BertConfig, BertForMaskedLM

from vlkd.config import bounded
from vlkd.errors import VlkdError
from vlkd.io import check_safetensors_dir, read_json
from vlkd.rundir import model_dir, resolve_model_dir


@dataclass
class ModelConfig:
    """A BERT encoder's size, or a local pretrained directory to start from (`init_from`). A config may
    name a preset instead (`model: bert-6L-512H`, from the package's configs/model/)."""

    PRESETS: ClassVar[str] = "model"

    hidden_size: int = bounded(128, ge=1)
    num_layers: int = bounded(2, ge=1)
    num_heads: int = bounded(2, ge=1)
    intermediate_size: int = bounded(512, ge=1)
    vocab_size: int = bounded(30522, ge=1)
    max_position_embeddings: int = bounded(512, ge=1)
    dropout: float = bounded(0.1, ge=0, lt=1)
    attention_dropout: float = bounded(0.1, ge=0, lt=1)
    init_from: str | None = None

    def check(self, prefix: str = "") -> None:
        if self.hidden_size % self.num_heads:
            raise VlkdError(f"config key '{prefix}hidden_size' ({self.hidden_size}) is not divisible by "
                            f"{prefix}num_heads ({self.num_heads})")



def bert_config(mc: ModelConfig) -> BertConfig:
    return BertConfig(
        vocab_size=mc.vocab_size,
        hidden_size=mc.hidden_size,
        num_hidden_layers=mc.num_layers,
        num_attention_heads=mc.num_heads,
        intermediate_size=mc.intermediate_size,
        max_position_embeddings=mc.max_position_embeddings,
        hidden_dropout_prob=mc.dropout,
        attention_probs_dropout_prob=mc.attention_dropout,
    )


def checkpoint_depth(path: str | Path) -> int | None:
    """num_hidden_layers of a save_pretrained directory (None when its config.json does not say)."""
    try:
        depth = read_json(Path(path) / "config.json").get("num_hidden_layers")
    except (VlkdError, AttributeError):  # AttributeError: a config.json that is not an object
        return None
    return depth if isinstance(depth, int) else None


def encoder_depth(mc: ModelConfig) -> int | None:
    """The number of layers `build_masked_lm(mc)` gives: num_layers, or the `init_from` checkpoint's
    (None when that cannot be read: building the model names the problem)."""
    if not mc.init_from:
        return mc.num_layers
    try:
        return checkpoint_depth(model_dir(mc.init_from, "config.json"))
    except VlkdError:
        return None


def build_masked_lm(mc: ModelConfig) -> BertForMaskedLM:
    """A fresh BERT of the configured size, or one loaded from a local `init_from` directory.

    A checkpoint without an MLM head (e.g. a sentence encoder) gets a freshly initialised head.
    """
    if mc.hidden_size % mc.num_heads:
        raise VlkdError(f"model.hidden_size {mc.hidden_size} is not divisible by model.num_heads {mc.num_heads}")
    if not mc.init_from:
        return BertForMaskedLM(bert_config(mc))
    path = Path(mc.init_from)
    if not (path / "config.json").is_file():
        try:  # a run directory: its best/ or final/
            path = resolve_model_dir(path, "config.json", key="model.init_from")
        except VlkdError:
            raise VlkdError("model.init_from: not a directory with config.json (or a run with best/ or final/)",
                            path) from None
    check_safetensors_dir(path)
    quiet = logging.getLogger("transformers.modeling_utils")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # a missing MLM head is expected for encoders; we say so ourselves
    try:
        model = BertForMaskedLM.from_pretrained(path, hidden_dropout_prob=mc.dropout,
                                                attention_probs_dropout_prob=mc.attention_dropout)
    except (OSError, ValueError, SafetensorError) as e:  # a truncated model.safetensors too
        where = path / "model.safetensors" if isinstance(e, SafetensorError) else path
        raise VlkdError(f"model.init_from: cannot load ({type(e).__name__}: {str(e).splitlines()[0]})",
                        where) from None
    finally:
        quiet.setLevel(level)
    return model


def encode(model: BertForMaskedLM, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """Final hidden states (B, L, H). Pass attention_mask=None for unpadded blocks (faster attention)."""
    return model.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def save_with_tokenizer(model: BertForMaskedLM, path: Path, tokenizer_dir: Path) -> None:
    """`save_pretrained` plus the tokenizer files, so `AutoModel`/`AutoTokenizer.from_pretrained(path)` work."""
    model.save_pretrained(path)
    for file in sorted(Path(tokenizer_dir).iterdir()):
        shutil.copy2(file, path / file.name)
