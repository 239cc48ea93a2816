"""MLM training-step throughput, ours vs. the straightforward HF approach, side by side in one process.

Both: BERT 6L/512H (8 heads, FFN 2048, vocab 30522), sequence 128, batch 8, fp32 on CPU, the same
initial weights and the same masked batches, forward + backward + clip + AdamW step.
- reference: `BertForMaskedLM(input_ids, labels=labels).loss` (vocabulary logits at all 128 positions)
  and `torch.optim.AdamW` with its defaults;
- ours: the engine's step: `vlkd.recipes.mlm.MaskedLM` (logits only at masked positions) and the
  engine's optimizer (fused AdamW, no decay on biases/norms).
Prints one JSON line: {"benchmark": "mlm_step", "ours", "reference", "unit": "tokens/s", "ratio", "target"}.
"""

from __future__ import annotations

import copy
import json
import time

import torch
from transformers import BertForMaskedLM

from vlkd.config import TrainConfig, model_preset
from vlkd.models.bert import ModelConfig
from vlkd.engine.trainer import _make_optimizer
from vlkd.data.masking import mask_tokens
from vlkd.models.bert import bert_config
from vlkd.recipes.mlm import MaskedLM

BATCH, SEQ, WARMUP, ROUNDS, STEPS_PER_ROUND = 8, 128, 2, 3, 3


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
    torch.manual_seed(0)
    mc = ModelConfig(**model_preset("bert-6L-512H"))
    reference = BertForMaskedLM(bert_config(mc))
    ours = MaskedLM(copy.deepcopy(reference))
    ref_opt = torch.optim.AdamW(reference.parameters(), lr=1e-4)
    our_opt = _make_optimizer(ours, TrainConfig(lr=1e-4))
    data = batches(WARMUP + ROUNDS * STEPS_PER_ROUND)

    def ref_step(ids: torch.Tensor, labels: torch.Tensor) -> float:
        loss = reference(input_ids=ids, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(reference.parameters(), 1.0)
        ref_opt.step()
        ref_opt.zero_grad(set_to_none=True)
        return loss.item()

    def our_step(ids: torch.Tensor, labels: torch.Tensor) -> float:
        loss = ours({"input_ids": ids, "labels": labels})["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ours.parameters(), 1.0)
        our_opt.step()
        our_opt.zero_grad(set_to_none=True)
        return loss.item()

    # correctness before timing: same weights and batch -> same loss (dropout off for the check)
    ids, labels = data[0]
    with torch.no_grad():
        same = (reference.eval()(input_ids=ids, labels=labels).loss,
                ours.eval()({"input_ids": ids, "labels": labels})["loss"])
    assert torch.allclose(*same, atol=1e-4), same
    reference.train(), ours.train()
    for ids, labels in data[:WARMUP]:
        ref_step(ids, labels)
        our_step(ids, labels)

    times = {"ours": 0.0, "reference": 0.0}
    steps = {"ours": our_step, "reference": ref_step}
    for r in range(ROUNDS):  # alternate so both see the same machine conditions
        chunk = data[WARMUP + r * STEPS_PER_ROUND: WARMUP + (r + 1) * STEPS_PER_ROUND]
        for name in (("ours", "reference") if r % 2 == 0 else ("reference", "ours")):
            start = time.perf_counter()
            for ids, labels in chunk:
                steps[name](ids, labels)
            times[name] += time.perf_counter() - start
    tokens = BATCH * SEQ * ROUNDS * STEPS_PER_ROUND
    ours_tps, ref_tps = tokens / times["ours"], tokens / times["reference"]
    print(json.dumps({"benchmark": "mlm_step", "ours": round(ours_tps, 1), "reference": round(ref_tps, 1),
                      "unit": "tokens/s", "ratio": round(ours_tps / ref_tps, 3), "target": 1.3}))


if __name__ == "__main__":
    main()
