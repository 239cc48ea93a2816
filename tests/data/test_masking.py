from __future__ import annotations

import torch

from vlkd.data.masking import mask_tokens
from vlkd.losses.mlm import IGNORE_INDEX


def test_masking_rates_follow_bert_80_10_10() -> None:
    ids = torch.randint(1000, 2000, (64, 512))
    special = torch.zeros_like(ids, dtype=torch.bool)
    special[:, 0] = special[:, -1] = True
    g = torch.Generator().manual_seed(0)
    masked, labels = mask_tokens(ids, special, mask_id=103, vocab_size=999, probability=0.15, generator=g)
    selected = labels != IGNORE_INDEX
    assert not selected[special].any()
    assert abs(selected.float().mean().item() - 0.15 * 510 / 512) < 0.005
    assert torch.equal(labels[selected], ids[selected])
    n = selected.sum().item()
    as_mask = (masked == 103) & selected
    random = selected & (masked != 103) & (masked != ids)
    unchanged = selected & (masked == ids)
    assert abs(as_mask.sum().item() / n - 0.8) < 0.02
    assert abs(random.sum().item() / n - 0.1) < 0.02  # random ids come from [0, 999): never equal to ids
    assert abs(unchanged.sum().item() / n - 0.1) < 0.02
    assert torch.equal(masked[~selected], ids[~selected])


def test_masking_is_deterministic_for_a_seed_and_never_empty() -> None:
    ids = torch.randint(1000, 2000, (4, 32))
    special = torch.zeros_like(ids, dtype=torch.bool)
    a = mask_tokens(ids, special, mask_id=103, vocab_size=50, generator=torch.Generator().manual_seed(3))
    b = mask_tokens(ids, special, mask_id=103, vocab_size=50, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    one = torch.randint(1000, 2000, (1, 3))
    _, labels = mask_tokens(one, torch.zeros_like(one, dtype=torch.bool), mask_id=103, vocab_size=50,
                            probability=1e-9, generator=torch.Generator().manual_seed(0))
    assert (labels != IGNORE_INDEX).sum() == 1
