"""Token-wise hidden-state distillation (docs/losses.md): `hidden_mse`, `hidden_cos`.

The student's features are expected at the teacher's width already: the projection (when widths differ)
is the student's KD head, a learned part of the model, not of the loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vlkd.losses.registry import register_loss


def _check_widths(student: torch.Tensor, teacher: torch.Tensor) -> None:
    if student.shape[-1] != teacher.shape[-1]:
        raise ValueError(
            f"student width {student.shape[-1]} != teacher width {teacher.shape[-1]}: project the student "
            "to the teacher's width with its KD head first"
        )


def _token_mean(per_token: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of per-token values (B, L) over the valid tokens of the whole batch (0 if there are none)."""
    if mask is None:
        return per_token.mean()
    m = mask.bool()
    return torch.where(m, per_token, 0.0).sum() / m.sum().clamp_min(1)


@register_loss("hidden_mse", kind="tokens", aligns=True)
def hidden_mse(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error per element, averaged over the batch's valid tokens (mask 1) and the channels.

    student, teacher (B, L, H) of the same width H; mask (B, L) or None for all tokens.
    """
    _check_widths(student, teacher)
    return _token_mean((student - teacher).pow(2).mean(-1), mask)


@register_loss("hidden_cos", kind="tokens", aligns=True)
def hidden_cos(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over the batch's valid tokens of 1 - cos(s_bl, t_bl): matches directions, ignores norms.

    student, teacher (B, L, H) of the same width H; mask (B, L) or None for all tokens.
    """
    _check_widths(student, teacher)
    return _token_mean(1.0 - F.cosine_similarity(student, teacher, dim=-1), mask)
