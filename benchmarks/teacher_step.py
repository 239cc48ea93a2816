"""VidLanKD teacher training step (stage 1): ours vs. the straightforward HF way, and the fraction of the
machine's GEMM peak it reaches.

Workload: the `teacher-small` setting: text tower BERT 6L/512H (8 heads, FFN 2048, vocab 30522), video
tower 4 layers 512H (8 heads, FFN 2048) over 4096-d HowTo100M-style features; batch 32 caption-clip
pairs, captions of 48 tokens (15% masked), clips of 48 feature steps (random features, some padded); loss
= token-level paired hinge against the half-swapped batch (margin 1) + MLM; forward + backward + clip
(1.0) + AdamW step; same initial weights and batches on both sides.
- ours: `vlkd.recipes.teacher.TeacherTask` (MLM logits only at the masked positions, inside the `mlm`
  loss) with the engine's optimizer (fused AdamW, no decay on biases/norms);
- reference: the same towers and matching loss, the text side written the usual HF way:
  `BertForMaskedLM(input_ids, attention_mask, labels=..., output_hidden_states=True)` (vocabulary logits
  at every position) with the last hidden states for the matching; `torch.optim.AdamW` defaults.
Timing is paired (benchmarks/paired_timing.py): each round runs one step of each side and one batch of the
GEMM peak (1536 x 512 @ 512 x 2048, the text FFN's shape, 10 products), the order reversed every other
round; the figure is the median of the per-round ratios, with quartiles and extremes. FLOPs of our step
are counted by FlopCounterMode; `fraction_of_peak` = achieved GFLOP/s / the GEMM's, per round (issue 13
sets no target for the teacher; the MLM/distillation one, 0.6 in fp32, is given for comparison).
`--precision bf16`: both sides and the GEMM under CPU bf16 autocast (losses stay fp32 by design).
Prints one JSON line. Full run ~1-2 min on 2 cores; `--quick` is a smoke run.
"""

from __future__ import annotations

import copy
import statistics

import torch
from transformers import BertForMaskedLM

from vlkd.config import TrainConfig, model_preset
from vlkd.data.masking import mask_tokens
from vlkd.engine.trainer import _make_optimizer
from vlkd.models.bert import ModelConfig, bert_config
from vlkd.models.teacher import VideoTextTeacher, VideoTowerConfig
from vlkd.recipes.teacher import Config, TeacherTask

from paired_timing import Gemm, count_flops, line, parse_args, peak_fields, ratios, rounds, train_step  # noqa: E402

BATCH, TEXT_LEN, STEPS, FEATURES, WARMUP, ROUNDS, QUICK_ROUNDS = 32, 48, 48, 4096, 2, 6, 2


def batches(n: int) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        lengths = torch.randint(TEXT_LEN // 2, TEXT_LEN + 1, (BATCH,), generator=g)
        ids = torch.randint(1000, 30000, (BATCH, TEXT_LEN), generator=g)
        attention = (torch.arange(TEXT_LEN)[None] < lengths[:, None]).long()
        ids[:, 0] = 101
        ids[torch.arange(BATCH), lengths - 1] = 102
        ids[attention == 0] = 0
        special = (ids == 101) | (ids == 102) | (attention == 0)
        ids, labels = mask_tokens(ids, special, mask_id=103, vocab_size=30522, generator=g)
        steps = torch.randint(STEPS // 2, STEPS + 1, (BATCH,), generator=g)
        video_mask = (torch.arange(STEPS)[None] < steps[:, None]).long()
        video = torch.randn(BATCH, STEPS, FEATURES, generator=g) * video_mask[..., None]
        out.append({"input_ids": ids, "attention_mask": attention, "labels": labels, "video": video,
                    "video_mask": video_mask})
    return out


def main() -> None:
    args = parse_args(__doc__, ROUNDS, QUICK_ROUNDS)
    torch.manual_seed(0)
    config = Config(model=ModelConfig(**model_preset("bert-6L-512H")),
                    video=VideoTowerConfig(feature_dim=FEATURES, hidden_size=512, num_layers=4, num_heads=8,
                                           intermediate_size=2048))
    ours = TeacherTask(VideoTextTeacher(BertForMaskedLM(bert_config(config.model)), config.video), config)
    reference = copy.deepcopy(ours)
    data = batches(4)

    def ref_losses(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        teacher = reference.teacher
        out = teacher.text(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                           labels=batch["labels"], output_hidden_states=True)
        video = teacher.encode_video(batch["video"], batch["video_mask"])
        match, _ = reference.matching({"text": out.hidden_states[-1]}, {"video": video}, mask=batch["attention_mask"])
        return match + config.mlm_weight * out.loss

    # correctness before timing: same weights and batch -> same loss (dropout off, fp32)
    ours.eval(), reference.eval()
    with torch.no_grad():
        same = ours(data[0])["loss"], ref_losses(data[0])
    assert torch.allclose(*same, rtol=1e-4), same
    ours.train(), reference.train()

    our_opt = _make_optimizer(ours, TrainConfig(lr=5e-5))
    ref_opt = torch.optim.AdamW(reference.parameters(), lr=5e-5)

    our_step = train_step(lambda b: ours(b)["loss"], ours.parameters, our_opt, data)
    ref_step = train_step(ref_losses, reference.parameters, ref_opt, data)

    our_flops = count_flops(lambda: our_step(0))
    for i in range(WARMUP):
        if i:
            our_step(i)
        ref_step(i)
    gemm = Gemm(BATCH * TEXT_LEN, 512, 2048, reps=10)
    times = rounds({"ours": our_step, "reference": ref_step, "gemm": gemm}, args.rounds)
    median = statistics.median
    line("teacher_step", BATCH / median(times["ours"]), BATCH / median(times["reference"]), "caption-clip pairs/s",
         ratios(times["ours"], times["reference"]), 1.3, **peak_fields(our_flops, times["ours"], gemm, times["gemm"]),
         fraction_target_fp32=0.6)


if __name__ == "__main__":
    main()
