"""`vlkd evaluate grounding`: how well a text-only model (a distilled student, or the MLM baseline) is
grounded in video, measured against a frozen teacher's video embeddings (DESIGN section 11).

Two routes, both caption -> video retrieval on the held-out split (`valid`), the gallery being every
held-out sample's clip (query i's match is gallery row i), with chance levels stated:

- *head route* (models with a KD head, `final/kd_head/`): each caption `[CLS] caption [SEP]` through the
  model's BERT encoder and its KD head gives per-token unit vectors; the query is their mean over valid
  tokens (`caption_query`), so query . video is the teacher's own similarity, the token-mean cosine.
  Only meaningful when training pulled the head's vectors toward the teacher's token vectors: the run's
  `kd.terms` must hold an aligning loss (`LossEntry.aligns`: hidden_mse, hidden_cos, ntxent, mmd_rbf) from
  the head's `tokens` to the teacher's `tokens` with weight > 0. NST and PKT match similarities within each
  space and leave the head's coordinates free; CRD compares `hidden` through its own embeddings and never
  trains the head. Otherwise the route is absent, with the reason (`head_absent`). With `videos_dir` a
  student with the route also gets the teacher's grounding grid (eval/grounding.py), by its head queries.
- *probe route* (any BERT): the mean over valid tokens of the final hidden states, mapped to the teacher's
  video embedding space by a ridge regression fitted on the train split's captions and their clips'
  embeddings (features standardised with train statistics, unpenalised bias); predictions are
  L2-normalised and scored by cosine.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import BertModel

from vlkd.data.teacher.collate import TeacherCollator
from vlkd.data.teacher.howto100m import TeacherSamples
from vlkd.data.tokenizer import load_tokenizer, vocab_fingerprint
from vlkd.errors import VlkdError
from vlkd.eval.retrieval import EVAL_BATCH, caption_query, retrieval_metrics
from vlkd.eval.grounding import draw_grounding_grid
from vlkd.inference import infer
from vlkd.io import check_safetensors_dir, read_json, write_json_atomic
from vlkd.losses import LOSSES
from vlkd.models.student import KD_HEAD_DIR, KDHead, has_kd_head, load_kd_head
from vlkd.models.teacher import NO_VIDEO_TOWER, VideoTextTeacher, load_teacher
from vlkd.rundir import RunDir, load_run_config

HELD_OUT, FIT = "valid", "train"


def chance_levels(n: int) -> dict[str, float]:
    """Expected R@1/5/10 and median rank of a random ranking of a gallery of n items."""
    return {"r1_chance": 1.0 / n, "r5_chance": min(5.0 / n, 1.0), "r10_chance": min(10.0 / n, 1.0),
            "median_rank_chance": (n + 1) / 2.0}


@dataclass
class RidgeProbe:
    """y = ((x - mean) / scale) @ weight + bias, fitted by `fit_ridge`."""

    mean: np.ndarray
    scale: np.ndarray
    weight: np.ndarray
    bias: np.ndarray

    def predict(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, np.float64) - self.mean) / self.scale) @ self.weight + self.bias


def fit_ridge(x: np.ndarray, y: np.ndarray, ridge: float) -> RidgeProbe:
    """Closed-form ridge regression, minimising ||Z W + 1 b - Y||^2 + ridge ||W||^2 over W and b, where
    Z is x standardised with its own column means and standard deviations (constant columns: scale 1).
    The bias is not penalised; on centred Z it is the mean of Y."""
    if ridge < 0:
        raise VlkdError(f"ridge penalty must be >= 0, got {ridge}")
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    mean = x.mean(0)
    scale = x.std(0)
    scale[scale < 1e-12] = 1.0
    z = (x - mean) / scale
    bias = y.mean(0)
    gram = z.T @ z + ridge * np.eye(z.shape[1])
    weight = np.linalg.lstsq(gram, z.T @ (y - bias), rcond=None)[0]  # lstsq: also fine when ridge = 0 and singular
    return RidgeProbe(mean, scale, weight, bias)


def _model_dir(model: Path) -> Path:
    if not model.exists():
        raise VlkdError("model directory not found", model)
    for candidate in (RunDir(model).final, model):
        if (candidate / "config.json").is_file():
            return candidate
    raise VlkdError("not a model directory (no config.json here or in final/)", model)


def _config(path: Path) -> dict[str, Any]:
    """A model directory's config.json, which must describe a BERT."""
    config = read_json(path / "config.json")
    if not isinstance(config, dict) or config.get("model_type") != "bert" or "hidden_size" not in config:
        model_type = config.get("model_type") if isinstance(config, dict) else None
        raise VlkdError(f"not a BERT model (model_type {model_type!r})", path / "config.json")
    return config


