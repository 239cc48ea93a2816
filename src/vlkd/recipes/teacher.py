"""VidLanKD stage 1: the video-language teacher, trained with MLM + video-text matching on prepared
HowTo100M samples (`vlkd prepare howto100m`). Total loss: the `matching:` terms (each weighted; composed
through the loss registry, any `video_text` loss: paired_hinge, infonce) + mlm_weight * MLM.

One text forward on the masked caption serves both losses. Evaluation on the held-out videos: MLM
perplexity, the matching loss, and caption -> clip retrieval (R@1/5/10, median rank) scored by the
matching similarity (mean over caption tokens of cos(token, video)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator
from torch import nn

from vlkd.config import TrainConfig, bounded
from vlkd.data.teacher.collate import TeacherCollator
from vlkd.data.teacher.howto100m import TeacherSamples
from vlkd.engine import Job
from vlkd.engine.batches import seeded_generator
from vlkd.errors import VlkdError
from vlkd.eval.retrieval import EVAL_BATCH, encode_split, retrieval_metrics
from vlkd.losses import LossTerm, LossTerms, check_terms, mlm
from vlkd.losses.terms import term_names
from vlkd.models.bert import ModelConfig, build_masked_lm
from vlkd.models.teacher import VideoTextTeacher, VideoTowerConfig, save_teacher



@dataclass
class TeacherData:
    path: str = ""  # a `vlkd prepare howto100m` output directory
    mlm_probability: float = bounded(0.15, gt=0, lt=1)
    eval_samples: int = bounded(1000, ge=1)  # held-out samples used for evaluation and retrieval


def reference_matching() -> list[LossTerm]:
    """The reference: token-level hinge against the half-swapped batch's videos, margin 1, weight 1."""
    return [LossTerm(loss="paired_hinge", student="text", teacher="video", name="match",
                     args={"margin": 1.0, "negatives": "halfswap"})]


@dataclass
class Config(TrainConfig):
    task: str = "teacher"
    model: ModelConfig = field(default_factory=ModelConfig)  # the text tower
    data: TeacherData = field(default_factory=TeacherData)
    video: VideoTowerConfig = field(default_factory=VideoTowerConfig)
    matching: list[LossTerm] = field(default_factory=reference_matching)  # text: token features; video: embeddings
    mlm_weight: float = bounded(1.0, ge=0)


class TeacherTask(nn.Module):
    def __init__(self, teacher: VideoTextTeacher, config: Config) -> None:
        super().__init__()
        self.teacher, self.config = teacher, config
        self.matching = LossTerms(config.matching)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        text = self.teacher.encode_text(batch["input_ids"], batch["attention_mask"])
        video = self.teacher.encode_video(batch["video"], batch["video_mask"])
        match, terms = self.matching({"text": text}, {"video": video}, mask=batch["attention_mask"])
        masked_lm = mlm(text, batch["labels"], self.teacher.text.cls)
        loss = match + self.config.mlm_weight * masked_lm
        return {"loss": loss, "match": match, "mlm": masked_lm, **{k: v for k, v in terms.items() if k != "match"}}


def weighted_terms(config: Config, outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The terms that sum to the loss, weighted (`Job.loss_terms`). `match` is already the weighted sum
    of the matching terms; with one term it is that term."""
    names = term_names(config.matching)
    if len(names) == 1:
        matching = {names[0]: outputs["match"]}
    else:
        matching = {name: term.weight * outputs[name] for name, term in zip(names, config.matching)}
    return {**matching, "mlm": config.mlm_weight * outputs["mlm"]}


def needs_even_batch(config: Config) -> bool:
    """paired_hinge's halfswap negatives pair sample i with i + B/2."""
    return any(t.loss == "paired_hinge" and t.args.get("negatives", "halfswap") == "halfswap" for t in config.matching)


def check(config: Config) -> None:
    """Config rules checked before any data is read."""
    check_terms(config.matching, "matching", kinds=("video_text",), student=("text",), teacher=("video",))
    if needs_even_batch(config) and (config.batch_size // config.grad_accum) % 2:
        raise VlkdError(f"paired_hinge with negatives=halfswap needs an even micro-batch; batch_size "
                        f"{config.batch_size} / grad_accum {config.grad_accum} is odd")


def eval_metrics(config: Config) -> list[str]:
    """What `evaluate` logs: held-out MLM and matching losses, perplexity, and caption -> video retrieval."""
    return ["valid_mlm", "valid_match", "valid_perplexity",
            *(f"valid_{key}" for key in ("r1", "r5", "r10", "median_rank", "gallery_size"))]


def check_data(config: Config, train: TeacherSamples) -> None:
    if train.feature_dim != config.video.feature_dim:
        raise VlkdError(f"feature width {train.feature_dim} differs from the config's video.feature_dim "
                        f"{config.video.feature_dim} (set video.feature_dim={train.feature_dim})",
                        train.root / "meta.json")
    if train.meta["max_steps"] > config.video.max_steps:
        raise VlkdError(f"samples have up to {train.meta['max_steps']} steps, more than video.max_steps "
                        f"{config.video.max_steps}", train.root / "meta.json")


def build(config: Config) -> Job:
    if not config.data.path:
        raise VlkdError("config key 'data.path' is required: a `vlkd prepare howto100m` output directory")
    train, valid = TeacherSamples(config.data.path, "train"), TeacherSamples(config.data.path, "valid")
    check_data(config, train)
    meta = train.meta
    text = build_masked_lm(config.model)
    if text.config.vocab_size < meta["vocab_size"]:
        raise VlkdError(f"mismatched vocab: model vocab_size {text.config.vocab_size} < data vocab_size "
                        f"{meta['vocab_size']}", train.root / "meta.json")
    task = TeacherTask(VideoTextTeacher(text, config.video), config)
    collate = TeacherCollator(meta["special_ids"], meta["vocab_size"], config.data.mlm_probability)
    eval_items = list(range(min(len(valid), config.data.eval_samples)))

    @torch.no_grad()
    def evaluate(module: nn.Module, accelerator: Accelerator) -> dict[str, float]:
        # Every process scores the same full held-out set on the unwrapped model: no collectives needed.
        model: TeacherTask = accelerator.unwrap_model(module)
        even = needs_even_batch(config)
        mlm_sum = match_sum = 0.0
        n = 0
        for k in range(0, len(eval_items), EVAL_BATCH):
            chunk = [valid[i] for i in eval_items[k:k + EVAL_BATCH]]
            chunk = chunk[:len(chunk) // 2 * 2] if even else chunk
            if len(chunk) < 2:
                continue
            batch = {key: v.to(accelerator.device) for key, v in collate(chunk, seeded_generator(config.seed, k)).items()}
            losses = model(batch)
            mlm_sum += losses["mlm"].item() * len(chunk)
            match_sum += losses["match"].item() * len(chunk)
            n += len(chunk)
        if n == 0:
            return {}
        result = {"valid_mlm": mlm_sum / n, "valid_match": match_sum / n}
        result["valid_perplexity"] = math.exp(min(result["valid_mlm"], 50.0))
        queries, gallery = encode_split(model.teacher, valid, collate, eval_items, accelerator.device)
        result.update({f"valid_{key}": v for key, v in retrieval_metrics(queries, gallery).items()})
        return result

    def save_final(module: nn.Module, path: Path) -> None:
        save_teacher(module.teacher, path, train.root / "tokenizer")

    return Job(module=task, train_data=train, collate=collate, save_final=save_final, evaluate=evaluate,
               count_tokens=lambda b: int(b["attention_mask"].sum()),
               loss_terms=lambda outputs: weighted_terms(config, outputs))

