"""DualVGR losses against plain implementations written from their definitions."""

from __future__ import annotations

import pytest
import torch

from vlkd.losses import dualvgr_consistency, feature_kl, get_loss, hsic


def test_consistency_matches_definition() -> None:
    g = torch.Generator().manual_seed(0)
    a, m = torch.randn(3, 8, 16, generator=g), torch.randn(3, 8, 16, generator=g)
    expected = 0.0
    for b in range(3):
        grams = []
        for x in (a[b], m[b]):
            x = x - x.mean(0)
            x = x / x.norm(dim=1, keepdim=True)
            grams.append(x @ x.T)
        expected += ((grams[0] - grams[1]) ** 2).sum().item()
    expected /= 3 * 8 * 8
    assert dualvgr_consistency(a, m).item() == pytest.approx(expected, rel=1e-5)
    assert dualvgr_consistency(a, a * 3.0 + 1.0).item() == pytest.approx(0.0, abs=1e-6)  # scale/shift invariant


def test_hsic_matches_trace_formula_and_vanishes_for_constant_features() -> None:
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(2, 6, 5, generator=g, dtype=torch.float64), torch.randn(2, 6, 7, generator=g,
                                                                              dtype=torch.float64)
    n = 6
    r = torch.eye(n, dtype=torch.float64) - torch.ones(n, n, dtype=torch.float64) / n
    expected = sum(torch.trace(r @ (x[b] @ x[b].T) @ r @ (y[b] @ y[b].T)).item() for b in range(2))
    assert hsic(x, y).item() == pytest.approx(expected, rel=1e-5)
    assert hsic(x, torch.ones(2, 6, 7)).item() == pytest.approx(0.0, abs=1e-5)
    assert get_loss("hsic").fn is hsic


def test_feature_kl_matches_definition() -> None:
    g = torch.Generator().manual_seed(2)
    teacher, student = torch.randn(4, 3, 10, generator=g), torch.randn(4, 3, 10, generator=g)
    t = 2.0
    expected = 0.0
    for b in range(4):
        for n in range(3):
            p = torch.softmax(teacher[b, n] / t, 0)
            q = torch.softmax(student[b, n] / t, 0)
            expected += (p * (p.log() - q.log())).sum().item()
    assert feature_kl(student, teacher, t).item() == pytest.approx(expected / 4, rel=1e-5)
    assert feature_kl(teacher, teacher, t).item() == pytest.approx(0.0, abs=1e-6)
