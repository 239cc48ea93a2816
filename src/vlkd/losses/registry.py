"""The one loss registry: configs name losses; recipes compose them through `vlkd.losses.terms`.

Every registered loss declares the *kind* of inputs it takes (the shapes of its first two arguments), so
the registry can be listed (`vlkd ls losses`), checked against a config, and tested as a whole. Functions
are registered in their precision-safe form: they compute in at least fp32 under autocast.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable

import torch

from vlkd.errors import VlkdError

# The input kinds: what the first two arguments of a loss are.
KINDS = {
    "tokens": "(student, teacher, mask=None): token features (B, L, H_s), (B, L, H_t); mask (B, L)",
    "logits": "(student_logits, teacher_logits): (..., V) over the same vocabulary or label set",
    "clips": "(x, y): per-clip features (B, N, D)",
    "video_text": "(text, video, mask): caption token features (B, L, H), video embeddings (B, H), mask (B, L)",
    "vokens": "(student_logits, teacher_vokens, mask=None): logits (B, L, V), voken ids (B, L)",
    "masked_lm": "(hidden, labels, head): hidden states (B, L, H), labels (B, L), vocabulary head",
    "sentences": "(student, teacher, index, mask=None): token features and each sequence's sample index",
    "gram": "(student, gram, mask=None): token features (B, L, H_s), the teacher's NST Gram matrices (B, L, L)",
}


@dataclass(frozen=True)
class LossEntry:
    name: str
    fn: Callable  # a function, or an nn.Module class (a loss with state: built once per run)
    kind: str
    summary: str
    # compares student and teacher vectors in one space, so it pulls the student's toward the teacher's
    # coordinates (not only similarities within each space, as nst and pkt do): `vlkd evaluate grounding`
    aligns: bool = False

    @property
    def is_module(self) -> bool:
        return isinstance(self.fn, type)


LOSSES: dict[str, LossEntry] = {}


def register_loss(name: str, kind: str, aligns: bool = False) -> Callable[[Callable], Callable]:
    """Decorator: register a loss function (wrapped by `full_precision`) or nn.Module class under `name`;
    `aligns`: it pulls the student's vectors toward the teacher's (`LossEntry.aligns`)."""
    if kind not in KINDS:
        raise ValueError(f"unknown loss kind {kind!r} (kinds: {', '.join(KINDS)})")

    def wrap(fn: Callable) -> Callable:
        if name in LOSSES:
            raise ValueError(f"loss {name!r} registered twice")
        registered = fn if isinstance(fn, type) else full_precision(fn)
        summary = (fn.__doc__ or "").strip().split("\n")[0]
        LOSSES[name] = LossEntry(name, registered, kind, summary, aligns)
        return registered

    return wrap


def get_loss(name: str) -> LossEntry:
    if name not in LOSSES:
        raise VlkdError(f"unknown loss {name!r} (registered: {', '.join(sorted(LOSSES))})")
    return LOSSES[name]


def full_precision(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """Run a loss in at least fp32 even under autocast: Gram matrices, large sums and small differences
    lose too much in bf16 (a `.float()` alone is not enough: autocast would cast the matmuls back down).
    Half-precision tensor arguments are raised to fp32; fp32 and fp64 ones are left as they are."""
    if getattr(fn, "_full_precision", False):
        return fn

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> torch.Tensor:
        tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
        device = tensors[0].device.type if tensors else "cpu"
        with torch.autocast(device_type=device, enabled=False):
            return fn(*[_raise_half(a) for a in args], **{k: _raise_half(v) for k, v in kwargs.items()})

    wrapper._full_precision = True  # type: ignore[attr-defined]
    return wrapper


def _raise_half(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.dtype in (torch.float16, torch.bfloat16):
        return value.float()
    return value
