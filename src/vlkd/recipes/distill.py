"""VidLanKD stage 2: distil a frozen video-language teacher's text tower into a text-only BERT student.

Student loss: MLM + the weighted KD terms of `kd.terms`, each a registered loss (docs/losses.md) comparing
a student output with a teacher output on the same token-store blocks:

    student outputs   tokens   the KD head's unit vectors (B, L, H_t)   (the student's last hidden states
                               when kd.head is false: then H_s must equal H_t)
                      hidden   last hidden states (B, L, H_s)           (crd: sentence features)
                      logits   MLM logits at the masked positions       (soft_kl; same vocabulary)
                      vokens   the voken head's logits (B, L, V)        (voken)
                      layerK   hidden states of layer K (0: embeddings), projected to H_t when widths differ
    teacher outputs   tokens   norm(last hidden) (B, L, H_t)            hidden   last hidden states
                      logits   the teacher's MLM logits at the same positions
                      vokens   each token's nearest training video (voken id)
                      layerK   hidden states of the teacher's layer K

`hidden_mse`/`hidden_cos` terms between `layerK` and `layerJ` are the layer map. The teacher sees the
student's masked input (the reference) or, with `kd.teacher_input: unmasked`, the clean block. With
`kd.targets: DIR` (`vlkd prepare teacher-targets`) the teacher never runs: its tokens (form full) or its
NST Gram matrices (form nst-gram, exact for `nst`) and its vokens are read by block index.

Equal compute: with the same seed, steps and batch, this recipe draws exactly the blocks and masks of
`task: mlm` (the collator and the data order are shared), and the student is initialised identically
(everything else is built under a forked RNG), so the only difference from the baseline is the KD term.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from torch import nn
from transformers import BertForMaskedLM

from vlkd.config import TrainConfig, bounded
from vlkd.data.masking import IGNORE_INDEX
from vlkd.data.text.collate import BlockCollator
from vlkd.data.text.split import TextData, check_model_fits, split_train_valid
from vlkd.engine import Job
from vlkd.errors import VlkdError
from vlkd.eval.teacher_targets import TeacherTargets, load_frozen_teacher, voken_bank
from vlkd.losses import LossTerm, LossTerms, assign_vokens, check_terms, mlm, nst_gram
from vlkd.losses.terms import term_names
from vlkd.models.bert import ModelConfig, build_masked_lm, save_with_tokenizer
from vlkd.models.student import KDHead, KDHeadConfig, VokenHead, save_kd_head
from vlkd.models.teacher import VideoTextTeacher

OUTPUTS = ("tokens", "hidden", "logits", "vokens")
LAYER = re.compile(r"^layer(\d+)$")
KINDS = ("tokens", "logits", "vokens", "sentences")


def reference_kd() -> list[LossTerm]:
    """The paper's best objective (the reference's "mmd"): NST between the KD head's and the teacher's tokens."""
    return [LossTerm(loss="nst", student="tokens", teacher="tokens")]


@dataclass
class KDConfig:
    terms: list[LossTerm] = field(default_factory=reference_kd)
    teacher_input: Literal["masked", "unmasked"] = "masked"
    head: bool = True  # false: the ablation without the KD head (student hidden states compared directly)
    targets: str = ""  # cached teacher targets (`vlkd prepare teacher-targets`); empty: run the teacher


@dataclass
class Config(TrainConfig):
    task: str = "distill"
    model: ModelConfig = field(default_factory=ModelConfig)  # the student
    teacher: str = ""  # the teacher's run directory (`task: teacher`)
    data: TextData = field(default_factory=TextData)
    kd: KDConfig = field(default_factory=KDConfig)
    mlm_weight: float = bounded(1.0, ge=0)


def _names(config: Config) -> set[str]:
    return {t.student for t in config.kd.terms} | {t.teacher for t in config.kd.terms}


def check(config: Config) -> None:
    """Config rules checked before any data is read."""
    if not config.teacher:
        raise VlkdError("config key 'teacher' is required: a teacher run directory (`vlkd train teacher-...`)")
    if not config.data.train:
        raise VlkdError("config key 'data.train' is required: a token store directory from `vlkd prepare text`")
    layers = sorted({n for n in _names(config) if LAYER.match(n)})
    offered = (*OUTPUTS, *layers)
    check_terms(config.kd.terms, "kd.terms", kinds=KINDS, student=offered, teacher=offered,
                module_args=("student_dim", "teacher_dim", "num_samples"))
    if not config.kd.terms:
        raise VlkdError("config key 'kd.terms' is empty: list at least one KD term (or use task: mlm)")
    if config.kd.targets:
        if config.kd.teacher_input != "unmasked":
            raise VlkdError("kd.targets holds the teacher's outputs on the clean blocks: set "
                            "kd.teacher_input=unmasked to use them (or drop kd.targets to run the teacher)")
        online_only = sorted(n for t in config.kd.terms for n in [t.teacher] if n not in ("tokens", "vokens"))
        if online_only:
            raise VlkdError(f"kd.targets caches the teacher's tokens and vokens only; teacher output "
                            f"{online_only[0]!r} needs the teacher online (drop kd.targets)")


def weighted_terms(config: Config, outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The terms that sum to the loss, weighted (`Job.loss_terms`: each term's gradient share)."""
    kd = {name: term.weight * outputs[name] for name, term in zip(term_names(config.kd.terms), config.kd.terms)}
    return {"mlm": config.mlm_weight * outputs["mlm"], **kd}


