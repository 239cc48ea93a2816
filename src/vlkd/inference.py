"""Batched inference over a dataset, and moving a batch to its device: the one loop every evaluation,
prediction and encoding pass uses (training batches go through `to_device` too)."""

from __future__ import annotations

from typing import Any, Callable, Sequence, TypeVar

import torch

Out = TypeVar("Out")
Batch = dict[str, torch.Tensor]


def to_device(batch: dict[str, Any], device: torch.device | str | None) -> dict[str, Any]:
    """The batch with its tensors on `device` (unchanged for None); other values are kept as they are."""
    if device is None:
        return batch
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


@torch.no_grad()
def infer(fn: Callable[[Batch], Out], items: Sequence[Any], collate: Callable[..., Batch], batch_size: int,
          device: torch.device | str | None = None,
          generator: Callable[[int], torch.Generator | None] | None = None) -> list[Out]:
    """`fn` of each batch of `items`, in order, without gradients: items [k, k + batch_size) are collated
    as `collate(chunk, generator(k))` (None without `generator`: an unmasked, deterministic batch) and
    moved to `device`. Returns one output per batch; the caller concatenates them as it needs."""
    outputs = []
    for start in range(0, len(items), batch_size):
        chunk = [items[i] for i in range(start, min(start + batch_size, len(items)))]
        batch = collate(chunk, generator(start) if generator is not None else None)
        outputs.append(fn(to_device(batch, device)))
    return outputs
