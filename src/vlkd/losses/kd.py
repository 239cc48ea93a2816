"""Knowledge-distillation losses between a student and a teacher (DESIGN section 9): `soft_kl`, `nst`."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vlkd.losses.registry import register_loss


@register_loss("soft_kl", kind="logits")
def soft_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Classic logit KD: T^2 * KL(softmax(z_t/T) || softmax(z_s/T)), summed over the last dim and
    averaged over all leading positions. Logits (..., V) share the vocabulary / label set."""
    v = student_logits.shape[-1]
    log_q = F.log_softmax(student_logits.reshape(-1, v) / temperature, dim=-1)
    log_p = F.log_softmax(teacher_logits.reshape(-1, v) / temperature, dim=-1)
    return temperature**2 * F.kl_div(log_q, log_p, log_target=True, reduction="batchmean")


@register_loss("nst", kind="tokens")
def nst(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Neuron selectivity transfer: squared MMD, polynomial kernel k(x, y) = (x . y)^2, between the
    student's and the teacher's channel "distributions" over token positions.

    Inputs (B, L, H_s) and (B, L, H_t), already token-normalised; positions with mask 0 are zeroed. Each
    channel (a length-L vector) is L2-normalised over positions. Per sequence:
    mean_ab k(s_a, s_b) + mean_ab k(t_a, t_b) - 2 mean_ab k(s_a, t_b); mean over the batch. The reference
    drops the teacher-teacher constant (same gradient, different value); we keep it.
    """
    s, t = student, teacher
    if mask is not None:
        m = mask.to(s.dtype).unsqueeze(-1)
        s, t = s * m, t * m
    s = F.normalize(s.transpose(1, 2), dim=-1)  # (B, H_s, L)
    t = F.normalize(t.transpose(1, 2), dim=-1)  # (B, H_t, L)
    ss = (s @ s.transpose(1, 2)).pow(2).mean((1, 2))
    tt = (t @ t.transpose(1, 2)).pow(2).mean((1, 2))
    st = (s @ t.transpose(1, 2)).pow(2).mean((1, 2))
    return (ss + tt - 2 * st).mean()
