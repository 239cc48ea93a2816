"""`vlkd import vidlankd`: the released VidLanKD checkpoints as vlkd models.

The reference releases transformers-3.3 `pytorch_model.bin` files of `CoLwithBert` (a `BertForMaskedLM`
subclass) with a `config.json` of a `BertConfig` subclass (extra fields `voken_size`, `do_kd1_objective`,
...). Their state dicts hold `bert.*` and `cls.predictions.*` plus heads of vlkd's KD-head shape
(dense -> GELU -> LayerNorm -> Linear -> L2 norm): the teacher's `visual_hinge_head.*` (built, never used by
the reference's forward), the student's `kd1_student_head.*` (the NST head) and `kd2_*_head.*`.

- role teacher -> a teacher run: OUT/config.yaml and OUT/final/text/ (the text tower with the tokenizer),
  no video tower: it serves `teacher=` of `task: distill`; commands that need a video tower refuse it.
- role student -> OUT/config.yaml and OUT/final/ (a save_pretrained BERT + tokenizer) with
  `kd1_student_head` as its KD head in OUT/final/kd_head/.

Checkpoint entries that are not imported and model tensors the checkpoint lacks are returned, for the caller
to report; nothing is written unless the whole import succeeds.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import yaml
from transformers import BertConfig, BertForMaskedLM, PreTrainedTokenizerFast

from vlkd.card import write_model_cards
from vlkd.data.tokenizer import load_tokenizer, resolve_tokenizer
from vlkd.errors import VlkdError
from vlkd.hub import quiet_transformers
from vlkd.io import atomic_path, file_sha256, read_json
from vlkd.models.student import KDHead, KDHeadConfig, save_kd_head
from vlkd.models.teacher import TEXT_DIR
from vlkd.rundir import CONFIG, FINAL

WEIGHTS = "pytorch_model.bin"
ROLES = ("teacher", "student")
# the BertConfig fields that describe the network; the reference's own fields are not carried over
BERT_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
               "hidden_act", "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings",
               "type_vocab_size", "initializer_range", "layer_norm_eps", "pad_token_id")
REQUIRED_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
STUDENT_HEAD = "kd1_student_head"
# the reference head's names -> vlkd KDHead's
HEAD_NAMES = {"dense": "dense", "layer_norm": "norm", "decoder": "out"}


@dataclass
class Imported:
    """What an import wrote and what it could not map."""

    role: str
    out: Path
    unexpected: list[str]  # checkpoint entries not imported
    missing: list[str]  # model tensors the checkpoint lacks (left at their fresh initial values)
    config: dict[str, Any]  # the BertConfig fields used
    kd_head: bool


def read_reference_config(checkpoint: Path) -> dict[str, Any]:
    """The BertConfig fields of the reference's config.json (required ones checked)."""
    path = checkpoint / "config.json"
    if not path.is_file():
        raise VlkdError("no config.json (a released VidLanKD checkpoint directory has config.json and "
                        f"{WEIGHTS})", checkpoint)
    raw = read_json(path)
    if not isinstance(raw, dict):
        raise VlkdError("not a BERT config (a JSON object)", path)
    for key in REQUIRED_FIELDS:
        value = raw.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise VlkdError(f"config field {key!r} must be a positive integer, got {value!r}", path)
    if raw["hidden_size"] % raw["num_attention_heads"]:
        raise VlkdError(f"hidden_size {raw['hidden_size']} is not divisible by num_attention_heads "
                        f"{raw['num_attention_heads']}", path)
    return {key: raw[key] for key in BERT_FIELDS if key in raw}


def read_state_dict(checkpoint: Path) -> dict[str, torch.Tensor]:
    """CHECKPOINT/pytorch_model.bin loaded with `weights_only=True` (no code from the file runs)."""
    path = checkpoint / WEIGHTS
    if not path.is_file():
        raise VlkdError(f"no {WEIGHTS} here", checkpoint)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as e:
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else ""
        raise VlkdError(f"cannot load with weights_only=True ({type(e).__name__}: {first})", path) from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise VlkdError("not a state dict (a mapping of names to tensors)", path)
    if not any(k.startswith("bert.encoder.") for k in state):
        raise VlkdError("no bert.encoder.* tensors: not a BERT checkpoint of the reference", path)
    return state


def _load(module: torch.nn.Module, tensors: dict[str, torch.Tensor], where: Path) -> list[str]:
    """Copy `tensors` into `module` (shapes checked); returns its parameters none of them set (a parameter
    tied to a loaded one, like the MLM decoder to the word embeddings, counts as set)."""
    own = module.state_dict()
    for key, value in tensors.items():
        if tuple(value.shape) != tuple(own[key].shape):
            raise VlkdError(f"tensor {key} has shape {tuple(value.shape)}, the config.json gives "
                            f"{tuple(own[key].shape)}", where)
    module.load_state_dict(tensors, strict=False)
    loaded = {own[k].data_ptr() for k in tensors}
    return [k for k, v in own.items() if k not in tensors and v.data_ptr() not in loaded]


