"""pkt against a loop written from its definition (docs/losses.md) and a value worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from vlkd.losses import get_loss, pkt

MASK = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0]])


def conditional_loop(points: list[list[float]]) -> list[list[float]]:
    """p[i][j] = K(x_i, x_j) / sum_{k != i} K(x_i, x_k), K = (cos + 1) / 2, p[i][i] = 0."""
    def cos(a: list[float], b: list[float]) -> float:
        dot = sum(x * y for x, y in zip(a, b))
        return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))

    n = len(points)
    kernel = [[(cos(points[i], points[j]) + 1) / 2 if i != j else 0.0 for j in range(n)] for i in range(n)]
    return [[k / sum(row) for k in row] for row in kernel]


def pkt_loop(student, teacher, mask, points="tokens", eps=1e-7) -> float:
    def gather(x) -> list[list[float]]:
        out = []
        for b in range(x.shape[0]):
            rows = [x[b, l].tolist() for l in range(x.shape[1]) if mask[b, l]]
            if points == "tokens":
                out += rows
            elif rows:
                out.append([sum(col) / len(rows) for col in zip(*rows)])
        return out

    p_s, p_t = conditional_loop(gather(student)), conditional_loop(gather(teacher))
    n = len(p_s)
    total = 0.0
    for i in range(n):
        for j in range(n):
            if j != i:
                total += p_t[i][j] * math.log((p_t[i][j] + eps) / (p_s[i][j] + eps))
    return total / n


def test_matches_loop_over_tokens_and_sequences_with_other_widths() -> None:
    g = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(3, 6, 5, generator=g), torch.randn(3, 6, 4, generator=g)
    expected = pkt_loop(student, teacher, MASK)
    assert expected > 0.01
    assert pkt(student, teacher, MASK).item() == pytest.approx(expected, rel=1e-5)
    assert pkt(student, teacher, MASK, points="sequences").item() == pytest.approx(
        pkt_loop(student, teacher, MASK, "sequences"), rel=1e-5)
    full = torch.ones(3, 6, dtype=torch.long)
    assert pkt(student, teacher).item() == pytest.approx(pkt_loop(student, teacher, full), rel=1e-5)
    assert get_loss("pkt").fn is pkt and get_loss("pkt").kind == "tokens"


def test_known_value_and_direction() -> None:
    """Teacher points e1, e2, -e1: K = 0.5 between orthogonal, 0 between opposite points, so p_t(.|0) =
    (-, 1, 0), p_t(.|1) = (0.5, -, 0.5), p_t(.|2) = (0, 1, -). Student points e1, e2, e3: every p_s = 0.5.
    KL(t || s) per anchor: log 2, 0, log 2 -> mean (2/3) log 2. The reverse direction puts mass where the
    teacher has none and is large: the loss is KL(teacher || student)."""
    teacher = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]])
    student = torch.eye(3).unsqueeze(0)
    assert pkt(student, teacher).item() == pytest.approx(2 / 3 * math.log(2), abs=1e-6)
    assert pkt(teacher, student).item() > 2.0
    assert pkt(student, student * 3.0).item() == pytest.approx(0.0, abs=1e-6)  # scale-free: cosine kernel


def test_garbage_tail_gradient_and_too_few_points() -> None:
    g = torch.Generator().manual_seed(1)
    student, teacher = torch.randn(3, 6, 4, generator=g), torch.randn(3, 6, 8, generator=g)
    for points in ("tokens", "sequences"):
        clean = pkt(student, teacher, MASK, points=points)
        dirty = student.clone()
        dirty[MASK == 0] = float("inf")
        dirty.requires_grad_(True)
        loss = pkt(dirty, teacher, MASK, points=points)
        assert torch.isfinite(loss) and loss.item() == pytest.approx(clean.item(), rel=1e-6)
        loss.backward()
        assert dirty.grad[MASK == 1].abs().sum() > 0
        assert torch.isfinite(dirty.grad).all() and dirty.grad[MASK == 0].abs().sum() == 0
    one = torch.zeros(3, 6, dtype=torch.long)
    one[0, 0] = 1
    x = student.clone().requires_grad_(True)
    zero = pkt(x, teacher, one)
    assert zero.item() == 0.0
    zero.backward()  # a graph without a point to compare still backpropagates (to zeros)
    with pytest.raises(ValueError, match="points must be"):
        pkt(student, teacher, MASK, points="blocks")