def _load_bert(path: Path) -> BertModel:
    quiet = logging.getLogger("transformers.modeling_utils")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # an MLM checkpoint has no pooler, and we do not use one
    try:
        check_safetensors_dir(path)
        return BertModel.from_pretrained(path, add_pooling_layer=False).eval()
    except (OSError, ValueError, RuntimeError) as e:
        raise VlkdError(f"cannot load the BERT ({type(e).__name__}: {str(e).splitlines()[0]})", path) from None
    finally:
        quiet.setLevel(level)


def head_route_absent(model: Path, model_path: Path, has_head: bool) -> str | None:
    """Why the head route says nothing about this model (None: it does). Decided from the run's config:
    some `kd.terms` entry must pull the KD head's `tokens` toward the teacher's `tokens` (an aligning loss)."""
    if not has_head:
        return "the model has no KD head (final/kd_head/)"
    runs = [d for d in (model, model_path.parent if RunDir(model_path.parent).final == model_path else None)
            if d is not None]
    run = next((d for d in runs if RunDir(d).config.is_file()), None)
    if run is None:
        return f"no run config ({RunDir(model).config.name}) beside the model: what trained its KD head is unknown"
    terms = (load_run_config(run).get("kd") or {}).get("terms") or []
    for term in terms:
        entry = LOSSES.get(str(term.get("loss")))
        if (entry is not None and entry.aligns and float(term.get("weight", 1.0)) > 0
                and term.get("student") == "tokens" and term.get("teacher") == "tokens"):
            return None
    used = ", ".join(f"{t.get('loss')} ({t.get('student')} -> {t.get('teacher')}, weight {t.get('weight', 1.0)})"
                     for t in terms) or "none"
    aligning = ", ".join(sorted(name for name, entry in LOSSES.items() if entry.aligns))
    return (f"no kd.terms entry pulls the KD head toward the teacher's token vectors (terms: {used}; "
            f"nst and pkt match similarities within each space, crd trains its own embeddings of hidden); "
            f"the route needs one of {aligning} on tokens -> tokens with weight > 0")


def _teacher_dir(teacher_run: Path) -> Path:
    if not teacher_run.exists():
        raise VlkdError("teacher run not found", teacher_run)
    for candidate in (RunDir(teacher_run).final, teacher_run):
        if (candidate / "text").is_dir() and (candidate / "video").is_dir():
            return candidate
        if (candidate / "text" / "config.json").is_file():
            raise VlkdError(NO_VIDEO_TOWER + "; grounding needs one", candidate)
    raise VlkdError("not a teacher run (no final/text and final/video)", teacher_run)


def _fingerprint(path: Path, what: str) -> str:
    if not ((path / "tokenizer.json").is_file() or (path / "vocab.txt").is_file()):
        raise VlkdError(f"{what} has no tokenizer files (tokenizer.json / vocab.txt); cannot compare its "
                        f"vocabulary with the data's", path)
    return vocab_fingerprint(load_tokenizer(str(path)))