def build_bert(config: dict[str, Any], state: dict[str, torch.Tensor], where: Path) -> tuple[BertForMaskedLM, set[str], list[str]]:
    """A BertForMaskedLM of `config` with the checkpoint's `bert.*` / `cls.*` tensors: (model, the checkpoint
    keys used, the model keys missing)."""
    with torch.random.fork_rng():  # a tensor the checkpoint lacks gets a reproducible initial value
        torch.manual_seed(0)
        model = BertForMaskedLM(BertConfig(**config))
    own = model.state_dict()
    buffers = {name for name, _ in model.named_buffers()}  # position_ids: recomputed, not learned
    tensors = {k: v for k, v in state.items() if k in own}
    missing = _load(model, tensors, where)
    return model.eval(), set(tensors) | (buffers & set(state)), missing


def build_kd_head(config: dict[str, Any], state: dict[str, torch.Tensor], where: Path) -> tuple[KDHead | None, set[str]]:
    """The student's NST head (`kd1_student_head.*`) as a KDHead, or None when the checkpoint has none."""
    prefix = STUDENT_HEAD + "."
    found = {k: v for k, v in state.items() if k.startswith(prefix)}
    if not found:
        return None, set()
    names = {f"{HEAD_NAMES.get(k[len(prefix):].split('.')[0], '?')}.{k.rsplit('.', 1)[1]}": k for k in found}
    decoder = found.get(prefix + "decoder.weight")
    if decoder is None or decoder.dim() != 2:
        raise VlkdError(f"{prefix}decoder.weight is missing or not a matrix", where)
    head = KDHead(KDHeadConfig(int(decoder.shape[1]), int(decoder.shape[0]), float(config.get("layer_norm_eps", 1e-12))))
    tensors = {name: found[key] for name, key in names.items() if name in head.state_dict()}
    missing = _load(head, tensors, where)
    if missing:
        raise VlkdError(f"{STUDENT_HEAD} lacks {', '.join(prefix + m for m in missing)}", where)
    return head.eval(), {names[n] for n in tensors}


def _tokenizer(spec: str, vocab_size: int) -> PreTrainedTokenizerFast:
    """The tokenizer of a local directory, its ids checked to fit the model."""
    if not Path(resolve_tokenizer(spec)).is_dir():
        raise VlkdError("--tokenizer must be a local tokenizer directory (e.g. bert-base-uncased's files)", spec)
    tok = load_tokenizer(spec)
    if len(tok) > vocab_size:
        raise VlkdError(f"tokenizer has {len(tok)} tokens, more than the checkpoint's vocab_size {vocab_size}", spec)
    return tok


def import_vidlankd(checkpoint: str | os.PathLike, role: Literal["teacher", "student"], tokenizer: str,
                    out: str | os.PathLike) -> Imported:
    """Convert a released VidLanKD checkpoint directory into a vlkd teacher run or student (module docstring)."""
    checkpoint, out = Path(checkpoint), Path(out)
    if role not in ROLES:
        raise VlkdError(f"unknown role {role!r} (expected one of: {', '.join(ROLES)})")
    if not checkpoint.is_dir():
        raise VlkdError("checkpoint directory not found", checkpoint)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise VlkdError("output directory exists and is not empty", out)
    config = read_reference_config(checkpoint)
    state = read_state_dict(checkpoint)
    tok = _tokenizer(tokenizer, config["vocab_size"])
    where = checkpoint / WEIGHTS
    bert, used, missing = build_bert(config, state, where)
    head, head_used = build_kd_head(config, state, where) if role == "student" else (None, set())
    if role == "student" and head is None:
        missing.append(f"{STUDENT_HEAD}.*")  # the student is imported without a KD head
    unexpected = sorted(set(state) - used - head_used)
    record = {"from": "vidlankd", "role": role, "checkpoint": os.fspath(checkpoint.resolve()),
              "weights_sha256": file_sha256(where), "unexpected": unexpected, "missing": missing}
    run_config = {"task": "teacher" if role == "teacher" else "distill", "imported": record,
                  "model": {"hidden_size": config["hidden_size"], "num_layers": config["num_hidden_layers"],
                            "num_heads": config["num_attention_heads"],
                            "intermediate_size": config["intermediate_size"], "vocab_size": config["vocab_size"],
                            "max_position_embeddings": bert.config.max_position_embeddings}}
    with atomic_path(out) as tmp:
        model_dir = tmp / FINAL / TEXT_DIR if role == "teacher" else tmp / FINAL  # a teacher: text tower only
        with quiet_transformers():
            bert.save_pretrained(model_dir)
        tok.save_pretrained(model_dir)
        if head is not None:
            save_kd_head(head, model_dir)
        (tmp / CONFIG).write_text(yaml.safe_dump(run_config, sort_keys=False), encoding="utf-8")
    write_model_cards(out)
    return Imported(role, out, unexpected, missing, config, head is not None)


def key_groups(keys: list[str], limit: int = 8) -> str:
    """Keys as their modules, for a one-line report: 'visual_hinge_head.dense, ... (6 keys)'."""
    if not keys:
        return "none"
    modules = list(dict.fromkeys(k.rsplit(".", 1)[0] if "." in k and not k.endswith("*") else k for k in keys))
    shown = ", ".join(modules[:limit]) + (f", ... ({len(modules) - limit} more)" if len(modules) > limit else "")
    return f"{shown} ({len(keys)} key{'s' if len(keys) != 1 else ''})"
