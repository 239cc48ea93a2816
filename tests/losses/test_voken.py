"""voken and assign_vokens against plain loops written from their definitions."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vlkd.losses import assign_vokens, get_loss, voken


def ce_loop(logits, targets, mask) -> float:
    values = []
    for b in range(logits.shape[0]):
        for l in range(logits.shape[1]):
            if mask[b, l]:
                row = logits[b, l].tolist()
                log_z = math.log(sum(math.exp(x) for x in row))
                values.append(log_z - row[targets[b, l]])
    return sum(values) / len(values)


def test_voken_matches_loop_over_valid_tokens() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 7, generator=g)
    targets = torch.randint(7, (3, 5), generator=g, dtype=torch.int32)  # the cache stores int32
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0]])
    assert voken(logits, targets, mask).item() == pytest.approx(ce_loop(logits, targets, mask), rel=1e-5)
    assert voken(logits, targets).item() == pytest.approx(ce_loop(logits, targets, torch.ones(3, 5)), rel=1e-5)
    assert get_loss("voken").fn is voken


def test_voken_masked_tail_is_never_read_and_gradient_reaches_the_logits() -> None:
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 4, 6, generator=g)
    logits[0, 2:] = float("nan")  # garbage in the masked-out tail
    logits.requires_grad_(True)
    targets = torch.randint(6, (2, 4), generator=g)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    loss = voken(logits, targets, mask)
    assert torch.isfinite(loss)
    loss.backward()
    assert logits.grad[mask == 1].abs().sum() > 0 and logits.grad[mask == 0].abs().sum() == 0
    assert voken(torch.randn(2, 4, 6), targets, torch.zeros(2, 4)).item() == 0.0


def test_assign_vokens_is_the_exact_nearest_by_inner_product() -> None:
    g = torch.Generator().manual_seed(2)
    tokens = F.normalize(torch.randn(3, 4, 8, generator=g), dim=-1)
    bank = F.normalize(torch.randn(20, 8, generator=g), dim=-1)
    ids = assign_vokens(tokens, bank)
    assert ids.dtype == torch.int64 and ids.shape == (3, 4)
    for b in range(3):
        for l in range(4):
            scores = [sum(tokens[b, l, c].item() * bank[v, c].item() for c in range(8)) for v in range(20)]
            assert ids[b, l].item() == max(range(20), key=lambda v: scores[v])
    assert torch.equal(assign_vokens(bank[None, [3, 17, 5]], bank), torch.tensor([[3, 17, 5]]))
