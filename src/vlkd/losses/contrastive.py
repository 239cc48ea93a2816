"""Token-level contrastive distillation (docs/losses.md, `ntxent`): SimCLR's NT-Xent between student and
teacher at each position, across the batch (the reference's released "CRD")."""

from __future__ import annotations

import torch

from vlkd.losses.registry import register_loss


@register_loss("ntxent", kind="tokens", aligns=True)
def ntxent(
    student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor | None = None, temperature: float = 0.5
) -> torch.Tensor:
    """NT-Xent per position: at position l, the 2B vectors {s_bl} and {t_bl}; anchor s_bl has the positive
    t_bl and the other vectors at l (both sides, itself excluded) as negatives, and likewise anchor t_bl.

    student, teacher (B, L, H), expected L2-normalised by the caller (the dot product is the cosine; they
    are deliberately not re-normalised here). Loss per anchor: -log(exp(a.p/tau) / sum_{c != a} exp(a.c/tau)).
    Without a mask every (b, l) is valid; with a mask (B, L) the anchors are the valid (b, l) (as s and as t)
    and their candidates the valid vectors at l. The cross-entropy is averaged over all valid anchors of
    the batch (each anchor weighs the same; without a mask this is also the mean over positions).
    """
    b, l, _ = student.shape
    valid = torch.ones(b, l, dtype=torch.bool, device=student.device) if mask is None else mask.bool()
    # zero the masked vectors, so a garbage tail cannot leak non-finite values through the matmul
    x = torch.cat([student, teacher], 0).masked_fill(~valid.repeat(2, 1).unsqueeze(-1), 0.0)  # (2B, L, H)
    x = x.transpose(0, 1)  # (L, 2B, H)
    logits = x @ x.transpose(1, 2) / temperature  # (L, 2B, 2B): anchor x candidate at each position
    v = valid.T.repeat(1, 2)  # (L, 2B)
    rows = torch.arange(2 * b, device=student.device)
    not_self = rows.unsqueeze(1) != rows.unsqueeze(0)
    # invalid anchors see every other vector: keeps their (unused) rows finite
    allowed = not_self & (v.unsqueeze(1) | ~v.unsqueeze(2))
    logits = logits.masked_fill(~allowed, float("-inf"))
    positive = logits[:, rows, (rows + b) % (2 * b)]  # (L, 2B)
    ce = torch.logsumexp(logits, -1) - positive
    return torch.where(v, ce, 0.0).sum() / v.sum().clamp_min(1)
