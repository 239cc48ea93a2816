"""CRDLoss against a loop implementation written from docs/losses.md, its bank updates, its Z constant,
exact resume from a safetensors checkpoint, and the RAM check."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_model, save_model

from vlkd.errors import VlkdError
from vlkd.losses import CRDLoss, get_loss

N, HS, HT, D, K = 10, 6, 8, 4, 3
MASK = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0]])


def make(**kwargs) -> CRDLoss:
    torch.manual_seed(0)  # the embedding Linears use the global RNG, the banks `seed`
    return CRDLoss(HS, HT, N, embed_dim=D, num_negatives=K, **kwargs)


def batch(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(3, 5, HS, generator=g), torch.randn(3, 5, HT, generator=g)


def embed_loop(x: torch.Tensor, mask: torch.Tensor, linear: torch.nn.Linear) -> list[torch.Tensor]:
    out = []
    for b in range(x.shape[0]):
        valid = [x[b, l] for l in range(x.shape[1]) if mask[b, l]]
        e = linear(sum(valid) / len(valid))
        out.append(e / e.norm())
    return out


def crd_loop(module: CRDLoss, student, teacher, index, mask, negatives, z=None):
    """(loss, Z pair, embeddings) from the definition, with the module's weights and (pre-step) banks."""
    bank_s, bank_t = module.bank_student.clone(), module.bank_teacher.clone()
    with torch.no_grad():
        v_s = embed_loop(student, mask, module.embed_student)
        v_t = embed_loop(teacher, mask, module.embed_teacher)
    k = len(negatives[0])
    noise = k / N
    total, zs = 0.0, []
    for d, (anchors, bank) in enumerate(((v_s, bank_t), (v_t, bank_s))):
        scores = [[math.exp((anchors[b] @ bank[r]).item() / 0.07) for r in [index[b]] + list(negatives[b])]
                  for b in range(len(anchors))]
        z_d = sum(map(sum, scores)) / (len(scores) * (k + 1)) * N if z is None else z[d]
        zs.append(z_d)
        for row in scores:
            p = [s / z_d for s in row]
            total -= (math.log(p[0] / (p[0] + noise)) + sum(math.log(noise / (q + noise)) for q in p[1:])) / len(scores)
    return total, zs, v_s, v_t


def test_loss_matches_loop_with_fixed_negatives_and_z_is_set_once() -> None:
    crd = make()
    assert get_loss("crd").fn is CRDLoss
    student, teacher = batch(0)
    index = torch.tensor([7, 2, 4])
    negatives = torch.tensor([[0, 1, 9], [3, 3, 8], [5, 6, 0]])
    expected, zs, _, _ = crd_loop(crd, student, teacher, index, MASK, negatives.tolist())
    assert not crd.z_set
    assert crd(student, teacher, index, MASK, negatives=negatives).item() == pytest.approx(expected, rel=1e-5)
    assert crd.z_set and crd.z.tolist() == pytest.approx(zs, rel=1e-5)
    # second batch: Z is the stored constant, not this batch's estimate
    student, teacher = batch(1)
    index = torch.tensor([1, 8, 0])
    expected, _, _, _ = crd_loop(crd, student, teacher, index, MASK, negatives.tolist(), z=zs)
    _, fresh_z, _, _ = crd_loop(crd, student, teacher, index, MASK, negatives.tolist())
    assert fresh_z[0] != pytest.approx(zs[0], rel=1e-3)  # a re-estimate would differ
    assert crd(student, teacher, index, MASK, negatives=negatives).item() == pytest.approx(expected, rel=1e-5)
    assert crd.z.tolist() == pytest.approx(zs, rel=1e-5)


def test_banks_get_the_momentum_update_of_the_batch_rows_only() -> None:
    crd = make(momentum=0.3)
    student, teacher = batch(2)
    index = torch.tensor([5, 0, 9])
    before_s, before_t = crd.bank_student.clone(), crd.bank_teacher.clone()
    assert torch.allclose(before_s.norm(dim=1), torch.ones(N)) and not torch.equal(before_s, before_t)
    _, _, v_s, v_t = crd_loop(crd, student, teacher, index, MASK, [[1, 2, 3]] * 3)
    crd(student, teacher, index, MASK)
    for bank, before, new in ((crd.bank_student, before_s, v_s), (crd.bank_teacher, before_t, v_t)):
        for b, row in enumerate(index.tolist()):
            expected = 0.3 * before[row] + 0.7 * new[b]
            torch.testing.assert_close(bank[row], expected / expected.norm(), rtol=1e-5, atol=1e-6)
        others = [r for r in range(N) if r not in index.tolist()]
        assert torch.equal(bank[others], before[others])


