"""Token-store blocks -> masked-LM batches, shared by the MLM baseline and the distillation student so both
draw the same blocks and masks from the same (seed, micro-batch, rank)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from vlkd.data.masking import mask_tokens


class IndexedBlocks(Dataset):
    """Items (block index, block) for the blocks `indices` of a store: for losses that need each block's
    identity (CRD's memory banks, cached teacher targets). Position i draws the same block as
    `Subset(store, indices)[i]`, so the data order is the one `task: mlm` sees."""

    def __init__(self, store: Sequence[np.ndarray], indices: range) -> None:
        self.store, self.indices = store, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[int, np.ndarray]:
        index = self.indices[i]
        return index, self.store[index]


class BlockCollator:
    """Blocks -> `[CLS] block [SEP]` inputs with BERT masking (randomness from the given generator).

    Items are blocks, or (index, block) pairs from `IndexedBlocks` (the batch then carries `index`); the
    masking depends only on the blocks and the generator, so both forms give the same inputs and labels.
    """

    def __init__(self, special_ids: dict[str, int], vocab_size: int, probability: float) -> None:
        self.cls_id, self.sep_id, self.mask_id = special_ids["cls"], special_ids["sep"], special_ids["mask"]
        self.vocab_size, self.probability = vocab_size, probability

    def __call__(self, items: list[Any], generator: torch.Generator) -> dict[str, torch.Tensor]:
        indexed = isinstance(items[0], tuple)
        blocks = [item[1] for item in items] if indexed else items
        body = torch.from_numpy(np.stack(blocks).astype(np.int64))
        n = body.shape[0]
        ids = torch.cat([torch.full((n, 1), self.cls_id), body, torch.full((n, 1), self.sep_id)], dim=1)
        special = torch.zeros_like(ids, dtype=torch.bool)
        special[:, 0] = special[:, -1] = True
        masked, labels = mask_tokens(ids, special, mask_id=self.mask_id, vocab_size=self.vocab_size,
                                     probability=self.probability, generator=generator)
        batch = {"input_ids": masked, "labels": labels}
        if indexed:
            batch["index"] = torch.tensor([item[0] for item in items], dtype=torch.long)
        return batch
