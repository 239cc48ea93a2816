"""Token-store blocks -> masked-LM batches, shared by the MLM baseline and the distillation student so both
draw the same blocks and masks from the same (seed, micro-batch, rank)."""

from __future__ import annotations

import numpy as np
import torch

from vlkd.data.masking import mask_tokens


class BlockCollator:
    """Blocks -> `[CLS] block [SEP]` inputs with BERT masking (randomness from the given generator)."""

    def __init__(self, special_ids: dict[str, int], vocab_size: int, probability: float) -> None:
        self.cls_id, self.sep_id, self.mask_id = special_ids["cls"], special_ids["sep"], special_ids["mask"]
        self.vocab_size, self.probability = vocab_size, probability

    def __call__(self, blocks: list[np.ndarray], generator: torch.Generator) -> dict[str, torch.Tensor]:
        body = torch.from_numpy(np.stack(blocks).astype(np.int64))
        n = body.shape[0]
        ids = torch.cat([torch.full((n, 1), self.cls_id), body, torch.full((n, 1), self.sep_id)], dim=1)
        special = torch.zeros_like(ids, dtype=torch.bool)
        special[:, 0] = special[:, -1] = True
        masked, labels = mask_tokens(ids, special, mask_id=self.mask_id, vocab_size=self.vocab_size,
                                     probability=self.probability, generator=generator)
        return {"input_ids": masked, "labels": labels}
