"""Where a training step's time goes: torch.profiler over our MLM step and our online distillation step.

Workload (that of benchmarks/mlm_step.py and distill_step.py): BERT 6L/512H (8 heads, FFN 2048, vocab
30522), batch 8 x 128 of real text (the bundled Wikipedia token store, 15% masked), forward + backward +
clip + fused AdamW step; distillation: MLM + NST through the KD head against an online teacher of the
same size. After warm-up steps, `--steps` steps (default 2) of each run under the profiler (CPU
activities); it prints the top operators by self CPU time, and one JSON line per step kind with the step
time, the share of self time in matrix products (aten::mm, addmm, bmm, baddbmm, _addmm_activation and
their backward-only variants) and the top operators. A profile is not a comparison: "reference",
"ratio" and "target" are null. `--precision bf16`: under CPU bf16 autocast. ~1 min on 2 cores.
"""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path
from typing import Callable

import torch
from torch.profiler import ProfilerActivity, profile
from transformers import BertForMaskedLM

from vlkd.config import TrainConfig, model_preset
from vlkd.data.text.collate import BlockCollator, IndexedBlocks
from vlkd.engine.batches import ShardedBatches
from vlkd.engine.trainer import _make_optimizer
from vlkd.models.bert import ModelConfig, bert_config
from vlkd.models.teacher import VideoTextTeacher, VideoTowerConfig
from vlkd.recipes.distill import Config as DistillConfig
from vlkd.recipes.distill import DistillTask
from vlkd.recipes.mlm import MaskedLM

from paired_timing import Step, machine, make_store, parse_args, train_step  # noqa: E402

BATCH, WARMUP, TOP = 8, 2, 12
GEMM_OPS = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::_addmm_activation", "aten::matmul"}


def trainer(module: torch.nn.Module, batches: list[dict]) -> Step:
    return train_step(lambda b: module(b)["loss"], module.parameters, _make_optimizer(module, TrainConfig(lr=1e-4)), batches)


def profile_steps(name: str, step: Callable[[int], None], steps: int) -> None:
    for i in range(WARMUP):
        step(i)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(steps):
            step(WARMUP + i)
    events = prof.key_averages()
    print(f"\n== {name}: top {TOP} operators by self CPU time ({steps} steps)")
    print(events.table(sort_by="self_cpu_time_total", row_limit=TOP))
    total_us = sum(e.self_cpu_time_total for e in events)
    gemm_us = sum(e.self_cpu_time_total for e in events if e.key in GEMM_OPS)
    top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:TOP]
    print(json.dumps({"benchmark": f"profile_{name}", "ours": round(total_us / 1e3 / steps, 1), "reference": None,
                      "unit": "ms self CPU per step", "ratio": None, "target": None,
                      "gemm_share_of_self_time": round(gemm_us / total_us, 3),
                      "top_ops": [[e.key, round(e.self_cpu_time_total / 1e3 / steps, 1),
                                   round(e.self_cpu_time_total / total_us, 3)] for e in top],
                      "timing": "profile, not a comparison", **machine()}), flush=True)


def main() -> None:
    args = parse_args(__doc__, 2, 1)
    torch.manual_seed(0)
    store = make_store(Path(tempfile.mkdtemp(prefix="profile-step-")))
    data = ShardedBatches(IndexedBlocks(store, range(len(store))),
                          BlockCollator(store.special_ids, store.vocab_size, 0.15), BATCH, seed=0)
    batches = [data[i] for i in range(WARMUP + args.rounds)]
    mc = ModelConfig(**model_preset("bert-6L-512H"))
    student = BertForMaskedLM(bert_config(mc))
    teacher = VideoTextTeacher(BertForMaskedLM(bert_config(mc)), VideoTowerConfig(
        feature_dim=16, hidden_size=64, num_layers=1, num_heads=2, intermediate_size=64))
    teacher.eval().requires_grad_(False)

    profile_steps("mlm_step", trainer(MaskedLM(copy.deepcopy(student)), batches), args.rounds)
    distill = DistillTask(copy.deepcopy(student), DistillConfig(), teacher, None, 512, len(store), None)
    distill.teacher.eval()
    profile_steps("distill_step", trainer(distill, batches), args.rounds)


if __name__ == "__main__":
    main()
