"""The one batched inference loop: every item once, in order, in batches, collated, on the device, no grad."""

from __future__ import annotations

import torch

from vlkd.inference import infer, to_device


def collate(items: list[int], generator: torch.Generator | None) -> dict[str, torch.Tensor]:
    noise = torch.rand(len(items), generator=generator) if generator is not None else torch.zeros(len(items))
    return {"x": torch.tensor(items, dtype=torch.float32, requires_grad=True), "noise": noise}


def test_every_item_once_in_order_in_batches_without_grad() -> None:
    seen = []

    def fn(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        seen.append(len(batch["x"]))
        return batch["x"] * 2

    out = infer(fn, list(range(7)), collate, 3)
    assert seen == [3, 3, 1]
    assert torch.equal(torch.cat(out), torch.arange(7, dtype=torch.float32) * 2)
    assert not any(o.requires_grad for o in out)
    assert infer(fn, [], collate, 3) == []


def test_each_batch_gets_the_generator_of_its_first_item() -> None:
    starts = []

    def generator(k: int) -> torch.Generator:
        starts.append(k)
        return torch.Generator().manual_seed(k)

    out = infer(lambda b: b["noise"], list(range(5)), collate, 2, generator=generator)
    assert starts == [0, 2, 4]
    assert torch.equal(out[1], torch.rand(2, generator=torch.Generator().manual_seed(2)))


def test_to_device_moves_tensors_and_keeps_the_rest() -> None:
    batch = {"x": torch.ones(2, dtype=torch.float64), "name": "kept"}
    moved = to_device(batch, "meta")
    assert moved["x"].device.type == "meta" and moved["x"].dtype == torch.float64 and moved["name"] == "kept"
    assert to_device(batch, None) is batch
