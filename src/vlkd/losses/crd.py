"""Contrastive representation distillation (Tian et al., ICLR 2020; docs/losses.md, `crd`) with one
memory bank of sentence embeddings per side, NCE against uniformly drawn bank rows.

Every piece of state (banks, the Z constants and whether they are set, the negative-sampling step counter)
is a buffer, so a checkpoint of the module's `state_dict()` resumes training exactly.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from vlkd.errors import VlkdError
from vlkd.losses.registry import register_loss


def total_ram_bytes() -> int:
    """The machine's physical memory."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_banks_fit(num_samples: int, embed_dim: int) -> None:
    """Refuse (VlkdError) two fp32 (num_samples, embed_dim) banks larger than the machine's RAM."""
    need, ram = num_samples * embed_dim * 4 * 2, total_ram_bytes()
    if need > ram:
        raise VlkdError(
            f"CRD memory banks need {num_samples} samples x {embed_dim} dims x 4 bytes x 2 banks = "
            f"{need / 2**30:.1f} GiB, more than this machine's RAM ({ram / 2**30:.1f} GiB); lower the CRD "
            "embedding size or use ntxent/nst"
        )


def _gather_batch(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Concatenate each tensor's rows over all processes (rank order); batch sizes may differ per rank.
    Identity in a single process."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensors
    world = dist.get_world_size()
    size = torch.tensor([tensors[0].shape[0]], device=tensors[0].device)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes, size)
    counts = [int(s) for s in sizes]
    out = []
    for x in tensors:
        padded = x.new_zeros((max(counts), *x.shape[1:]))
        padded[: x.shape[0]] = x
        parts = [torch.empty_like(padded) for _ in range(world)]
        dist.all_gather(parts, padded)
        out.append(torch.cat([p[:n] for p, n in zip(parts, counts)]))
    return tuple(out)