def test_negatives_are_uniform_over_other_rows_and_deterministic_per_step() -> None:
    crd = CRDLoss(HS, HT, 50, embed_dim=D, num_negatives=4000)
    assert crd.num_negatives == 49  # capped at N - 1
    index = torch.tensor([0, 17, 49]).repeat_interleave(40)  # 40 anchors x 49 draws per row
    first = crd.sample_negatives(index)
    assert first.shape == (120, 49) and int(crd.step) == 1
    for row in (0, 17, 49):
        drawn = first[index == row].flatten()
        counts = torch.bincount(drawn, minlength=50)
        assert counts[row] == 0  # never the anchor's own row
        others = torch.cat([counts[:row], counts[row + 1:]]).float()
        assert others.min() > 0.3 * 40 and others.max() < 2.0 * 40  # uniform over the other 49: 40 each
    second = crd.sample_negatives(index)
    assert not torch.equal(first, second)  # a new step, new draws
    crd.step.fill_(0)
    assert torch.equal(crd.sample_negatives(index), first)  # a function of (seed, step) alone
    crd.eval()
    assert int(crd.step) == 1 and torch.equal(crd.sample_negatives(index), second)
    assert int(crd.step) == 1  # evaluation does not advance the state


def train_steps(crd: CRDLoss, seeds: list[int]) -> list[float]:
    opt = torch.optim.SGD(crd.parameters(), lr=0.5)
    losses = []
    for s in seeds:
        student, teacher = batch(s)
        index = torch.randperm(N, generator=torch.Generator().manual_seed(s))[:3]
        loss = crd(student, teacher, index, MASK)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_resume_from_safetensors_is_exact(tmp_path) -> None:
    original = make(seed=3)
    train_steps(original, [0])
    save_model(original, str(tmp_path / "crd.safetensors"))
    resumed = make(seed=3)
    fresh = make(seed=3)
    load_model(resumed, str(tmp_path / "crd.safetensors"))
    expected = train_steps(original, [1, 2])
    assert train_steps(resumed, [1, 2]) == expected
    assert train_steps(fresh, [1, 2]) != expected  # without the checkpoint the state differs
    for name, value in original.state_dict().items():
        assert torch.equal(resumed.state_dict()[name], value), name


def test_gradient_reaches_the_student_and_masked_tail_is_ignored() -> None:
    crd = make()
    student, teacher = batch(4)
    student[MASK == 0] = float("nan")
    student.requires_grad_(True)
    loss = crd(student, teacher, torch.tensor([1, 2, 3]), MASK)
    assert torch.isfinite(loss)
    loss.backward()
    assert student.grad[MASK == 1].abs().sum() > 0 and student.grad[MASK == 0].abs().sum() == 0
    assert crd.embed_teacher.weight.grad.abs().sum() > 0


def test_evaluation_leaves_the_state_alone_and_autocast_computes_in_fp32() -> None:
    crd = make()
    crd.eval()
    state = {k: v.clone() for k, v in crd.state_dict().items()}
    student, teacher = batch(5)
    exact = crd(student, teacher, torch.tensor([1, 2, 3]), MASK)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = crd(student.bfloat16(), teacher.bfloat16(), torch.tensor([1, 2, 3]), MASK)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, crd(student.bfloat16().float(), teacher.bfloat16().float(),
                                        torch.tensor([1, 2, 3]), MASK), rtol=1e-6, atol=1e-6)
    assert torch.isfinite(exact)
    for name, value in crd.state_dict().items():
        assert torch.equal(state[name], value), name


def test_banks_over_ram_are_a_clear_error(monkeypatch) -> None:
    import vlkd.losses.crd as crd_module

    monkeypatch.setattr(crd_module, "total_ram_bytes", lambda: 2**30)
    with pytest.raises(VlkdError, match=r"2097152 samples x 128 dims x 4 bytes x 2 banks = 2\.0 GiB.*RAM \(1\.0 GiB\)"):
        CRDLoss(4, 4, 2**21)
    CRDLoss(4, 4, 1000)  # fits
    monkeypatch.undo()
    with pytest.raises(VlkdError, match="more than this machine's RAM"):
        CRDLoss(4, 4, 10**13)  # the real check: petabytes
