"""BERT's masking for masked language modelling: which tokens carry the loss, and what the model sees there."""

from __future__ import annotations

import torch

IGNORE_INDEX = -100  # torch's cross-entropy default; labels at unselected positions


def mask_tokens(
    input_ids: torch.Tensor,
    special_mask: torch.Tensor,
    *,
    mask_id: int,
    vocab_size: int,
    probability: float = 0.15,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Select each non-special token with `probability`; of those, 80% -> [MASK], 10% -> a random token,
    10% unchanged. Returns (masked input ids, labels with IGNORE_INDEX at unselected positions).

    If no token is selected at all (tiny batches), one valid position is selected so the loss is defined.
    """
    probs = torch.full(input_ids.shape, probability)
    probs.masked_fill_(special_mask, 0.0)
    selected = torch.bernoulli(probs, generator=generator).bool()
    if not selected.any():
        candidates = (~special_mask).flatten().nonzero().flatten()
        pick = candidates[torch.randint(len(candidates), (1,), generator=generator)]
        selected.view(-1)[pick] = True
    labels = torch.where(selected, input_ids, torch.full_like(input_ids, IGNORE_INDEX))

    draw = torch.rand(input_ids.shape, generator=generator)
    to_mask = selected & (draw < 0.8)
    to_random = selected & (draw >= 0.8) & (draw < 0.9)
    random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator, dtype=input_ids.dtype)
    masked = input_ids.clone()
    masked[to_mask] = mask_id
    masked[to_random] = random_ids[to_random]
    return masked, labels
