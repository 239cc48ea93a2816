"""ntxent against a plain loop over positions and anchors written from its definition (docs/losses.md)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vlkd.losses import get_loss, ntxent

MASK = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]])


def ntxent_loop(student, teacher, mask, tau) -> float:
    b, l = student.shape[:2]
    losses = []
    for pos in range(l):
        # the candidates at this position: the valid vectors of both sides, tagged (side, sequence)
        vectors = {(side, i): (student if side == 0 else teacher)[i, pos] for side in (0, 1) for i in range(b)
                   if mask[i, pos]}
        for (side, i), anchor in vectors.items():
            positive = vectors[(1 - side, i)]
            denominator = sum(math.exp((anchor @ c).item() / tau) for key, c in vectors.items() if key != (side, i))
            losses.append(-math.log(math.exp((anchor @ positive).item() / tau) / denominator))
    return sum(losses) / len(losses)


def unit(*shape: int, seed: int) -> torch.Tensor:
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=-1)


def test_matches_loop_with_and_without_mask() -> None:
    student, teacher = unit(4, 5, 6, seed=0), unit(4, 5, 6, seed=1)
    assert ntxent(student, teacher, MASK, 0.3).item() == pytest.approx(ntxent_loop(student, teacher, MASK, 0.3),
                                                                       rel=1e-5)
    full = torch.ones(4, 5, dtype=torch.long)
    assert ntxent(student, teacher).item() == pytest.approx(ntxent_loop(student, teacher, full, 0.5), rel=1e-5)
    assert get_loss("ntxent").fn is ntxent


def test_known_values() -> None:
    # B = 1: the positive is the only candidate, log(1) = 0
    assert ntxent(unit(1, 3, 4, seed=2), unit(1, 3, 4, seed=3)).item() == pytest.approx(0.0, abs=1e-6)
    # all vectors equal: every anchor has 2B - 1 equal candidates, loss = log(2B - 1)
    same = F.normalize(torch.ones(3, 2, 4), dim=-1)
    assert ntxent(same, same).item() == pytest.approx(math.log(5), abs=1e-5)


def test_inputs_are_not_renormalised() -> None:
    """The definition takes normalised inputs as given: scaling them changes the logits (documented)."""
    student, teacher = unit(3, 2, 4, seed=4), unit(3, 2, 4, seed=5)
    full = torch.ones(3, 2)
    assert ntxent(2 * student, teacher).item() == pytest.approx(ntxent_loop(2 * student, teacher, full, 0.5),
                                                                rel=1e-5)
    assert ntxent(2 * student, teacher).item() != pytest.approx(ntxent(student, teacher).item(), rel=1e-3)


def test_masked_tail_ignored_and_gradient_reaches_the_student() -> None:
    student, teacher = unit(4, 5, 6, seed=6), unit(4, 5, 6, seed=7)
    clean = ntxent(student, teacher, MASK)
    student[MASK == 0] = float("nan")
    student.requires_grad_(True)
    loss = ntxent(student, teacher, MASK)
    assert torch.isfinite(loss) and loss.item() == pytest.approx(clean.item(), rel=1e-6)
    loss.backward()
    assert student.grad[MASK == 1].abs().sum() > 0
    assert torch.isfinite(student.grad).all() and student.grad[MASK == 0].abs().sum() == 0


def test_fp32_under_autocast() -> None:
    student, teacher = unit(3, 4, 8, seed=8), unit(3, 4, 8, seed=9)
    exact = ntxent(student, teacher)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = ntxent(student, teacher)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, exact, rtol=1e-6, atol=1e-6)
