"""DualVGR's regularisers and the VideoQA feature distillation loss (docs/losses.md).

All take per-clip features (B, N, D): B videos, N clips, D channels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vlkd.losses.registry import register_loss


@register_loss("dualvgr_consistency", kind="clips")
def dualvgr_consistency(common_a: torch.Tensor, common_m: torch.Tensor) -> torch.Tensor:
    """L_com: the clip-by-clip similarity structure of the appearance and motion common features agree.

    Each input is centred over clips, L2-normalised over channels; C = X X^T (B, N, N);
    returns mean((C_a - C_m)^2) over all entries.
    """

    def gram(x: torch.Tensor) -> torch.Tensor:
        x = F.normalize(x - x.mean(1, keepdim=True), dim=-1)
        return x @ x.transpose(1, 2)

    return (gram(common_a) - gram(common_m)).pow(2).mean()


@register_loss("hsic", kind="clips")
def hsic(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """L_dep: sum over the batch of tr(R K1 R K2), K1 = x_b x_b^T, K2 = y_b y_b^T, R = I - 11^T/N.

    With R idempotent this equals sum_b <Xc Xc^T, Yc Yc^T> for clip-centred Xc, Yc, computed with
    batched (N, N) Gram matrices.
    """
    xc = x - x.mean(1, keepdim=True)
    yc = y - y.mean(1, keepdim=True)
    return ((xc @ xc.transpose(1, 2)) * (yc @ yc.transpose(1, 2))).sum()


@register_loss("feature_kl", kind="clips")
def feature_kl(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """sum over b, n of KL(softmax_D(F/t) || softmax_D(S/t)) / B, with no t^2 factor (as the reference).

    student: one of the student's per-clip features; teacher: the teacher's fused per-clip feature F.
    """
    log_p = F.log_softmax(teacher / temperature, dim=-1)
    log_q = F.log_softmax(student / temperature, dim=-1)
    return F.kl_div(log_q, log_p, log_target=True, reduction="sum") / teacher.shape[0]
