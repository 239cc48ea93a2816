"""Video-text matching losses for the VidLanKD teacher (docs/losses.md): `paired_hinge`, `infonce`."""

from __future__ import annotations

from typing import Literal

import torch
import torch.distributed as dist
import torch.nn.functional as F

from vlkd.losses.registry import register_loss


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `values` (B, L, ...) over the positions where mask (B, L) is 1, per sequence."""
    m = mask.to(values.dtype).reshape(*mask.shape, *([1] * (values.dim() - 2)))
    return (values * m).sum(1) / m.sum(1).clamp_min(1.0)


@register_loss("paired_hinge", kind="video_text")
def paired_hinge(
    text: torch.Tensor,
    video: torch.Tensor,
    mask: torch.Tensor,
    margin: float = 1.0,
    negatives: Literal["halfswap", "all"] = "halfswap",
    text_negatives: bool = False,
) -> torch.Tensor:
    """Token-level hinge between each caption token and its video vs. negative videos.

    text (B, L, H) token features, video (B, H) embeddings (both L2-normalised here), mask (B, L) 1 for
    valid tokens. For valid token t of sentence i and negative video j:
    `max(0, margin - s(h_it, v_i) + s(h_it, v_j))`, averaged over all valid tokens of the batch (and over
    the negatives when there are several). negatives="halfswap" (the reference; B even): j = (i + B/2) mod B;
    "all": every j != i. `text_negatives` adds the text side: for video i and negative sentence j, the
    sentence scores are token means, `max(0, margin - mean_t s(h_it, v_i) + mean_t s(h_jt, v_i))`.
    """
    b = text.shape[0]
    t = F.normalize(text, dim=-1)
    v = F.normalize(video, dim=-1)
    sim = torch.einsum("blh,ch->blc", t, v)  # (B, L, B): token of sentence b vs video c
    idx = torch.arange(b, device=text.device)
    pos = sim[idx, :, idx]  # (B, L)
    m = mask.to(sim.dtype)
    if negatives == "halfswap":
        if b % 2:
            raise ValueError(f"negatives='halfswap' needs an even batch, got {b}")
        neg = sim[idx, :, (idx + b // 2) % b]
        hinge = (margin - pos + neg).clamp_min(0)
        neg_pairs = torch.stack([idx, (idx + b // 2) % b], 1)
    elif negatives == "all":
        off = ~torch.eye(b, dtype=torch.bool, device=text.device)  # (B, B): [i, j] with j != i
        hinge = ((margin - pos.unsqueeze(-1) + sim).clamp_min(0) * off.unsqueeze(1)).sum(-1) / max(b - 1, 1)
        neg_pairs = off.nonzero()
    else:
        raise ValueError(f"negatives must be 'halfswap' or 'all', got {negatives!r}")
    loss = (hinge * m).sum() / m.sum().clamp_min(1.0)
    if text_negatives:
        sentence = _masked_mean(sim, mask)  # (B, B): sentence i vs video c, token-mean similarity
        i, j = neg_pairs[:, 0], neg_pairs[:, 1]
        loss = loss + (margin - sentence[i, i] + sentence[j, i]).clamp_min(0).mean()
    return loss


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate `x` from every process along dim 0, differentiably.

    Every process then computes the loss over the whole gathered batch; the gather's backward sums each
    process's gradient into the local rows (world_size x the single-process gradient), and DDP's gradient
    averaging divides by world_size: the update equals the single-process one on the combined batch.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x.contiguous()), 0)


@register_loss("infonce", kind="video_text")
def infonce(
    text: torch.Tensor,
    video: torch.Tensor,
    mask: torch.Tensor,
    temperature: float = 0.07,
    similarity: Literal["sentence", "token_mean"] = "sentence",
    gather: bool = True,
) -> torch.Tensor:
    """Symmetric InfoNCE between captions and videos, negatives from the whole (gathered) batch.

    similarity="sentence": the caption is the L2-normalised masked mean of its token features;
    "token_mean": s(i, j) = mean over valid tokens t of cos(h_it, v_j). With `gather`, negatives come from
    every process (the local rows keep their gradients).
    """
    v = F.normalize(video, dim=-1)
    t = F.normalize(text, dim=-1)
    m = mask.to(t.dtype)
    if gather:
        v, t, m = gather_with_grad(v), gather_with_grad(t), gather_with_grad(m)
    if similarity == "sentence":
        sentence = F.normalize(_masked_mean(t, m), dim=-1)
        logits = sentence @ v.T
    elif similarity == "token_mean":
        logits = _masked_mean(torch.einsum("blh,ch->blc", t, v), m)
    else:
        raise ValueError(f"similarity must be 'sentence' or 'token_mean', got {similarity!r}")
    logits = logits / temperature
    target = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
