"""soft_kl, nst and its compact Gram form (nst_gram) against plain implementations from their definitions."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vlkd.losses import nst, nst_gram, pack_upper, soft_kl, teacher_gram, unpack_upper


def test_soft_kl_matches_definition() -> None:
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(2, 3, 7, generator=g), torch.randn(2, 3, 7, generator=g)
    temp = 3.0
    expected = 0.0
    for i in range(2):
        for j in range(3):
            p = torch.softmax(t[i, j] / temp, 0)
            q = torch.softmax(s[i, j] / temp, 0)
            expected += (p * (p.log() - q.log())).sum().item()
    assert soft_kl(s, t, temp).item() == pytest.approx(temp**2 * expected / 6, rel=1e-5)


def nst_loop(student, teacher, mask) -> float:
    total = 0.0
    for b in range(student.shape[0]):
        s = (student[b] * mask[b, :, None]).T  # (H_s, L)
        t = (teacher[b] * mask[b, :, None]).T
        s = s / s.norm(dim=1, keepdim=True)
        t = t / t.norm(dim=1, keepdim=True)

        def k(xs, ys):
            return sum((xa @ yb) ** 2 for xa in xs for yb in ys) / (len(xs) * len(ys))

        total += (k(s, s) + k(t, t) - 2 * k(s, t)).item()
    return total / student.shape[0]


def test_nst_matches_per_sample_loop_with_mask_and_different_widths() -> None:
    g = torch.Generator().manual_seed(1)
    student = F.normalize(torch.randn(3, 6, 4, generator=g), dim=-1)
    teacher = F.normalize(torch.randn(3, 6, 5, generator=g), dim=-1)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0]])
    assert nst(student, teacher, mask).item() == pytest.approx(nst_loop(student, teacher, mask), rel=1e-5)
    assert nst(teacher, teacher, mask).item() == pytest.approx(0.0, abs=1e-6)

def test_nst_gram_equals_nst_from_full_targets() -> None:
    g = torch.Generator().manual_seed(2)
    student = F.normalize(torch.randn(3, 7, 5, generator=g), dim=-1)
    teacher = F.normalize(torch.randn(3, 7, 9, generator=g), dim=-1)
    mask = torch.tensor([[1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0, 0]])
    gram = teacher_gram(teacher, mask)
    assert gram.shape == (3, 7, 7)
    # G is the Gram of the channel-normalised teacher: G[l, l'] = sum_c t_c[l] t_c[l'] (loop over channels)
    t = (teacher[2] * mask[2, :, None]).T
    t = t / t.norm(dim=1, keepdim=True)
    expected = sum(torch.outer(t[c], t[c]) for c in range(9))
    torch.testing.assert_close(gram[2], expected, rtol=1e-5, atol=1e-6)
    expected_nst = nst(student, teacher, mask)
    assert expected_nst.item() > 0.01  # not trivially zero
    ours = nst_gram(student, gram, mask, 9)
    assert ours.item() == pytest.approx(expected_nst.item(), abs=1e-5)
    assert ours.item() == pytest.approx(nst_loop(student, teacher, mask), abs=1e-5)
    assert nst_gram(student, gram, None, 9).item() != pytest.approx(ours.item(), abs=1e-3)  # the mask matters
    no_mask = nst_gram(student, teacher_gram(teacher), None, 9)
    assert no_mask.item() == pytest.approx(nst(student, teacher).item(), abs=1e-5)
    assert nst_gram(teacher, teacher_gram(teacher, mask), mask, 9).item() == pytest.approx(0.0, abs=1e-6)


def test_nst_gram_from_packed_cache_and_gradient() -> None:
    g = torch.Generator().manual_seed(3)
    teacher = F.normalize(torch.randn(2, 6, 8, generator=g), dim=-1)
    gram = teacher_gram(teacher)
    packed = pack_upper(gram)
    assert packed.shape == (2, 6 * 7 // 2)
    assert packed[0, 1].item() == gram[0, 0, 1].item() and packed[0, 6].item() == gram[0, 1, 1].item()
    assert torch.equal(unpack_upper(packed, 6), gram)
    with pytest.raises(ValueError, match="not L"):
        unpack_upper(packed, 5)
    student = F.normalize(torch.randn(2, 6, 4, generator=g), dim=-1).requires_grad_(True)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
    loss = nst_gram(student, unpack_upper(pack_upper(teacher_gram(teacher, mask)).half(), 6), mask, 8)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(nst(student, teacher, mask).item(), abs=1e-3)  # from an fp16 cache
    loss.backward()
    assert student.grad.abs().sum() > 0
    assert student.grad[0, 4:].abs().sum() == 0  # masked positions get no gradient


def test_nst_position_gram_form_matches_the_loop_when_channels_outnumber_positions() -> None:
    g = torch.Generator().manual_seed(5)
    student = F.normalize(torch.randn(3, 6, 16, generator=g), dim=-1)  # L=6 < H: the (L, L) Gram form
    teacher = F.normalize(torch.randn(3, 6, 24, generator=g), dim=-1)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]])
    assert nst(student, teacher, mask).item() == pytest.approx(nst_loop(student, teacher, mask), rel=1e-5)
    assert nst(teacher, teacher, mask).item() == pytest.approx(0.0, abs=1e-6)
