"""Gradient shares per loss term (engine/grad_share.py): the norms against gradients worked out by hand, and
a run that logs them trains exactly like one that does not (same weights, same training records)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from vlkd.engine import Job, train
from vlkd.engine.grad_share import shares, term_gradient_norms

from tests.engine.regression_job import X, Y, collate, make_config


class Linear(nn.Module):
    """loss = 2 * sum(w) + 3 * (w . x) + 0 * sum(w^2), each term logged unweighted."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor([1.0, -2.0, 0.5]))

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        torch.rand(1)  # a draw from the global RNG, as dropout would make
        total, dot, square = self.w.sum(), self.w @ batch["x"], self.w.pow(2).sum()
        return {"loss": 2 * total + 3 * dot, "total": total, "dot": dot, "square": square}


def weighted(out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {"total": 2 * out["total"], "dot": 3 * out["dot"], "square": 0 * out["square"]}


def test_norms_are_the_weighted_terms_gradients_and_nothing_else_moves() -> None:
    module, x = Linear(), torch.tensor([3.0, 0.0, 4.0])
    rng = torch.get_rng_state()
    norms = term_gradient_norms(module, {"x": x}, weighted, module.parameters())
    # d(2 sum w)/dw = (2, 2, 2): norm 2 sqrt(3); d(3 w.x)/dw = 3x: norm 15; the weight-0 term: 0
    assert norms == pytest.approx({"total": 2 * math.sqrt(3), "dot": 15.0, "square": 0.0})
    assert module.w.grad is None and torch.equal(torch.get_rng_state(), rng)
    got = shares(norms)
    total = 2 * math.sqrt(3) + 15
    assert got == pytest.approx({"grad_share_total": 2 * math.sqrt(3) / total, "grad_share_dot": 15 / total,
                                 "grad_share_square": 0.0})
    assert shares({"a": 0.0, "b": 0.0}) == {"grad_share_a": 0.0, "grad_share_b": 0.0}


class TwoTerms(nn.Module):
    """Regression with dropout (so the RNG matters) and an L2 term: loss = mse + 0.1 * l2."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(6, 1)
        self.dropout = nn.Dropout(0.3)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        mse = ((self.linear(self.dropout(batch["x"])) - batch["y"]) ** 2).mean()
        l2 = self.linear.weight.pow(2).sum()
        return {"loss": mse + 0.1 * l2, "mse": mse, "l2": l2}


def two_terms_job(with_shares: bool):
    def build(config) -> Job:
        def save_final(m: nn.Module, path: Path) -> None:
            path.mkdir(parents=True, exist_ok=True)
            torch.save(m.state_dict(), path / "weights.pt")

        terms = (lambda out: {"mse": out["mse"], "l2": 0.1 * out["l2"]}) if with_shares else None
        return Job(module=TwoTerms(), train_data=list(range(56)), valid_data=list(range(56, 64)), collate=collate,
                   save_final=save_final, loss_terms=terms)

    return build


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_logging_shares_does_not_change_training(tmp_path: Path) -> None:
    assert X.shape[0] == Y.shape[0] == 64
    plain = train(make_config(tmp_path / "plain", eval_every=4, eval_at_start=True), two_terms_job(False))
    shared = train(make_config(tmp_path / "shared", eval_every=4, eval_at_start=True), two_terms_job(True))
    a, b = torch.load(plain / "final" / "weights.pt"), torch.load(shared / "final" / "weights.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    timing = {"seconds", "tokens_per_s"}
    strip = [{k: v for k, v in r.items() if k not in timing and not k.startswith("grad_share_")}
             for r in records(plain)]
    assert strip == [{k: v for k, v in r.items() if k not in timing and not k.startswith("grad_share_")}
                     for r in records(shared)]
    evals = [r for r in records(shared) if "valid_loss" in r]
    assert [r["step"] for r in evals] == [0, 4, 8, 12]
    for r in evals:
        assert r["grad_share_mse"] + r["grad_share_l2"] == pytest.approx(1.0) and 0 < r["grad_share_l2"] < 1
    assert not [k for r in records(plain) for k in r if k.startswith("grad_share_")]
    results = json.loads((shared / "results.json").read_text())
    assert not [k for k in results if k.startswith("grad_share_")]  # metrics.jsonl only
