"""The vokenization baseline (docs/losses.md, `voken`): each token's label is the id of its nearest
video ("voken") by the teacher's token feature, and the student predicts it with a classification head.
The discrete label is the approximation NST/CRD avoid; comparing them is the paper's point."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vlkd.losses.registry import full_precision, register_loss


@torch.no_grad()
@full_precision
def assign_vokens(token_features: torch.Tensor, voken_bank: torch.Tensor) -> torch.Tensor:
    """The voken of every token: argmax over the bank of the inner product, exact (no approximate search).

    token_features (B, L, H): the teacher's token features; voken_bank (V, H): the teacher's video
    embeddings of its training videos. Both are expected L2-normalised, so the inner product is the cosine
    (faiss's IndexFlatIP search, as a matmul). Returns (B, L) int64 ids in [0, V); ties go to the lowest id.
    """
    return (token_features @ voken_bank.T).argmax(-1)


@register_loss("voken", kind="vokens")
def voken(
    student_logits: torch.Tensor, teacher_vokens: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Cross-entropy of the student's voken logits (B, L, V) against the teacher's voken ids (B, L),
    averaged over the valid tokens of the batch (mask 1; None: all). Logits at masked positions are never
    read, so a garbage tail cannot make the loss non-finite. 0 when no token is valid.
    """
    targets = teacher_vokens.long()
    if mask is None:
        return F.cross_entropy(student_logits.flatten(0, -2), targets.flatten())
    m = mask.bool()
    if not m.any():
        return student_logits.sum() * 0.0
    return F.cross_entropy(student_logits[m], targets[m])