def eval_metrics(config: Config) -> list[str]:
    from_terms = [f"valid_{n}" for n in term_names(config.kd.terms)]
    return ["valid_loss", "valid_mlm", "valid_perplexity", *from_terms]


class DistillTask(nn.Module):
    """Student (trained) + KD head + loss terms; the teacher is a frozen submodule (`Job.frozen`)."""

    def __init__(self, student: BertForMaskedLM, config: Config, teacher: VideoTextTeacher | None,
                 targets: TeacherTargets | None, teacher_width: int, num_samples: int,
                 vokens: torch.Tensor | None) -> None:
        super().__init__()
        self.student, self.teacher, self.targets, self.config = student, teacher, targets, config
        width = student.config.hidden_size
        if not config.kd.head and width != teacher_width:
            raise VlkdError(f"kd.head=false compares the student's hidden states with the teacher's directly, "
                            f"but their widths differ ({width} vs {teacher_width})")
        self.head = KDHead(KDHeadConfig(width, teacher_width, student.config.layer_norm_eps)) \
            if config.kd.head else None
        self.register_buffer("voken_bank", vokens if vokens is not None else torch.zeros(0), persistent=False)
        needs_vokens = any(t.loss == "voken" for t in config.kd.terms)
        self.voken_head = VokenHead(width, int(vokens.shape[0] if vokens is not None else targets.meta["num_vokens"])) \
            if needs_vokens else None
        layers = sorted({t.student for t in config.kd.terms if LAYER.match(t.student)})
        self.projections = nn.ModuleDict({
            name: nn.Linear(width, teacher_width) if width != teacher_width else nn.Identity() for name in layers})
        self.kd = LossTerms(config.kd.terms, module_args={"student_dim": width, "teacher_dim": teacher_width,
                                                          "num_samples": num_samples})
        self.needs_layers = bool(layers) or any(LAYER.match(t.teacher) for t in config.kd.terms)
        self.teacher_width = teacher_width

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        ids, labels = batch["input_ids"], batch["labels"]
        out = self.student.bert(input_ids=ids, output_hidden_states=self.needs_layers)
        hidden = out.last_hidden_state
        masked_lm = mlm(hidden, labels, self.student.cls)
        student = {"hidden": hidden, "tokens": self.head(hidden) if self.head is not None else hidden}
        wanted = {t.student for t in self.config.kd.terms} | {t.teacher for t in self.config.kd.terms}
        selected = labels != IGNORE_INDEX
        if "logits" in wanted:
            student["logits"] = self.student.cls(hidden[selected])
        if self.voken_head is not None:
            student["vokens"] = self.voken_head(hidden)
        for name, projection in self.projections.items():
            student[name] = projection(out.hidden_states[int(LAYER.match(name).group(1))])
        teacher = self._teacher_outputs(batch, selected, wanted)
        if "gram" in teacher:  # cached nst-gram form: NST from the teacher's Gram matrices (exact)
            kd_total: torch.Tensor | float = 0.0
            kd = {}
            for name, term in zip(self.kd.names, self.kd.terms):
                kd[name] = nst_gram(student[term.student], teacher["gram"], None, self.teacher_width)
                kd_total = kd_total + term.weight * kd[name]
            loss = self.config.mlm_weight * masked_lm + kd_total
        else:
            loss, kd = self.kd(student, teacher, base=self.config.mlm_weight * masked_lm, index=batch["index"])
        return {"loss": loss, "mlm": masked_lm, **kd}

    @torch.no_grad()
    def _teacher_outputs(self, batch: dict[str, torch.Tensor], selected: torch.Tensor,
                         wanted: set[str]) -> dict[str, torch.Tensor]:
        if self.targets is not None:
            cached = self.targets.gather(batch["index"].tolist())
            names = {"targets": "tokens", "gram": "gram", "vokens": "vokens"}
            return {names[k]: v.to(batch["input_ids"].device) for k, v in cached.items()}
        ids = batch["input_ids"]
        if self.config.kd.teacher_input == "unmasked":
            ids = torch.where(batch["labels"] != IGNORE_INDEX, batch["labels"], ids)
        assert self.teacher is not None
        out = self.teacher.text.bert(input_ids=ids, output_hidden_states=self.needs_layers)
        hidden = out.last_hidden_state
        result = {"hidden": hidden, "tokens": torch.nn.functional.normalize(hidden, dim=-1)}
        if "logits" in wanted:
            result["logits"] = self.teacher.text.cls(hidden[selected])
        if self.voken_bank.numel():
            result["vokens"] = assign_vokens(result["tokens"], self.voken_bank)
        for name in wanted:
            match = LAYER.match(name)
            if match:
                if int(match.group(1)) >= len(out.hidden_states):
                    raise VlkdError(f"kd.terms: the teacher has no {name} (layers 0-{len(out.hidden_states) - 1})")
                result[name] = out.hidden_states[int(match.group(1))]
        return result


