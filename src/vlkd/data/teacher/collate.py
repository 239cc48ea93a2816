"""Teacher samples -> model batches: padded `[CLS] caption [SEP]` (masked for MLM) and padded video steps."""

from __future__ import annotations

import torch

from vlkd.data.masking import mask_tokens


class TeacherCollator:
    """Samples -> padded `[CLS] caption [SEP]` (masked for MLM) + padded video steps with masks."""

    def __init__(self, special_ids: dict[str, int], vocab_size: int, probability: float) -> None:
        self.special, self.vocab_size, self.probability = special_ids, vocab_size, probability

    def __call__(self, items: list[dict], generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        n = len(items)
        text_len = max(len(it["tokens"]) for it in items) + 2
        ids = torch.full((n, text_len), self.special["pad"], dtype=torch.long)
        attention = torch.zeros(n, text_len, dtype=torch.long)
        steps = max(len(it["steps"]) for it in items)
        video = torch.zeros(n, steps, items[0]["steps"].shape[1])
        video_mask = torch.zeros(n, steps, dtype=torch.long)
        for i, it in enumerate(items):
            k = len(it["tokens"])
            ids[i, 0], ids[i, 1:k + 1], ids[i, k + 1] = self.special["cls"], torch.from_numpy(it["tokens"]), \
                self.special["sep"]
            attention[i, :k + 2] = 1
            video[i, :len(it["steps"])] = torch.from_numpy(it["steps"])
            video_mask[i, :len(it["steps"])] = 1
        batch = {"attention_mask": attention, "video": video, "video_mask": video_mask,
                 "video_index": torch.tensor([it["video"] for it in items])}
        if generator is None:  # retrieval: the unmasked caption
            batch["input_ids"] = ids
            return batch
        special = (ids == self.special["cls"]) | (ids == self.special["sep"]) | (attention == 0)
        batch["input_ids"], batch["labels"] = mask_tokens(ids, special, mask_id=self.special["mask"],
                                                          vocab_size=self.vocab_size, probability=self.probability,
                                                          generator=generator)
        return batch