@register_loss("crd", kind="sentences")
class CRDLoss(nn.Module):
    """CRD between student and teacher sentence features, both directions summed.

    Sentence feature = mean of the last hidden states over valid tokens, embedded to `embed_dim` by a
    Linear + L2-norm per side. Banks (num_samples, embed_dim) per side, one row per training sample (the
    block's index in the token store), initialised uniform in [-1, 1) and normalised, deterministically from
    `seed`. For the student anchor v_s of sample i: positive = teacher bank row i, negatives = K =
    min(num_negatives, N - 1) teacher bank rows drawn uniformly (with replacement) from the N - 1 rows other
    than i; scores P = exp(v_s . u / temperature) / Z, Z = mean(exp(v_s . u / temperature)) * N over the
    first training batch's (B, K + 1) scores, then fixed. NCE with noise probability 1/N:
    -[log(P_pos / (P_pos + K/N)) + sum_neg log((K/N) / (P_neg + K/N))], mean over the batch. The teacher
    anchor against the student bank likewise (the same negative rows, its own Z); loss = the sum. After the
    loss (training mode only), the batch's bank rows become normalize(momentum * row + (1 - momentum) * new).
    """

    def __init__(
        self,
        student_dim: int,
        teacher_dim: int,
        num_samples: int,
        embed_dim: int = 128,
        num_negatives: int = 4096,
        temperature: float = 0.07,
        momentum: float = 0.5,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if num_samples < 2:
            raise ValueError(f"CRD needs at least 2 samples (one positive, one negative), got {num_samples}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        check_banks_fit(num_samples, embed_dim)
        self.num_samples = num_samples
        self.num_negatives = min(num_negatives, num_samples - 1)
        self.temperature, self.momentum, self.seed = temperature, momentum, seed
        self.embed_student = nn.Linear(student_dim, embed_dim)
        self.embed_teacher = nn.Linear(teacher_dim, embed_dim)
        g = torch.Generator().manual_seed(seed)
        for name in ("bank_student", "bank_teacher"):
            bank = torch.rand(num_samples, embed_dim, generator=g).mul_(2).sub_(1)
            self.register_buffer(name, F.normalize(bank, dim=-1))
        self.register_buffer("z", torch.zeros(2))  # [student-anchor direction, teacher-anchor direction]
        self.register_buffer("z_set", torch.tensor(False))
        self.register_buffer("step", torch.tensor(0, dtype=torch.int64))  # negative draws made in training

    def sample_negatives(self, index: torch.Tensor) -> torch.Tensor:
        """(B, K) bank rows, uniform over the rows other than each anchor's own, from a generator seeded
        afresh by (seed, step, rank): no hidden RNG state. Advances `step` in training mode."""
        rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        entropy = np.random.SeedSequence([self.seed, int(self.step), rank]).generate_state(1, np.uint64)[0]
        g = torch.Generator().manual_seed(int(entropy))
        draw = torch.randint(self.num_samples - 1, (index.shape[0], self.num_negatives), generator=g)
        draw = draw.to(index.device)
        if self.training:
            self.step += 1
        return draw + (draw >= index.unsqueeze(1)).long()  # skip the anchor's own row

    def embed(
        self, student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The L2-normalised embeddings (B, embed_dim) of the masked-mean sentence features of each side."""
        v_s = F.normalize(self.embed_student(_masked_mean(student, mask)), dim=-1)
        v_t = F.normalize(self.embed_teacher(_masked_mean(teacher, mask)), dim=-1)
        return v_s, v_t

    def forward(
        self,
        student: torch.Tensor,
        teacher: torch.Tensor,
        index: torch.Tensor,
        mask: torch.Tensor | None = None,
        negatives: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """student (B, L, H_s), teacher (B, L, H_t) last hidden states; index (B,) the samples' bank rows
        (distinct within the, gathered, batch); mask (B, L) valid tokens; negatives (B, K) fixed negative
        rows instead of drawn ones (tests). Returns the scalar loss, computed in fp32."""
        with torch.autocast(device_type=student.device.type, enabled=False):
            v_s, v_t = self.embed(student.float(), teacher.float(), mask)
            if negatives is None:
                negatives = self.sample_negatives(index)
            rows = torch.cat([index.unsqueeze(1), negatives], 1)  # (B, 1 + K): the positive first
            logit_s = torch.einsum("bkd,bd->bk", self.bank_teacher[rows], v_s) / self.temperature
            logit_t = torch.einsum("bkd,bd->bk", self.bank_student[rows], v_t) / self.temperature
            z = self.z
            if not self.z_set:
                with torch.no_grad():
                    z = torch.stack([logit_s.exp().mean(), logit_t.exp().mean()]) * self.num_samples
                    if dist.is_available() and dist.is_initialized():  # one Z for all processes
                        dist.all_reduce(z)
                        z /= dist.get_world_size()
                if self.training:
                    self.z.copy_(z)
                    self.z_set.fill_(True)
            log_noise = math.log(negatives.shape[1] / self.num_samples)  # log(K/N)
            loss = _nce(logit_s - z[0].log(), log_noise) + _nce(logit_t - z[1].log(), log_noise)
            if self.training:
                self._update_banks(index, v_s.detach(), v_t.detach())
        return loss

    @torch.no_grad()
    def _update_banks(self, index: torch.Tensor, v_s: torch.Tensor, v_t: torch.Tensor) -> None:
        """Momentum update of the batch's rows; with several processes, of every process's batch rows, so
        the banks stay identical everywhere."""
        index, v_s, v_t = _gather_batch(index, v_s, v_t)
        for bank, new in ((self.bank_student, v_s), (self.bank_teacher, v_t)):
            row = self.momentum * bank[index] + (1 - self.momentum) * new.to(bank.dtype)
            bank.index_copy_(0, index, F.normalize(row, dim=-1))


def _masked_mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """(B, L, H) -> (B, H): the mean over the valid tokens (a garbage masked tail never enters)."""
    if mask is None:
        return x.mean(1)
    m = mask.bool()
    return x.masked_fill(~m.unsqueeze(-1), 0.0).sum(1) / m.sum(1, keepdim=True).clamp_min(1).to(x.dtype)


def _nce(log_p: torch.Tensor, log_noise: float) -> torch.Tensor:
    """NCE over (B, 1 + K) log scores (positive first) with noise mass K/N, in log space:
    -log(P/(P + c)) = softplus(log c - log P) and -log(c/(P + c)) = softplus(log P - log c). Mean over B."""
    positive = F.softplus(log_noise - log_p[:, 0])
    negative = F.softplus(log_p[:, 1:] - log_noise).sum(1)
    return (positive + negative).mean()
