"""Multi-kernel Gaussian MMD between student and teacher token features (docs/losses.md, `mmd_rbf`):
the MK-MMD of Long et al. 2015, which the reference's history also carried."""

from __future__ import annotations

import torch

from vlkd.losses.registry import register_loss


@register_loss("mmd_rbf", kind="tokens", aligns=True)
def mmd_rbf(
    student: torch.Tensor,
    teacher: torch.Tensor,
    mask: torch.Tensor | None = None,
    kernels: int = 5,
    multiplier: float = 2.0,
) -> torch.Tensor:
    """Biased squared MMD with a sum of Gaussian kernels between the student's and the teacher's valid tokens
    of each sequence, averaged over the sequences.

    student, teacher (B, L, H) of the same width (the student's KD head projects); mask (B, L) or None.
    Per sequence with n valid tokens X (n, H), Y (n, H): Z = [X; Y], D its pairwise squared distances,
    base bandwidth s = sum(D) / (m^2 - m), m = 2n, without gradient (a data statistic, not a target);
    K = sum_k exp(-D / (s * multiplier^(k - kernels//2))), k = 0..kernels-1;
    MMD^2 = mean(K_XX) + mean(K_YY) - 2 mean(K_XY), means over all n x n pairs (diagonals included).
    Variable lengths are handled with masked sums and per-sequence counts (no loop over the batch); a
    sequence without valid tokens has no MMD and is left out of the mean (0 if none has any).
    """
    if student.shape[-1] != teacher.shape[-1]:
        raise ValueError(f"student width {student.shape[-1]} != teacher width {teacher.shape[-1]}")
    b, l, _ = student.shape
    valid = torch.ones(b, l, dtype=torch.bool, device=student.device) if mask is None else mask.bool()
    # zero the masked tokens first, so a garbage tail cannot leak non-finite values through the matmul
    z = torch.cat([student, teacher], 1).masked_fill(~valid.repeat(1, 2).unsqueeze(-1), 0.0)  # (B, 2L, H)
    sq = z.pow(2).sum(-1)
    d = (sq.unsqueeze(2) + sq.unsqueeze(1) - 2 * z @ z.transpose(1, 2)).clamp_min(0.0)  # (B, 2L, 2L)
    zv = valid.repeat(1, 2).to(d.dtype)
    pairs = zv.unsqueeze(2) * zv.unsqueeze(1)  # 1 where both tokens are valid
    n = valid.sum(1).to(d.dtype)  # valid tokens per sequence
    m = 2 * n
    with torch.no_grad():
        base = (d * pairs).sum((1, 2)) / (m * m - m).clamp_min(1.0)
        # identical tokens everywhere give D = 0 = s: any positive bandwidth then gives exp(0) = 1
        base = base.clamp_min(torch.finfo(d.dtype).tiny)
    k = torch.zeros_like(d)
    for i in range(kernels):
        bandwidth = base * multiplier ** (i - kernels // 2)
        k = k + torch.exp(-d / bandwidth.view(b, 1, 1))
    k = k * pairs
    k_xx, k_yy, k_xy = k[:, :l, :l].sum((1, 2)), k[:, l:, l:].sum((1, 2)), k[:, :l, l:].sum((1, 2))
    per_sequence = (k_xx + k_yy - 2 * k_xy) / (n * n).clamp_min(1.0)
    has_tokens = n > 0
    return (per_sequence * has_tokens).sum() / has_tokens.sum().clamp_min(1)
