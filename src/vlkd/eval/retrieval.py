"""Text-to-video retrieval: a teacher's caption queries and video embeddings, and metrics with a faiss
inner-product index (exact search)."""

from __future__ import annotations

from typing import Callable, Sequence

import faiss
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Subset

from vlkd.inference import infer
from vlkd.models.teacher import VideoTextTeacher

EVAL_BATCH = 32


def caption_query(text: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """q = mean over valid tokens of norm(h_t): q . v equals the token-mean cosine used for matching."""
    m = mask.unsqueeze(-1).to(text.dtype)
    return (F.normalize(text, dim=-1) * m).sum(1) / m.sum(1).clamp_min(1.0)


def encode_split(teacher: VideoTextTeacher, samples: Sequence[dict], collate: Callable, items: list[int],
                 device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """Caption queries and video embeddings of `items` (unmasked captions), aligned row by row."""
    def encode(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        text = teacher.encode_text(batch["input_ids"], batch["attention_mask"])
        return (caption_query(text, batch["attention_mask"]).float().cpu(),
                teacher.encode_video(batch["video"], batch["video_mask"]).float().cpu())

    queries, gallery = zip(*infer(encode, Subset(samples, items), collate, EVAL_BATCH, device))
    return torch.cat(queries).numpy(), torch.cat(gallery).numpy()


def ranks_of_truth(queries: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """1-based rank of gallery item i for query i, scoring by inner product.

    queries (Q, D) and gallery (Q, D) are aligned: query i's match is gallery row i. Ties rank the
    true item after every item scoring at least as high (pessimistic).
    """
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    gallery = np.ascontiguousarray(gallery, dtype=np.float32)
    index = faiss.IndexFlatIP(gallery.shape[1])
    index.add(gallery)
    scores, _ = index.search(queries, len(gallery))  # every query against all, sorted descending
    true = np.einsum("qd,qd->q", queries, gallery)
    return (scores >= true[:, None] - 1e-6).sum(1)


def retrieval_metrics(queries: np.ndarray, gallery: np.ndarray) -> dict[str, float]:
    """R@1, R@5, R@10 and median rank of caption -> video retrieval."""
    ranks = ranks_of_truth(queries, gallery)
    return {"r1": float((ranks <= 1).mean()), "r5": float((ranks <= 5).mean()), "r10": float((ranks <= 10).mean()),
            "median_rank": float(np.median(ranks)), "gallery_size": float(len(gallery))}
