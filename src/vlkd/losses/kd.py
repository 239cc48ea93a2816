"""Knowledge-distillation losses between a student and a teacher (docs/losses.md): `soft_kl`, `nst`, and
NST's compact exact form from the teacher's Gram matrix (docs/losses.md): `teacher_gram`, `pack_upper`,
`unpack_upper`, `nst_gram`."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vlkd.losses.registry import full_precision, register_loss


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

    Computed with whichever Gram matrices are smaller: the channel x channel products (H x H, as the
    definition reads) or, since sum_ab (s_a . t_b)^2 = <S^T S, T^T T>_F, the position x position ones
    (L x L; 6x fewer multiply-adds at L=128, H=512). Same value, up to rounding.
    """
    s = _channels(student, mask)  # (B, H_s, L)
    t = _channels(teacher, mask)  # (B, H_t, L)
    h_s, h_t, length = s.shape[1], t.shape[1], s.shape[2]
    if length < max(h_s, h_t):
        a, g = s.transpose(1, 2) @ s, t.transpose(1, 2) @ t  # (B, L, L)
        ss, tt, st = a.pow(2).sum((1, 2)) / h_s**2, g.pow(2).sum((1, 2)) / h_t**2, (a * g).sum((1, 2)) / (h_s * h_t)
    else:
        ss = (s @ s.transpose(1, 2)).pow(2).mean((1, 2))
        tt = (t @ t.transpose(1, 2)).pow(2).mean((1, 2))
        st = (s @ t.transpose(1, 2)).pow(2).mean((1, 2))
    return (ss + tt - 2 * st).mean()


def _channels(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """(B, L, H) -> (B, H, L): masked positions zeroed, each channel L2-normalised over positions (as `nst`)."""
    if mask is not None:
        x = x * mask.to(x.dtype).unsqueeze(-1)
    return F.normalize(x.transpose(1, 2), dim=-1)


@full_precision
def teacher_gram(teacher: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """G = T^T T (B, L, L) for T the teacher's channel-normalised (H_t, L) matrix, the masked positions zeroed.

    The teacher enters NST only through G, so a cache can store G (its upper triangle) instead of the
    (L, H_t) targets: 12x smaller at L=128, H_t=768.
    """
    t = _channels(teacher, mask)
    return t.transpose(1, 2) @ t


def pack_upper(gram: torch.Tensor) -> torch.Tensor:
    """The upper triangle (diagonal included) of symmetric (B, L, L) matrices, row by row: (B, L(L+1)/2)."""
    i, j = torch.triu_indices(gram.shape[-1], gram.shape[-1], device=gram.device)
    return gram[:, i, j]


def unpack_upper(packed: torch.Tensor, length: int) -> torch.Tensor:
    """The inverse of `pack_upper`: (B, L(L+1)/2) -> the symmetric (B, L, L)."""
    if packed.shape[-1] != length * (length + 1) // 2:
        raise ValueError(f"packed width {packed.shape[-1]} is not L(L+1)/2 for L={length}")
    i, j = torch.triu_indices(length, length, device=packed.device)
    out = packed.new_zeros(packed.shape[0], length, length)
    out[:, i, j] = packed
    out[:, j, i] = packed
    return out


@full_precision
@register_loss("nst_gram", kind="gram")
def nst_gram(
    student: torch.Tensor, gram: torch.Tensor, mask: torch.Tensor | None = None, teacher_width: int = 0
) -> torch.Tensor:
    """`nst(student, teacher, mask)` computed from the teacher's Gram matrix `teacher_gram(teacher, mask)`.

    With S the student's channel-normalised (H_s, L) matrix and A = S^T S: mean_ab k(s_a, s_b) =
    ||A||_F^2 / H_s^2, mean_ab k(s_a, t_b) = <A, G>_F / (H_s H_t), mean_ab k(t_a, t_b) = ||G||_F^2 / H_t^2.
    `teacher_width` (H_t) is not recoverable from G (an all-zero channel adds nothing to it), hence passed;
    `mask` must be the one G was built with (None for none).
    """
    if teacher_width < 1:
        raise ValueError(f"nst_gram needs teacher_width, the teacher's hidden size (got {teacher_width})")
    s = _channels(student, mask)
    a = s.transpose(1, 2) @ s  # (B, L, L)
    h_s, h_t = s.shape[1], teacher_width
    ss = a.pow(2).sum((1, 2)) / h_s**2
    st = (a * gram).sum((1, 2)) / (h_s * h_t)
    tt = gram.pow(2).sum((1, 2)) / h_t**2
    return (ss + tt - 2 * st).mean()