def encode_captions(samples: TeacherSamples, collate: TeacherCollator, model: BertModel, head: KDHead | None,
                    teacher: VideoTextTeacher) -> dict[str, np.ndarray]:
    """Per sample: the model's mean-pooled hidden state ("pooled"), the KD head's caption query ("head",
    with a head) and the teacher's embedding of the sample's clip ("video"), rows aligned with samples."""
    def encode(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        mask = batch["attention_mask"]
        hidden = model(input_ids=batch["input_ids"], attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).to(hidden.dtype)
        out = {"pooled": ((hidden * m).sum(1) / m.sum(1).clamp_min(1.0)).float()}
        if head is not None:
            out["head"] = caption_query(head(hidden), mask).float()
        out["video"] = teacher.encode_video(batch["video"], batch["video_mask"]).float()
        return out

    batches = infer(encode, samples, collate, EVAL_BATCH)  # on the CPU, where the models were loaded
    keys = ["pooled", "video", *(["head"] if head is not None else [])]
    return {key: torch.cat([b[key] for b in batches]).numpy() for key in keys}


def _scores(queries: np.ndarray, gallery: np.ndarray) -> dict[str, float]:
    return {**retrieval_metrics(queries, gallery), **chance_levels(len(gallery))}


def evaluate_text_grounding(model: str | Path, teacher_run: str | Path, data_dir: str | Path,
                            out: str | Path | None = None, ridge: float = 1.0, videos_dir: str | Path | None = None,
                            num_queries: int = 4, top: int = 5) -> dict[str, Any]:
    """Grounding of a text model against a teacher's video embeddings: the head route (where training
    aligned the KD head with the teacher, `head_route_absent`) and the ridge probe route, caption -> clip
    retrieval on the held-out split. Writes OUT.json (default MODEL/grounding.json), with `videos_dir` and
    the head route also OUT.png (the grounding grid), and returns {"gallery": N, "head": {...} or None,
    "head_absent": reason (when None), "probe": {...}}."""
    model, teacher_run, data_dir = Path(model), Path(teacher_run), Path(data_dir)
    if ridge < 0:
        raise VlkdError(f"--ridge must be >= 0, got {ridge}")
    if not data_dir.is_dir():
        raise VlkdError("HowTo100M data directory not found", data_dir)
    model_path = _model_dir(model)
    student_width = _config(model_path)["hidden_size"]
    teacher_path = _teacher_dir(teacher_run)
    teacher_width = _config(teacher_path / "text")["hidden_size"]
    feature_dim = read_json(teacher_path / "video" / "config.json").get("feature_dim")
    held_out, fit = TeacherSamples(data_dir, HELD_OUT), TeacherSamples(data_dir, FIT)
    for split, samples in ((HELD_OUT, held_out), (FIT, fit)):
        if len(samples) < 2:
            raise VlkdError(f"split {split!r} has {len(samples)} samples; need at least 2", data_dir)
    data_vocab = held_out.meta.get("vocab_sha") or _fingerprint(data_dir / "tokenizer", "the data")
    if _fingerprint(model_path, "the model directory") != data_vocab:
        raise VlkdError("the model's tokenizer vocabulary differs from the data's (data/tokenizer)", model_path)
    if _fingerprint(teacher_path / "text", "the teacher's text/") != data_vocab:
        raise VlkdError("the teacher's tokenizer vocabulary differs from the data's (data/tokenizer)",
                        teacher_path / "text")
    absent = head_route_absent(model, model_path, has_kd_head(model_path))
    head = load_kd_head(model_path) if has_kd_head(model_path) else None
    if head is not None:  # every check reads config files, before any model is loaded
        if head.cfg.teacher_width != teacher_width:
            raise VlkdError(f"KD head's teacher width {head.cfg.teacher_width} differs from the teacher's hidden "
                            f"size {teacher_width}", model_path / KD_HEAD_DIR / "config.json")
        if head.cfg.student_width != student_width:
            raise VlkdError(f"KD head's student width {head.cfg.student_width} differs from the model's hidden "
                            f"size {student_width}", model_path / KD_HEAD_DIR / "config.json")
    if held_out.feature_dim != feature_dim:
        raise VlkdError(f"feature width {held_out.feature_dim} differs from the teacher's {feature_dim}",
                        data_dir / "meta.json")
    bert = _load_bert(model_path)
    teacher = load_teacher(teacher_path)
    meta = held_out.meta
    collate = TeacherCollator(meta["special_ids"], meta["vocab_size"], 0.0)
    head = head if absent is None else None
    test = encode_captions(held_out, collate, bert, head, teacher)
    train = encode_captions(fit, collate, bert, None, teacher)
    gallery = test["video"]
    probe = fit_ridge(train["pooled"], train["video"], ridge)
    predicted = probe.predict(test["pooled"])
    predicted /= np.maximum(np.linalg.norm(predicted, axis=1, keepdims=True), 1e-12)
    result: dict[str, Any] = {
        "gallery": len(gallery),
        "head": _scores(test["head"], gallery) if head is not None else None,
        **({"head_absent": absent} if absent is not None else {}),
        "probe": {**_scores(predicted.astype(np.float32), gallery), "ridge": float(ridge),
                  "train_samples": len(fit)},
        "model": str(model_path), "teacher": str(teacher_path), "data": str(data_dir),
    }
    target = (Path(out) if out else RunDir(model).grounding).with_suffix(".json")
    if head is not None and videos_dir is not None:
        result["grid"] = str(target.with_suffix(".png"))
        draw_grounding_grid(held_out, data_dir, Path(videos_dir), test["head"] @ gallery.T, num_queries, top,
                            target.with_suffix(".png"))
    write_json_atomic(target, result)
    return result
