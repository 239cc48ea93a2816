"""mmd_rbf against a per-sequence loop written from its definition (docs/losses.md)."""

from __future__ import annotations

import math

import pytest
import torch

from vlkd.losses import get_loss, mmd_rbf

MASK = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0]])


def mmd_loop(student, teacher, mask, kernels=5, multiplier=2.0) -> float:
    total = 0.0
    for b in range(student.shape[0]):
        valid = [l for l in range(student.shape[1]) if mask[b, l]]
        z = [student[b, l].tolist() for l in valid] + [teacher[b, l].tolist() for l in valid]
        n, m = len(valid), 2 * len(valid)
        d = [[sum((p - q) ** 2 for p, q in zip(z[i], z[j])) for j in range(m)] for i in range(m)]
        s = sum(map(sum, d)) / (m * m - m)
        widths = [s * multiplier ** (k - kernels // 2) for k in range(kernels)]
        kern = [[sum(math.exp(-d[i][j] / w) for w in widths) for j in range(m)] for i in range(m)]

        def block_mean(rows, cols) -> float:
            return sum(kern[i][j] for i in rows for j in cols) / (n * n)

        xs, ys = range(n), range(n, m)
        total += block_mean(xs, xs) + block_mean(ys, ys) - 2 * block_mean(xs, ys)
    return total / student.shape[0]


def test_matches_loop_with_variable_lengths() -> None:
    g = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(3, 6, 4, generator=g), torch.randn(3, 6, 4, generator=g) + 0.5
    expected = mmd_loop(student, teacher, MASK)
    assert expected > 0.01
    assert mmd_rbf(student, teacher, MASK).item() == pytest.approx(expected, rel=1e-4)
    assert mmd_rbf(student, teacher, MASK, kernels=3, multiplier=3.0).item() == pytest.approx(
        mmd_loop(student, teacher, MASK, 3, 3.0), rel=1e-4)
    full = torch.ones(3, 6, dtype=torch.long)
    assert mmd_rbf(student, teacher).item() == pytest.approx(mmd_loop(student, teacher, full), rel=1e-4)
    assert get_loss("mmd_rbf").fn is mmd_rbf


def test_zero_for_identical_inputs_finite_with_a_garbage_tail_and_gradient() -> None:
    g = torch.Generator().manual_seed(1)
    teacher = torch.randn(3, 6, 4, generator=g)
    assert mmd_rbf(teacher, teacher, MASK).item() == pytest.approx(0.0, abs=1e-6)
    assert mmd_rbf(torch.ones(2, 3, 4), torch.ones(2, 3, 4)).item() == pytest.approx(0.0, abs=1e-6)  # D = 0 = s
    student = torch.randn(3, 6, 4, generator=g)
    clean = mmd_rbf(student, teacher, MASK)
    student[MASK == 0] = float("inf")  # the masked-out tail does not enter
    student.requires_grad_(True)
    loss = mmd_rbf(student, teacher, MASK)
    assert torch.isfinite(loss) and loss.item() == pytest.approx(clean.item(), rel=1e-6)
    loss.backward()
    assert student.grad[MASK == 1].abs().sum() > 0
    assert torch.isfinite(student.grad).all() and student.grad[MASK == 0].abs().sum() == 0


def test_bandwidth_carries_no_gradient() -> None:
    """With s detached, the gradient is that of the kernel sum at a fixed bandwidth (finite differences on
    the student with s held at its value would otherwise differ)."""
    g = torch.Generator().manual_seed(2)
    student = torch.randn(1, 3, 2, generator=g, dtype=torch.float64).requires_grad_(True)
    teacher = torch.randn(1, 3, 2, generator=g, dtype=torch.float64)
    mmd_rbf(student, teacher, kernels=1).backward()
    x, y = student.detach()[0], teacher[0]
    z = torch.cat([x, y])
    s = torch.cdist(z, z).pow(2).sum() / 30  # m = 6

    def fixed_bandwidth(xx: torch.Tensor) -> torch.Tensor:
        zz = torch.cat([xx, y])
        k = torch.exp(-torch.cdist(zz, zz).pow(2) / s)
        return k[:3, :3].mean() + k[3:, 3:].mean() - 2 * k[:3, 3:].mean()

    expected = torch.autograd.functional.jacobian(fixed_bandwidth, x)
    torch.testing.assert_close(student.grad[0].double(), expected.double(), rtol=1e-4, atol=1e-6)


def test_empty_sequence_is_left_out_and_widths_must_match() -> None:
    g = torch.Generator().manual_seed(3)
    student, teacher = torch.randn(3, 6, 4, generator=g), torch.randn(3, 6, 4, generator=g)
    mask = MASK.clone()
    mask[2] = 0
    expected = mmd_loop(student[:2], teacher[:2], mask[:2])
    assert mmd_rbf(student, teacher, mask).item() == pytest.approx(expected, rel=1e-4)
    with pytest.raises(ValueError, match="student width 3 != teacher width 4"):
        mmd_rbf(torch.randn(2, 3, 3), torch.randn(2, 3, 4))


def test_fp32_under_autocast() -> None:
    g = torch.Generator().manual_seed(4)
    student, teacher = torch.randn(2, 5, 8, generator=g), torch.randn(2, 5, 8, generator=g)
    exact = mmd_rbf(student, teacher)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = mmd_rbf(student, teacher)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, exact, rtol=1e-6, atol=1e-6)
