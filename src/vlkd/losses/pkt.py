"""Probabilistic knowledge transfer (docs/losses.md, `pkt`; Passalis & Tefas, ECCV 2018): match the
conditional distributions that a cosine kernel induces over the batch in the student's and the teacher's
spaces. Only similarities enter, so the two widths may differ and no projection is needed."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from vlkd.losses.registry import register_loss


def _points(x: torch.Tensor, valid: torch.Tensor, points: str) -> torch.Tensor:
    """The batch's points (n, H): every valid token, or each sequence's masked mean of its valid tokens."""
    if points == "tokens":
        return x[valid]
    if points == "sequences":
        # zero the masked tokens first, so a garbage tail cannot leak non-finite values into the means
        m = valid.to(x.dtype).unsqueeze(-1)
        sums, counts = x.masked_fill(~valid.unsqueeze(-1), 0.0).sum(1), m.sum(1)
        has = valid.any(1)
        return sums[has] / counts[has]
    raise ValueError(f"points must be 'tokens' or 'sequences', got {points!r}")


def _conditional(x: torch.Tensor) -> torch.Tensor:
    """p(j | i) = K(x_i, x_j) / sum_{k != i} K(x_i, x_k) with K = (cos + 1) / 2; the diagonal is 0."""
    u = F.normalize(x, dim=-1)
    kernel = (u @ u.T + 1.0) / 2.0
    kernel = kernel.masked_fill(torch.eye(len(x), dtype=torch.bool, device=x.device), 0.0)
    return kernel / kernel.sum(1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)


@register_loss("pkt", kind="tokens")
def pkt(
    student: torch.Tensor,
    teacher: torch.Tensor,
    mask: torch.Tensor | None = None,
    points: Literal["tokens", "sequences"] = "tokens",
    eps: float = 1e-7,
) -> torch.Tensor:
    """KL(teacher || student) between the cosine-kernel conditional distributions over the batch's points.

    student (B, L, H_s), teacher (B, L, H_t), any widths; mask (B, L) or None. Points: every valid token of
    the batch (points="tokens") or each sequence's masked mean (points="sequences", the paper's per-sample
    features). With K(a, b) = (cos(a, b) + 1) / 2 and p(j | i) = K(x_i, x_j) / sum_{k != i} K(x_i, x_k):
    mean over anchors i of sum_{j != i} p_t(j|i) log((p_t(j|i) + eps) / (p_s(j|i) + eps)).
    Fewer than two points: 0.
    """
    valid = torch.ones(student.shape[:2], dtype=torch.bool, device=student.device) if mask is None else mask.bool()
    s, t = _points(student, valid, points), _points(teacher, valid, points)
    if len(s) < 2:
        return student.sum() * 0.0  # no other point to distribute over; keeps the graph
    p_s, p_t = _conditional(s), _conditional(t)
    kl = p_t * torch.log((p_t + eps) / (p_s + eps))  # 0 on the diagonal, where both are 0
    return kl.sum(1).mean()
