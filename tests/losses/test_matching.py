"""paired_hinge and infonce against straightforward loop implementations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vlkd.losses import get_loss, infonce, paired_hinge


def cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a @ b / (a.norm() * b.norm())).item()


def hinge_loop(text, video, mask, margin, negatives, text_negatives=False) -> float:
    b = text.shape[0]
    terms = []  # one averaged value per valid token
    for i in range(b):
        js = [(i + b // 2) % b] if negatives == "halfswap" else [j for j in range(b) if j != i]
        for t in range(text.shape[1]):
            if mask[i, t]:
                per_neg = [max(0.0, margin - cos(text[i, t], video[i]) + cos(text[i, t], video[j])) for j in js]
                terms.append(sum(per_neg) / len(per_neg))
    loss = sum(terms) / len(terms)
    if text_negatives:
        def score(sent: int, vid: int) -> float:
            vals = [cos(text[sent, t], video[vid]) for t in range(text.shape[1]) if mask[sent, t]]
            return sum(vals) / len(vals)
        side = []
        for i in range(b):
            js = [(i + b // 2) % b] if negatives == "halfswap" else [j for j in range(b) if j != i]
            side += [max(0.0, margin - score(i, i) + score(j, i)) for j in js]
        loss += sum(side) / len(side)
    return loss


@pytest.mark.parametrize("negatives", ["halfswap", "all"])
@pytest.mark.parametrize("text_negatives", [False, True])
def test_paired_hinge_matches_loop(negatives: str, text_negatives: bool) -> None:
    g = torch.Generator().manual_seed(0)
    text, video = torch.randn(4, 5, 8, generator=g), torch.randn(4, 8, generator=g)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0], [1, 1, 1, 1, 0]])
    ours = paired_hinge(text, video, mask, margin=0.5, negatives=negatives, text_negatives=text_negatives)
    assert ours.item() == pytest.approx(hinge_loop(text, video, mask, 0.5, negatives, text_negatives), abs=1e-5)


def test_paired_hinge_known_values_and_gradients() -> None:
    # perfectly aligned pairs with orthogonal negatives: every term is max(0, 1 - 1 + 0) = 0
    video = torch.eye(4)
    text = video.unsqueeze(1).repeat(1, 3, 1)
    assert paired_hinge(text, video, torch.ones(4, 3)).item() == pytest.approx(0.0)
    # text identical to its negative video: each term is margin - 0 + 1 = 2
    swapped = video[[2, 3, 0, 1]].unsqueeze(1).repeat(1, 3, 1)
    assert paired_hinge(swapped, video, torch.ones(4, 3)).item() == pytest.approx(2.0)
    video = torch.randn(4, 6, requires_grad=True)
    paired_hinge(torch.randn(4, 3, 6), video, torch.ones(4, 3), margin=2.0).backward()
    assert video.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="even batch"):
        paired_hinge(torch.randn(3, 2, 4), torch.randn(3, 4), torch.ones(3, 2))
    assert get_loss("paired_hinge").fn is paired_hinge


def infonce_loop(text, video, mask, tau, similarity) -> float:
    b = text.shape[0]
    sims = torch.zeros(b, b)
    for i in range(b):
        valid = [t for t in range(text.shape[1]) if mask[i, t]]
        for j in range(b):
            if similarity == "sentence":
                sent = sum(F.normalize(text[i, t], dim=0) for t in valid) / len(valid)
                sims[i, j] = cos(sent, video[j])
            else:
                sims[i, j] = sum(cos(text[i, t], video[j]) for t in valid) / len(valid)
    total = 0.0
    for i in range(b):
        row = sims[i] / tau
        col = sims[:, i] / tau
        total += -(row[i] - torch.logsumexp(row, 0)).item() - (col[i] - torch.logsumexp(col, 0)).item()
    return total / (2 * b)


@pytest.mark.parametrize("similarity", ["sentence", "token_mean"])
def test_infonce_matches_loop(similarity: str) -> None:
    g = torch.Generator().manual_seed(1)
    text, video = torch.randn(5, 4, 8, generator=g), torch.randn(5, 8, generator=g)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0], [1, 1, 1, 0], [1, 1, 0, 0]])
    ours = infonce(text, video, mask, temperature=0.1, similarity=similarity)
    assert ours.item() == pytest.approx(infonce_loop(text, video, mask, 0.1, similarity), abs=1e-4)


def test_infonce_known_value_for_uninformative_features() -> None:
    # identical captions and videos: every logit equal, loss = log(B)
    loss = infonce(torch.ones(6, 3, 4), torch.ones(6, 4), torch.ones(6, 3))
    assert loss.item() == pytest.approx(math.log(6), abs=1e-5)


def test_infonce_gathered_over_two_processes_matches_one_process(tmp_path) -> None:
    """Negatives come from both processes; after DDP's averaging (/2) the gradient is the full batch's."""
    import torch.multiprocessing as mp

    from tests.losses.dist_infonce import worker

    mp.spawn(worker, args=(2, str(tmp_path)), nprocs=2, join=True)
    g = torch.Generator().manual_seed(0)
    text = torch.randn(8, 3, 6, generator=g).requires_grad_(True)
    video = torch.randn(8, 6, generator=g).requires_grad_(True)
    full = infonce(text, video, torch.ones(8, 3), gather=False)
    full.backward()
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        rows = slice(rank * 4, (rank + 1) * 4)
        assert torch.allclose(got["loss"], full.detach(), atol=1e-6)
        assert torch.allclose(got["text_grad"] / 2, text.grad[rows], atol=1e-6)
        assert torch.allclose(got["video_grad"] / 2, video.grad[rows], atol=1e-6)
