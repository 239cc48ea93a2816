"""Multimodal KD for VideoQA on DualVGR (docs/commands.md, docs/losses.md).

role teacher: CE + alpha L_com + beta L_dep (L_com, L_dep averaged over every unit x graph layer).
role student with `teacher=RUN_DIR`: the same, plus the KD terms listed under `kd:` (composed through the
loss registry). The default is the reference's feature KD from the frozen teacher's fused per-clip feature F
to the student's appearance A and motion M clip features: 1.0 * feature_kl(A, F, 1) + 1.0 * feature_kl(M, F, 1);
logit KD is one more term (`{loss: soft_kl, student: logits, teacher: logits, args: {temperature: T}}`, with
T^2). Student outputs: appearance, motion, fused, logits; teacher outputs: fused, appearance, motion, logits.
A student without `teacher` trains alone (the no-KD baseline).

Validation accuracy picks the model kept in best/ (`select_best: valid_accuracy`); the test split is
scored once, afterwards, by `vlkd evaluate videoqa`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from torch import nn

from vlkd.config import TrainConfig, bounded
from vlkd.data.videoqa.features import APPEARANCE_FILE, MOTION_FILE, HCRNFeatures
from vlkd.data.videoqa.prepare import load_glove_matrix, load_vocab
from vlkd.data.videoqa.batches import VideoQACollator, load_questions
from vlkd.engine import Job
from vlkd.errors import VlkdError
from vlkd.eval.videoqa import accuracy, predict
from vlkd.io import read_json
from vlkd.losses import LossTerm, LossTerms, check_terms, dualvgr_consistency, hsic
from vlkd.losses.terms import term_names
from vlkd.models.dualvgr import DualVGR, DualVGRConfig, load_dualvgr, save_dualvgr


@dataclass
class VideoQAData:
    path: str = ""  # a `vlkd prepare videoqa` output directory
    features: str = ""  # the folder of the HCRN-layout feature files
    appearance_file: str = APPEARANCE_FILE
    motion_file: str = MOTION_FILE
    drop_motion: bool = False  # ablation: motion features replaced by their mean (train and evaluation)
    eval_batch_size: int = bounded(256, ge=1)


@dataclass
class RegularizerWeights:
    alpha: float = bounded(100.0, ge=0)  # L_com
    beta: float = bounded(1e-6, ge=0)  # L_dep


OUTPUTS = ("appearance", "motion", "fused", "logits")  # what a KD term may compare, on either side


def reference_kd() -> list[LossTerm]:
    """The reference's feature KD: the teacher's fused clip feature into the student's appearance and motion."""
    return [LossTerm(loss="feature_kl", student="appearance", teacher="fused", name="kd_appearance"),
            LossTerm(loss="feature_kl", student="motion", teacher="fused", name="kd_motion")]


@dataclass
class Config(TrainConfig):
    task: str = "videoqa"
    role: Literal["teacher", "student"] = "teacher"
    teacher: str = ""  # student: the teacher's run directory (its best/, else final/); empty: no KD
    model: DualVGRConfig = field(default_factory=DualVGRConfig)
    data: VideoQAData = field(default_factory=VideoQAData)
    loss: RegularizerWeights = field(default_factory=RegularizerWeights)
    kd: list[LossTerm] = field(default_factory=reference_kd)


