"""Masked language modelling (docs/losses.md, `mlm`): a cross-entropy that computes vocabulary logits only
at the selected positions. The 80/10/10 masking that selects them is data preparation (`vlkd.data.masking`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vlkd.losses.registry import register_loss

IGNORE_INDEX = -100  # torch's cross-entropy default; labels at unselected positions


@register_loss("mlm", kind="masked_lm")
def mlm(hidden: torch.Tensor, labels: torch.Tensor, head: nn.Module) -> torch.Tensor:
    """Cross-entropy of `head` (hidden -> vocabulary logits) at the positions where labels != -100.

    hidden: (B, L, H); labels: (B, L). Gathering before the head skips the vocabulary projection at the
    ~85% of positions that carry no loss.
    """
    selected = labels != IGNORE_INDEX
    logits = head(hidden[selected])
    return F.cross_entropy(logits, labels[selected])
