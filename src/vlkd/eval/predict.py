"""Model outputs over a whole evaluation set, sharded over processes, every item exactly once."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch
from accelerate import PartialState
from accelerate.utils import gather_object
from torch.utils.data import Subset

from vlkd.data.tasks.encode import PadCollate
from vlkd.inference import infer


def predict(logits_fn: Callable[[dict[str, torch.Tensor]], torch.Tensor], items: Sequence[Any], collate: PadCollate,
            batch_size: int) -> np.ndarray:
    """Stacked outputs for `items`, in order. Process r of P scores items r, r+P, ...; the shards are
    gathered on every process, so each item is counted once whatever the number of processes."""
    state = PartialState()
    mine = list(range(state.process_index, len(items), state.num_processes))
    # longest-first inside the shard: little padding per batch
    mine.sort(key=lambda i: -_length(items[i]))
    outputs = infer(lambda batch: logits_fn(batch).float().cpu().numpy(), Subset(items, mine), collate, batch_size,
                    state.device)
    results: list[tuple[int, np.ndarray]] = list(zip(mine, (row for out in outputs for row in out)))
    if state.num_processes > 1:
        results = gather_object(results)
    results.sort(key=lambda r: r[0])
    assert [r[0] for r in results] == list(range(len(items))), "every item exactly once"
    return np.stack([r[1] for r in results]) if results else np.zeros((0,))


def _length(item: dict[str, Any]) -> int:
    ids = item["input_ids"]
    return max(len(s) for s in ids) if isinstance(ids, list) else len(ids)
