"""Examples -> token ids for the model, and the padding collator used for training and prediction.

Items are small dicts of numpy arrays (unpadded); `PadCollate` pads each batch only to its longest
sequence, which on short-sentence tasks is several times faster than padding to `max_length`.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from transformers import PreTrainedTokenizerFast

from vlkd.data.tasks.spec import ChoiceExample, PairExample

Item = dict[str, Any]


def _ids(encoded: Any, i: int) -> tuple[np.ndarray, np.ndarray]:
    return (np.asarray(encoded["input_ids"][i], dtype=np.int32),
            np.asarray(encoded["token_type_ids"][i], dtype=np.int8))


def encode_pairs(examples: Sequence[PairExample], tokenizer: PreTrainedTokenizerFast, max_length: int,
                 batch: int = 2048) -> list[Item]:
    """`[CLS] a [SEP] (b [SEP])`, truncated longest-first to max_length; `labels` when labelled."""
    items: list[Item] = []
    for start in range(0, len(examples), batch):
        chunk = examples[start:start + batch]
        a = [e.text_a for e in chunk]
        b = [e.text_b or "" for e in chunk] if chunk[0].text_b is not None else None
        encoded = tokenizer(a, b, truncation=True, max_length=max_length, return_token_type_ids=True,
                            return_attention_mask=False)
        for i, example in enumerate(chunk):
            ids, types = _ids(encoded, i)
            item: Item = {"input_ids": ids, "token_type_ids": types}
            if example.label is not None:
                item["labels"] = example.label
            items.append(item)
    return items


def encode_choices(examples: Sequence[ChoiceExample], tokenizer: PreTrainedTokenizerFast, max_length: int,
                   batch: int = 512) -> list[Item]:
    """Each choice as `[CLS] context [SEP] ending [SEP]`; an item holds one array per choice."""
    items: list[Item] = []
    for start in range(0, len(examples), batch):
        chunk = examples[start:start + batch]
        contexts = [e.context for e in chunk for _ in e.endings]
        endings = [ending for e in chunk for ending in e.endings]
        encoded = tokenizer(contexts, endings, truncation=True, max_length=max_length, return_token_type_ids=True,
                            return_attention_mask=False)
        k = 0
        for example in chunk:
            pairs = [_ids(encoded, k + j) for j in range(len(example.endings))]
            k += len(example.endings)
            item: Item = {"input_ids": [p[0] for p in pairs], "token_type_ids": [p[1] for p in pairs]}
            if example.label is not None:
                item["labels"] = example.label
            items.append(item)
    return items


class PadCollate:
    """Pad a batch of items to its longest sequence; choices give (B, C, L), others (B, L)."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, items: list[Item], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        nested = isinstance(items[0]["input_ids"], list)
        ids = [s for it in items for s in it["input_ids"]] if nested else [it["input_ids"] for it in items]
        types = [s for it in items for s in it["token_type_ids"]] if nested else [it["token_type_ids"] for it in items]
        width = max(len(s) for s in ids)
        input_ids = np.full((len(ids), width), self.pad_id, dtype=np.int64)
        token_types = np.zeros((len(ids), width), dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for row, (s, t) in enumerate(zip(ids, types)):
            input_ids[row, :len(s)], token_types[row, :len(s)], mask[row, :len(s)] = s, t, 1
        shape = (len(items), -1, width) if nested else (len(items), width)
        batch = {"input_ids": torch.from_numpy(input_ids).view(shape),
                 "token_type_ids": torch.from_numpy(token_types).view(shape),
                 "attention_mask": torch.from_numpy(mask).view(shape)}
        for key in ("labels", "start_positions", "end_positions"):
            if key in items[0]:
                values = [it[key] for it in items]
                dtype = torch.float32 if isinstance(values[0], float) else torch.long
                batch[key] = torch.tensor(values, dtype=dtype)
        return batch
