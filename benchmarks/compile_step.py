"""`compile: true` measured: our MLM training step compiled (as the engine does it: `module.compile()`, in
place, default inductor backend) vs. the same step eager, and the compile time it costs.

Workload (that of benchmarks/mlm_step.py): `vlkd.recipes.mlm.MaskedLM` on BERT 6L/512H, batch 8 x 128,
fp32 (or `--precision bf16` autocast), forward + backward + clip + fused AdamW step, the same initial
weights and batches on both sides. Compile time: the first two compiled steps (the first compiles; the
second recompiles with a dynamic number of masked positions, which varies from batch to batch) minus
two eager steps. Then paired timing (benchmarks/paired_timing.py): each round one compiled and one eager
step, the order reversed every other round; the figure is the median of the per-round ratios
t_eager / t_compiled, with quartiles and extremes. The compile cost is stated in the line
(`compile_s`), with the number of steps after which it pays off (`break_even_steps`, null if never).

Run time is dominated by compilation: several minutes on a 2-core VM (more than the 2 minutes of the other
benchmarks). `--quick`: the tiny model preset and 2 rounds.
"""

from __future__ import annotations

import copy
import statistics
import time

import torch
from transformers import BertForMaskedLM

from vlkd.config import TrainConfig, model_preset
from vlkd.data.masking import mask_tokens
from vlkd.engine.trainer import _make_optimizer
from vlkd.models.bert import ModelConfig, bert_config
from vlkd.recipes.mlm import MaskedLM

from paired_timing import Step, line, parse_args, ratios, rounds, train_step  # noqa: E402

BATCH, SEQ, ROUNDS, QUICK_ROUNDS = 8, 128, 8, 2


def batches(n: int, vocab: int) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        ids = torch.randint(1000, vocab - 1, (BATCH, SEQ), generator=g)
        ids[:, 0], ids[:, -1] = 101, 102
        special = torch.zeros_like(ids, dtype=torch.bool)
        special[:, 0] = special[:, -1] = True
        ids, labels = mask_tokens(ids, special, mask_id=103, vocab_size=vocab, generator=g)
        out.append({"input_ids": ids, "labels": labels})
    return out


def trainer(module: torch.nn.Module, batches: list[dict]) -> Step:
    return train_step(lambda b: module(b)["loss"], module.parameters, _make_optimizer(module, TrainConfig(lr=1e-4)), batches)


def timed(step, i: int) -> float:
    start = time.perf_counter()
    step(i)
    return time.perf_counter() - start


def main() -> None:
    args = parse_args(__doc__, ROUNDS, QUICK_ROUNDS)
    torch.manual_seed(0)
    preset = "tiny" if args.quick else "bert-6L-512H"
    mc = ModelConfig(**model_preset(preset))
    eager = MaskedLM(BertForMaskedLM(bert_config(mc)))
    compiled = copy.deepcopy(eager)
    compiled.compile()
    data = batches(8, mc.vocab_size)
    eager_step, compiled_step = trainer(eager, data), trainer(compiled, data)

    first = [timed(compiled_step, 0), timed(compiled_step, 1)]
    plain = [timed(eager_step, 0), timed(eager_step, 1)]
    compile_s = sum(first) - sum(plain)
    print(f"# compile: first compiled steps {first[0]:.1f} s, {first[1]:.1f} s; eager {plain[0]:.2f} s, "
          f"{plain[1]:.2f} s", flush=True)
    with torch.no_grad():
        compiled.eval(), eager.eval()
        same = compiled(data[2])["loss"], eager(data[2])["loss"]
        compiled.train(), eager.train()
    times = rounds({"compiled": compiled_step, "eager": eager_step}, args.rounds)
    t_c, t_e = statistics.median(times["compiled"]), statistics.median(times["eager"])
    tokens = BATCH * SEQ
    saved = t_e - t_c
    line("mlm_step_compiled", tokens / t_c, tokens / t_e, "tokens/s (ours: compiled, reference: eager)",
         ratios(times["compiled"], times["eager"]), None, model=preset, compile_s=round(compile_s, 1),
         break_even_steps=round(compile_s / saved) if saved > 0 else None,
         same_loss_eval=bool(torch.allclose(*same, rtol=1e-3)))


if __name__ == "__main__":
    main()