def build(config: Config) -> Job:
    check(config)
    if config.data.valid and config.kd.targets:
        raise VlkdError("kd.targets covers the blocks of data.train only; with a separate data.valid store "
                        "hold out the tail of data.train instead (data.valid_blocks) or drop kd.targets")
    store, train, valid = split_train_valid(config.data)
    # The student first, from the same RNG state as `task: mlm`: both recipes start from the same weights.
    student = build_masked_lm(config.model)
    check_model_fits(student.config.vocab_size, student.config.max_position_embeddings, store)
    with torch.random.fork_rng():  # what the baseline does not build must not move its RNG streams
        torch.manual_seed(config.seed + 1)
        teacher, info = load_frozen_teacher(config.teacher, store)
        targets = None
        if config.kd.targets:
            targets = TeacherTargets(config.kd.targets)
            targets.check(store, info)
            teacher = None
            if targets.form == "nst-gram" and any(t.loss != "nst" or t.student != "tokens" for t in config.kd.terms):
                raise VlkdError("an nst-gram cache serves `nst` on tokens only (it holds the teacher's Gram "
                                "matrices, not its features); use a --form full cache for other terms",
                                config.kd.targets)
            if any(t.teacher == "vokens" for t in config.kd.terms) and not targets.has_vokens:
                raise VlkdError("kd.terms use the teacher's vokens but this cache has none (prepare it with "
                                "--vokens)", config.kd.targets)
        needs_bank = any(t.loss == "voken" for t in config.kd.terms) and targets is None
        bank = voken_bank(teacher, config.teacher, torch.device("cpu")) if needs_bank else None
        task = DistillTask(student, config, teacher, targets, info["width"], len(store), bank)
    collate = BlockCollator(store.special_ids, store.vocab_size, config.data.mlm_probability)

    def save_final(module: nn.Module, path: Path) -> None:
        """A plain save_pretrained BERT (any `vlkd finetune` takes it) with the KD head beside it."""
        save_with_tokenizer(module.student, path, store.tokenizer_dir)
        if module.head is not None:
            save_kd_head(module.head, path)

    def eval_summary(metrics: dict[str, float]) -> dict[str, float]:
        if "valid_mlm" in metrics:
            metrics["valid_perplexity"] = math.exp(min(metrics["valid_mlm"], 50.0))
        return metrics

    return Job(module=task, frozen=[teacher] if teacher is not None else [], train_data=train, valid_data=valid,
               collate=collate, save_final=save_final, eval_summary=eval_summary,
               loss_terms=lambda outputs: weighted_terms(config, outputs), student=lambda module: module.student)
