"""The one loss registry: configs name losses; recipes look them up here."""

from __future__ import annotations

import functools
from typing import Any, Callable

import torch

from vlkd.errors import VlkdError

LOSSES: dict[str, Callable] = {}


def register_loss(name: str) -> Callable[[Callable], Callable]:
    """Decorator: register a loss function (or module class) under `name`."""

    def wrap(fn: Callable) -> Callable:
        if name in LOSSES:
            raise ValueError(f"loss {name!r} registered twice")
        LOSSES[name] = fn
        return fn

    return wrap


def get_loss(name: str) -> Callable:
    if name not in LOSSES:
        raise VlkdError(f"unknown loss {name!r} (registered: {', '.join(sorted(LOSSES))})")
    return LOSSES[name]


def full_precision(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """Run a loss in fp32 even under autocast: its Gram matrices, large sums and small differences lose
    too much in bf16 (a `.float()` alone is not enough: autocast would cast the matmuls back down)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> torch.Tensor:
        tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
        device = tensors[0].device.type if tensors else "cpu"
        with torch.autocast(device_type=device, enabled=False):
            return fn(*[_fp32(a) for a in args], **{k: _fp32(v) for k, v in kwargs.items()})

    return wrapper


def _fp32(value: Any) -> Any:
    return value.float() if isinstance(value, torch.Tensor) and value.is_floating_point() else value
