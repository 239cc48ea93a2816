"""MLM training-step throughput, ours vs. the straightforward HF approach, side by side in one process.

Both: BERT 6L/512H (8 heads, FFN 2048, vocab 30522), sequence 128, batch 8, fp32 on CPU, the same
initial weights and the same masked batches, forward + backward + clip + AdamW step.
- reference: `BertForMaskedLM(input_ids, labels=labels).loss` (vocabulary logits at all 128 positions)
  and `torch.optim.AdamW` with its defaults;
- ours: the engine's step: `vlkd.recipes.mlm.MaskedLM` (logits only at masked positions) and the
  engine's optimizer (fused AdamW, no decay on biases/norms).
Timing is paired (benchmarks/paired_timing.py): each round runs one step of each side and one batch of
the GEMM peak (1024 x 512 @ 512 x 2048, the FFN's shape: 10 products), the order reversed every other
round; the figure is the median of the per-round ratios, with quartiles and extremes. FLOPs per step are
counted by torch's FlopCounterMode (ours: logits at masked positions only, so fewer FLOPs than the
reference's); `fraction_of_peak` = our achieved GFLOP/s / the GEMM's, per round. `--precision bf16` runs
both sides and the GEMM under CPU bf16 autocast (the `mlm` loss, vocabulary head included, stays fp32 by
design: losses/registry.py).
Prints one JSON line: {"benchmark": "mlm_step", "ours", "reference", "unit": "tokens/s", "ratio", ...,
"fraction_of_peak", "cpu", "cpu_flags", "precision"}. Full run ~1-2 min on 2 cores; `--quick` is a smoke run.
"""

from __future__ import annotations

import copy

import torch
from transformers import BertForMaskedLM

from vlkd.config import TrainConfig, model_preset
from vlkd.data.masking import mask_tokens
from vlkd.engine.trainer import _make_optimizer
from vlkd.models.bert import ModelConfig, bert_config
from vlkd.recipes.mlm import MaskedLM

from paired_timing import Gemm, autocast, count_flops, line, parse_args, peak_fields, rounds  # noqa: E402

BATCH, SEQ, WARMUP, ROUNDS, QUICK_ROUNDS = 8, 128, 2, 12, 2


def batches(n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        ids = torch.randint(1000, 30000, (BATCH, SEQ), generator=g)
        ids[:, 0], ids[:, -1] = 101, 102
        special = torch.zeros_like(ids, dtype=torch.bool)
        special[:, 0] = special[:, -1] = True
        out.append(mask_tokens(ids, special, mask_id=103, vocab_size=30522, generator=g))
    return out


def main() -> None:
    args = parse_args(__doc__, ROUNDS, QUICK_ROUNDS)
    torch.manual_seed(0)
    mc = ModelConfig(**model_preset("bert-6L-512H"))
    reference = BertForMaskedLM(bert_config(mc))
    ours = MaskedLM(copy.deepcopy(reference))
    ref_opt = torch.optim.AdamW(reference.parameters(), lr=1e-4)
    our_opt = _make_optimizer(ours, TrainConfig(lr=1e-4))
    data = batches(8)

    def ref_step(i: int) -> None:
        ids, labels = data[i % len(data)]
        with autocast():
            loss = reference(input_ids=ids, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(reference.parameters(), 1.0)
        ref_opt.step()
        ref_opt.zero_grad(set_to_none=True)

    def our_step(i: int) -> None:
        ids, labels = data[i % len(data)]
        with autocast():
            loss = ours({"input_ids": ids, "labels": labels})["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ours.parameters(), 1.0)
        our_opt.step()
        our_opt.zero_grad(set_to_none=True)

    # correctness before timing: same weights and batch -> same loss (dropout off, fp32)
    ids, labels = data[0]
    with torch.no_grad():
        same = (reference.eval()(input_ids=ids, labels=labels).loss,
                ours.eval()({"input_ids": ids, "labels": labels})["loss"])
    assert torch.allclose(*same, atol=1e-4), same
    reference.train(), ours.train()
    our_flops, ref_flops = count_flops(lambda: our_step(0)), count_flops(lambda: ref_step(0))
    for i in range(1, WARMUP):
        ref_step(i)
        our_step(i)
    gemm = Gemm(BATCH * SEQ, 512, 2048, reps=10)

    times = rounds({"ours": our_step, "reference": ref_step, "gemm": gemm}, args.rounds)
    tokens = BATCH * SEQ
    per_round = [r / o for o, r in zip(times["ours"], times["reference"])]
    t_ours = sorted(times["ours"])[len(times["ours"]) // 2]
    t_ref = sorted(times["reference"])[len(times["reference"]) // 2]
    line("mlm_step", tokens / t_ours, tokens / t_ref, "tokens/s", per_round, 1.3,
         **peak_fields(our_flops, times["ours"], gemm, times["gemm"]),
         reference_step_gflop=round(ref_flops / 1e9, 2), fraction_target_fp32=0.6)


if __name__ == "__main__":
    main()
