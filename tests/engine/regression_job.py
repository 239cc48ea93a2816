"""A tiny deterministic job (linear regression) for engine tests; also runnable under torchrun:
`torchrun --nproc_per_node N tests/engine/regression_job.py OUT_DIR [grad_accum]`."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

from vlkd.config import TrainConfig
from vlkd.engine import Job, train

_g = torch.Generator().manual_seed(0)
X = torch.randn(64, 6, generator=_g)
Y = X @ torch.randn(6, 1, generator=_g) + 0.1 * torch.randn(64, 1, generator=_g)


class Regression(nn.Module):
    """`nan_at_call`: the forward call(s) (1-based) whose loss is NaN; `on_call(n)`: a hook run at every call."""

    def __init__(self, nan_at_call: int | set[int] = -1, on_call=None) -> None:
        super().__init__()
        self.linear = nn.Linear(6, 1)
        self.norm = nn.LayerNorm(6)
        self.calls, self.on_call = 0, on_call
        self.nan_calls = {nan_at_call} if isinstance(nan_at_call, int) else set(nan_at_call)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self.calls += 1
        if self.on_call is not None:
            self.on_call(self.calls)
        err = ((self.linear(self.norm(batch["x"])) - batch["y"]) ** 2).mean()
        if self.calls in self.nan_calls:
            err = err * float("nan")
        return {"loss": err, "mse": err}


def collate(items: list[int], g: torch.Generator) -> dict[str, torch.Tensor]:
    idx = torch.tensor(items)
    return {"x": X[idx], "y": Y[idx]}


def job_factory(nan_at_call: int | set[int] = -1, on_call=None):
    def build(config: TrainConfig) -> Job:
        def save_final(m: nn.Module, path: Path) -> None:
            path.mkdir(parents=True, exist_ok=True)
            torch.save(m.state_dict(), path / "weights.pt")

        return Job(module=Regression(nan_at_call, on_call), train_data=list(range(56)), valid_data=list(range(56, 64)),
                   collate=collate, save_final=save_final)

    return build


def make_config(out: Path, **kw) -> TrainConfig:
    base = dict(task="regression", output_dir=str(out), max_steps=12, batch_size=8, lr=0.05, warmup=2,
                log_every=3, save_every=4, progress=False, weight_decay=0.1)
    base.update(kw)
    return TrainConfig(**base)


if __name__ == "__main__":
    accum = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    train(make_config(Path(sys.argv[1]), grad_accum=accum, eval_batches=1), job_factory())
