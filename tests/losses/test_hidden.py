"""hidden_mse and hidden_cos against plain per-token loops written from their definitions."""

from __future__ import annotations

import math

import pytest
import torch

from vlkd.losses import get_loss, hidden_cos, hidden_mse

MASK = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])


def per_token_mean(fn, student, teacher, mask) -> float:
    values = [fn(student[b, l], teacher[b, l]) for b in range(student.shape[0]) for l in range(student.shape[1])
              if mask[b, l]]
    return sum(values) / len(values)


def mse(s, t) -> float:
    return sum((s[c] - t[c]).item() ** 2 for c in range(len(s))) / len(s)


def one_minus_cos(s, t) -> float:
    dot = sum(s[c].item() * t[c].item() for c in range(len(s)))
    return 1.0 - dot / (math.sqrt(sum(x.item() ** 2 for x in s)) * math.sqrt(sum(x.item() ** 2 for x in t)))


@pytest.mark.parametrize(("loss", "reference"), [(hidden_mse, mse), (hidden_cos, one_minus_cos)])
def test_matches_per_token_loop_with_mask(loss, reference) -> None:
    g = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(3, 5, 6, generator=g), torch.randn(3, 5, 6, generator=g)
    assert loss(student, teacher, MASK).item() == pytest.approx(per_token_mean(reference, student, teacher, MASK),
                                                                rel=1e-5)
    everything = torch.ones(3, 5, dtype=torch.long)
    assert loss(student, teacher).item() == pytest.approx(per_token_mean(reference, student, teacher, everything),
                                                          rel=1e-5)
    assert loss(teacher, teacher, MASK).item() == pytest.approx(0.0, abs=1e-6)
    assert get_loss(loss.__name__).fn is loss


@pytest.mark.parametrize("loss", [hidden_mse, hidden_cos])
def test_masked_tail_is_ignored_and_gradient_reaches_the_student(loss) -> None:
    g = torch.Generator().manual_seed(1)
    student = torch.randn(3, 5, 6, generator=g).requires_grad_(True)
    teacher = torch.randn(3, 5, 6, generator=g)
    changed = teacher.clone()
    changed[MASK == 0] = 1e3  # the masked-out tail does not enter the value
    value = loss(student, changed, MASK)
    assert torch.isfinite(value)
    assert value.item() == pytest.approx(loss(student, teacher, MASK).item(), rel=1e-6)
    value.backward()
    assert student.grad[MASK == 1].abs().sum() > 0
    assert student.grad[MASK == 0].abs().sum() == 0
    assert torch.isfinite(loss(torch.zeros(3, 5, 6), teacher, MASK))  # zero vectors: cos is defined (0)


@pytest.mark.parametrize("loss", [hidden_mse, hidden_cos])
def test_widths_must_match(loss) -> None:
    with pytest.raises(ValueError, match="student width 4 != teacher width 6"):
        loss(torch.randn(2, 3, 4), torch.randn(2, 3, 6))


def test_fp32_under_autocast() -> None:
    g = torch.Generator().manual_seed(2)
    student, teacher = torch.randn(2, 4, 8, generator=g), torch.randn(2, 4, 8, generator=g)
    for fn in (hidden_mse, hidden_cos):
        exact = fn(student.bfloat16().float(), teacher)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = fn(student.bfloat16(), teacher)  # a bf16 student under autocast: computed in fp32
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, exact, rtol=1e-6, atol=1e-6)