def _mean(values: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack(values).mean()


class VideoQATask(nn.Module):
    """The trained DualVGR and, for a distilled student, the frozen teacher (a `Job.frozen` module: kept in
    eval mode by the engine and never written into checkpoints) with the config's KD terms."""

    def __init__(self, model: DualVGR, config: Config, teacher: DualVGR | None = None) -> None:
        super().__init__()
        self.model, self.config, self.teacher = model, config, teacher
        self.kd = LossTerms(config.kd) if teacher is not None else None

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        inputs = (batch["appearance"], batch["motion"], batch["question"], batch["question_len"])
        out = self.model(*inputs)
        ce = F.cross_entropy(out.logits.float(), batch["labels"])
        com = _mean([dualvgr_consistency(a, m) for a, m in zip(out.common_a, out.common_m)])
        dep = _mean([hsic(s, c) + hsic(sm, cm) for s, c, sm, cm in
                     zip(out.specific_a, out.common_a, out.specific_m, out.common_m)])
        weights = self.config.loss
        loss = ce + weights.alpha * com + weights.beta * dep
        losses = {"ce": ce, "l_com": com, "l_dep": dep,
                  "accuracy": (out.logits.argmax(-1) == batch["labels"]).float().mean()}
        if self.teacher is not None and self.kd is not None:
            with torch.no_grad():
                target = self.teacher(*inputs)
            loss, kd = self.kd({k: getattr(out, k) for k in OUTPUTS}, {k: getattr(target, k) for k in OUTPUTS},
                               base=loss)
            losses.update(kd)
        return {"loss": loss, **losses}


def weighted_terms(config: Config, outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The terms that sum to the loss, weighted (`Job.loss_terms`): CE, alpha L_com, beta L_dep, the KD terms."""
    terms = {"ce": outputs["ce"], "l_com": config.loss.alpha * outputs["l_com"],
             "l_dep": config.loss.beta * outputs["l_dep"]}
    if config.role == "student" and config.teacher:
        terms.update({name: term.weight * outputs[name] for name, term in zip(term_names(config.kd), config.kd)})
    return terms


def check(config: Config) -> None:
    """Config rules checked before any data is read."""
    if config.role == "teacher" and config.teacher:
        raise VlkdError("config key 'teacher' is for role=student (a teacher run to distil from)")
    check_terms(config.kd, "kd", kinds=("clips", "logits"), student=OUTPUTS, teacher=OUTPUTS)
    m = config.model
    for key in ("unit_layers", "graph_layers", "heads", "module_dim", "word_dim", "mfb_dim", "mfb_factor"):
        if getattr(m, key) < 1:
            raise VlkdError(f"config key 'model.{key}' must be at least 1, got {getattr(m, key)}")
    if m.module_dim % 2 or m.module_dim % m.heads:
        raise VlkdError(f"config key 'model.module_dim' ({m.module_dim}) must be even (two LSTM directions) and "
                        f"divisible by model.heads ({m.heads})")
    for key in ("path", "features"):
        if not getattr(config.data, key):
            raise VlkdError(f"config key 'data.{key}' is required ("
                            + ("a `vlkd prepare videoqa` output directory)" if key == "path" else
                               "the folder of appearance_feat.h5 / motion_feat.h5)"))


def eval_metrics(config: Config) -> list[str]:
    """What `evaluate` logs: overall validation accuracy and one accuracy per question type."""
    return ["valid_accuracy", "valid_acc_*"]


def _model_config(config: Config, features: HCRNFeatures, glove: np.ndarray, data_dir: Path) -> DualVGRConfig:
    """The model's sizes, checked against (and completed from) the data."""
    m = config.model
    if features.num_clips != m.num_clips:
        raise VlkdError(f"features have {features.num_clips} clips per video but the config says model.num_clips="
                        f"{m.num_clips}", features.paths[0])
    for key, found, path in (("appearance_dim", features.appearance_dim, features.paths[0]),
                             ("motion_dim", features.motion_dim, features.paths[1])):
        if getattr(m, key) not in (0, found):
            raise VlkdError(f"features are {found}-d but the config says model.{key}={getattr(m, key)}", path)
    if glove.shape[1] != m.word_dim:
        raise VlkdError(f"GloVe vectors are {glove.shape[1]}-d but the config says model.word_dim={m.word_dim} "
                        "(prepare with a GloVe file of that width, or set model.word_dim)", data_dir / "glove.npy")
    return replace(m, appearance_dim=features.appearance_dim, motion_dim=features.motion_dim)


def _load_teacher(config: Config, student: DualVGRConfig, data_dir: Path) -> DualVGR:
    teacher, path = load_dualvgr(config.teacher, data_dir)
    t = teacher.config
    if t.module_dim != student.module_dim or t.num_clips != student.num_clips:
        raise VlkdError(f"teacher module_dim/num_clips {t.module_dim}/{t.num_clips} differ from the student's "
                        f"{student.module_dim}/{student.num_clips} (feature KD compares per-clip features)",
                        path / "config.json")
    return teacher


def build(config: Config) -> Job:
    check(config)
    data_dir = Path(config.data.path)
    meta, vocab = read_json(data_dir / "meta.json"), load_vocab(data_dir)
    glove = load_glove_matrix(data_dir)
    if glove.shape[0] != len(vocab["question_token_to_idx"]):
        raise VlkdError(f"has {glove.shape[0]} rows but the question vocabulary has "
                        f"{len(vocab['question_token_to_idx'])} words", data_dir / "glove.npy")
    if meta.get("num_answers") != len(vocab["answer_token_to_idx"]):
        raise VlkdError(f"num_answers {meta.get('num_answers')!r} differs from the answer vocabulary's "
                        f"{len(vocab['answer_token_to_idx'])} entries", data_dir / "meta.json")
    features = HCRNFeatures(config.data.features, config.data.appearance_file, config.data.motion_file)
    model_config = _model_config(config, features, glove, data_dir)
    config.model = model_config  # saved with the run: the sizes it really has
    train, valid = load_questions(data_dir, "train", features), load_questions(data_dir, "val", features)
    model = DualVGR(model_config, len(vocab["question_token_to_idx"]), meta["num_answers"])
    model.load_word_vectors(torch.from_numpy(glove))
    teacher = _load_teacher(config, model_config, data_dir) if config.role == "student" and config.teacher else None
    collate = VideoQACollator(features, config.data.drop_motion)

    @torch.no_grad()
    def evaluate(module: nn.Module, accelerator: Accelerator) -> dict[str, float]:
        task: VideoQATask = accelerator.unwrap_model(module)
        preds = predict(task.model, valid, collate, accelerator.device, config.data.eval_batch_size)
        return accuracy(preds, valid, "valid_")

    def save_final(module: nn.Module, path: Path) -> None:
        save_dualvgr(module.model, path, data_dir)

    return Job(module=VideoQATask(model, config, teacher), frozen=[teacher] if teacher is not None else [],
               train_data=train, collate=collate,
               save_final=save_final, evaluate=evaluate, count_tokens=lambda b: int(b["question_len"].sum()),
               loss_terms=lambda outputs: weighted_terms(config, outputs), student=lambda module: module.model)
