"""Prepared VideoQA questions (`vlkd prepare videoqa`) + HCRN features -> model batches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from vlkd.data.videoqa.features import HCRNFeatures
from vlkd.data.videoqa.prepare import load_split, load_vocab
from vlkd.errors import VlkdError


def load_questions(data_dir: str | Path, split: str, features: HCRNFeatures) -> list[dict[str, Any]]:
    """The split's questions, their token ids and labels inside the data's vocabularies; every video must
    have features (prepare with --features drops the rest)."""
    vocab = load_vocab(data_dir)
    items = load_split(data_dir, split, num_words=len(vocab["question_token_to_idx"]),
                       num_answers=len(vocab["answer_token_to_idx"]))
    if not items:
        raise VlkdError("has no questions", Path(data_dir) / f"{split}.jsonl")
    missing = features.missing(it["video_id"] for it in items)
    if missing:
        absent = set(missing)
        n = sum(1 for it in items if it["video_id"] in absent)
        shown = ", ".join(str(v) for v in missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise VlkdError(f"{len(missing)} video(s) of the {split} questions have no features ({shown}; {n} "
                        f"questions); run `vlkd prepare videoqa ... --features {features.paths[0].parent}` to "
                        "drop and count them", features.paths[0])
    return items


class VideoQACollator:
    """Questions -> padded ids (pad = <NULL> = 0), lengths, labels, and their videos' features.

    `drop_motion` (the ablation that shows what motion contributes) replaces every motion feature by the
    mean motion feature: a constant carries no information about the video, yet keeps DualVGR's
    multiplicative appearance x motion fusion open (zeros would shut out the appearance too)."""

    def __init__(self, features: HCRNFeatures, drop_motion: bool = False) -> None:
        self.features, self.drop_motion = features, drop_motion
        self.constant_motion = features.mean_motion() if drop_motion else None

    def __call__(self, items: list[dict[str, Any]], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        appearance, motion = self.features.read([it["video_id"] for it in items])
        if self.constant_motion is not None:
            motion = np.broadcast_to(self.constant_motion, motion.shape).copy()
        lengths = [max(len(it["tokens"]), 1) for it in items]  # an empty question is one <NULL> token
        question = torch.zeros(len(items), max(lengths), dtype=torch.long)
        for i, it in enumerate(items):
            question[i, :len(it["tokens"])] = torch.as_tensor(it["tokens"], dtype=torch.long)
        return {"appearance": torch.from_numpy(appearance), "motion": torch.from_numpy(motion),
                "question": question, "question_len": torch.tensor(lengths),
                "labels": torch.tensor([it["label"] for it in items])}
