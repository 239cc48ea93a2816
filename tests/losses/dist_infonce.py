"""Worker for the 2-process InfoNCE gather test (spawned by test_matching.py)."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist

from vlkd.losses import infonce


def worker(rank: int, world: int, out: str) -> None:
    # a file rendezvous: no TCP port to race for with other processes on the machine
    dist.init_process_group("gloo", init_method=f"file://{Path(out) / 'rendezvous'}", rank=rank, world_size=world)
    g = torch.Generator().manual_seed(0)
    text, video = torch.randn(8, 3, 6, generator=g), torch.randn(8, 6, generator=g)
    mask = torch.ones(8, 3)
    rows = slice(rank * 4, (rank + 1) * 4)
    t = text[rows].clone().requires_grad_(True)
    v = video[rows].clone().requires_grad_(True)
    loss = infonce(t, v, mask[rows], gather=True)
    loss.backward()
    torch.save({"loss": loss.detach(), "text_grad": t.grad, "video_grad": v.grad}, Path(out) / f"rank{rank}.pt")
    dist.barrier()  # neither process tears gloo down while the other still talks to it (an abort at exit)
    dist.destroy_process_group()
