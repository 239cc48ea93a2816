"""Hidden-state distillation step: ours vs. TextBrewer 0.2.1 and torchdistill 1.1.5 (issue 11 (b)).

Workload (that of benchmarks/distill_step.py): student and teacher BERT 6L/512H (8 heads, FFN 2048,
vocab 30522), sequence 128, batch 8, fp32 on the CPU. Token ids are real text: the bundled Wikipedia lead
sections tokenised into a token store (as in distill_step.py), masked by our `BlockCollator` (15%); every
side gets the same masked batches, the same initial student and teacher weights and the same initial
projection. A step is forward (teacher under no_grad + student) + backward + grad-norm clip (1.0) + AdamW
step (lr 1e-4) + zero_grad. The objective is the same on every side: MLM + 1.0 x MSE between a
Linear(512, 512) projection of the student's layer 6 (its last layer) and the teacher's layer 6, the
teacher seeing the student's masked input. Timing is paired (benchmarks/paired_timing.py): each round
runs one step of ours, TextBrewer and torchdistill and one batch of the GEMM peak (1024 x 512 @ 512 x 2048,
10 products), the order reversed every other round; a figure is the median of the per-round ratios
t_reference / t_ours, with quartiles and extremes (these VMs drift by up to 50% in minutes, so sequential
timings are not comparable). Each line also carries our step's `fraction_of_peak` (FlopCounterMode FLOPs
/ time, over the GEMM's rate in the same round). `--precision bf16`: every side and the GEMM under CPU
bf16 autocast.

Projection (fairness): with equal widths our recipe uses no projection (`nn.Identity`), while the
frameworks' documented hidden-state matches use a linear one. Every side here gets a Linear(512, 512)
(TextBrewer's `proj: ['linear', 512, 512]`, initialised by TextBrewer, N(0, 0.02)); we copy its initial
weights into our `DistillTask.projections['layer6']` (replacing the Identity) and into the torchdistill
student's projection, so the three compute the same loss.

- ours: `vlkd.recipes.distill.DistillTask`, kd.terms = [{loss: hidden_mse, student: layer6, teacher:
  layer6}], kd.head false, online teacher (`teacher.text.bert`), MLM logits at the masked positions only;
  optimizer from `vlkd.engine.trainer._make_optimizer` (fused AdamW, weight decay 0.01 except on biases and
  LayerNorm weights).
- TextBrewer: `GeneralDistiller` with intermediate_matches [{layer_T: 6, layer_S: 6, feature: hidden,
  loss: hidden_mse, weight: 1, proj: [linear, 512, 512]}], hard_label_weight=1, kd_loss_weight=0; the
  student is HF `BertForMaskedLM(labels=...)` (full-vocabulary logits), its adaptor returns {'losses':
  out.loss, 'hidden': out.hidden_states}; the teacher is the teacher's `BertModel` (no MLM head: only its
  hidden states are used). One step = the body of `BasicDistiller.train_with_num_steps`:
  `train_on_batch` (= `get_outputs_from_batch` + adaptors + `compute_loss`), backward, clip of
  `model_S.parameters()`, optimizer step, zero_grad; the projection's parameter group is added by
  `initialize_training`. Optimizer `torch.optim.AdamW(lr=1e-4)` (defaults: weight decay 0.01, not fused).
- torchdistill: the body of `DistillationBox.forward_process` + `update_params` written out: teacher
  `BertModel` under no_grad with a `ForwardHookManager` hook on `encoder.layer.5`, student = a wrapper
  (`BertForMaskedLM(labels=...)` + the Linear projection applied to its last hidden states) hooked at
  `proj`; criterion = `WeightedSumLoss(model_term={'weight': 1.0}, sub_terms={'hidden_mse': MSELoss via
  SimpleLossWrapper(student proj output, teacher encoder.layer.5 output), weight 1.0})`; then backward,
  clip of all trained parameters, `torch.optim.AdamW(lr=1e-4)` step, zero_grad.

Before timing, with dropout off, each framework's loss on the first batch must equal ours (rtol 1e-4).
During timing the students train (dropout on) and the teachers stay in eval mode on every side.

Traps found:
- TextBrewer: `hard_label_weight` defaults to 0, so the student's MLM loss silently drops out of the
  total; `TrainingConfig.device` defaults to 'cuda'; the 'hidden' feature list is indexed by layer, so the
  adaptor must return all `hidden_states` (embeddings = 0, layer 6 = 6); the projection's parameters
  reach the optimizer only through `initialize_training`, and its gradient clipping covers
  `model_S.parameters()` only (not the projection); shipped examples import `AdamW` from transformers,
  which transformers 5 no longer has (torch.optim.AdamW used). Its hidden_mse with no inputs_mask is
  `F.mse_loss` (mean over all elements), the same as ours without a mask.
- torchdistill: importing `torchdistill.datasets` first fails with `KeyError: 'torchvision.datasets'`; the
  loss modules (`torchdistill.losses.high_level`, `.util`, `.registry`) and `torchdistill.core.
  forward_hook` are imported directly. Its default `extract_model_loss_dict` copies the student's output
  dict whole; a HF `ModelOutput` is a dict, so 'logits' and 'hidden_states' would be summed into the
  "model loss" (or raise KeyError with a per-key weight dict): a `func2extract_model_loss` returning
  {'loss': out.loss} is registered instead.

Run length: 1 warm-up step per side, then 8 rounds; about 2 minutes on a quiet 2-core VM (`--quick`: 2).

Output: one JSON line per comparison (distill_vs_textbrewer, distill_vs_torchdistill), unit tokens/s,
target >= 1.5; a framework that cannot run prints "reference": null and "error".
"""

from __future__ import annotations

import copy
import json
import statistics
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from transformers import BertForMaskedLM

from vlkd.config import TrainConfig, model_preset
from vlkd.data.text.collate import BlockCollator, IndexedBlocks
from vlkd.engine.batches import ShardedBatches
from vlkd.engine.trainer import _make_optimizer
from vlkd.losses import LossTerm
from vlkd.models.bert import ModelConfig, bert_config
from vlkd.models.teacher import VideoTextTeacher, VideoTowerConfig
from vlkd.recipes.distill import Config as DistillConfig
from vlkd.recipes.distill import DistillTask, KDConfig

from paired_timing import (Gemm, Step, autocast, count_flops, line, machine, make_store, parse_args,  # noqa: E402
                           peak_fields, ratios, rounds, train_step)

BATCH, WARMUP, ROUNDS, QUICK_ROUNDS, LR, CLIP, WIDTH, LAYER = 8, 1, 8, 2, 1e-4, 1.0, 512, 6


def error_line(name: str, ours: float | None, unit: str, target: float, error: str) -> None:
    print(json.dumps({"benchmark": name, "ours": round(ours, 2) if ours else None, "reference": None,
                      "unit": unit, "target": target, "error": error, **machine()}), flush=True)


def build_ours(student: BertForMaskedLM, teacher: VideoTextTeacher, proj: nn.Linear, num_samples: int,
               batches: list[dict]) -> tuple[Callable[[dict], torch.Tensor], Step, list[nn.Module], list[nn.Module]]:
    config = DistillConfig(kd=KDConfig(terms=[LossTerm(loss="hidden_mse", student=f"layer{LAYER}",
                                                       teacher=f"layer{LAYER}")], head=False))
    task = DistillTask(copy.deepcopy(student), config, copy.deepcopy(teacher), None, WIDTH, num_samples, None)
    # equal widths give nn.Identity; the frameworks' matches project linearly: same Linear on every side
    task.projections[f"layer{LAYER}"] = copy.deepcopy(proj)
    task.teacher.requires_grad_(False)

    def loss_of(batch: dict) -> torch.Tensor:
        return task(batch)["loss"]

    optimizer = _make_optimizer(task, TrainConfig(lr=LR))
    step = train_step(loss_of, lambda: list(task.parameters()), optimizer, batches, CLIP)
    return loss_of, step, [task.student, task.projections], [task.teacher]


def build_textbrewer(student: BertForMaskedLM, teacher: VideoTextTeacher, root: Path, batches: list[dict]):
    from textbrewer import DistillationConfig, GeneralDistiller, TrainingConfig

    model_s = copy.deepcopy(student)
    model_t = copy.deepcopy(teacher.text.bert).requires_grad_(False)

    def adaptor_t(batch, out):
        return {"hidden": out.hidden_states}

    def adaptor_s(batch, out):
        return {"losses": out.loss, "hidden": out.hidden_states}

    train_config = TrainingConfig(device="cpu", output_dir=str(root / "textbrewer"), log_dir=None)
    distill_config = DistillationConfig(
        intermediate_matches=[{"layer_T": LAYER, "layer_S": LAYER, "feature": "hidden", "loss": "hidden_mse",
                               "weight": 1, "proj": ["linear", WIDTH, WIDTH]}],
        hard_label_weight=1, kd_loss_weight=0)  # hard_label_weight defaults to 0: MLM would drop out
    distiller = GeneralDistiller(train_config, distill_config, model_t, model_s, adaptor_t, adaptor_s)
    optimizer = torch.optim.AdamW(model_s.parameters(), lr=LR)
    optimizer, _, _ = distiller.initialize_training(optimizer, None, None, None)  # adds the projection's group

    def as_batch(batch: dict) -> dict:
        return {"teacher": {"input_ids": batch["input_ids"], "output_hidden_states": True},
                "student": {"input_ids": batch["input_ids"], "labels": batch["labels"],
                            "output_hidden_states": True}}

    tb_batches = [as_batch(b) for b in batches]

    def loss_of(batch: dict) -> torch.Tensor:
        return distiller.train_on_batch(batch, {})[0]

    def step(i: int) -> None:  # BasicDistiller.train_with_num_steps, one iteration (no accumulation)
        with autocast():
            total_loss, _ = distiller.train_on_batch(tb_batches[i % len(tb_batches)], {})
        total_loss.backward()
        torch.nn.utils.clip_grad_norm_(distiller.model_S.parameters(), CLIP)
        optimizer.step()
        optimizer.zero_grad()

    return (lambda b: loss_of(as_batch(b))), step, [model_s, distiller.projs[0]], [model_t], distiller.projs[0]


class HookedStudent(nn.Module):
    """The student as torchdistill sees it: the MLM model (its own loss) and the projection, hooked at `proj`."""

    def __init__(self, mlm: BertForMaskedLM, proj: nn.Linear) -> None:
        super().__init__()
        self.mlm, self.proj = mlm, proj

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor):
        out = self.mlm(input_ids=input_ids, labels=labels, output_hidden_states=True)
        self.proj(out.hidden_states[LAYER])  # its output is picked up by the forward hook
        return out


def build_torchdistill(student: BertForMaskedLM, teacher: VideoTextTeacher, proj: nn.Linear, batches: list[dict]):
    # not `torchdistill.datasets` (KeyError: 'torchvision.datasets'): the loss and hook modules directly
    import torchdistill.losses.util  # noqa: F401  (registers extract_model_loss_dict)
    from torchdistill.core.forward_hook import ForwardHookManager
    from torchdistill.losses.high_level import WeightedSumLoss
    from torchdistill.losses.registry import (FUNC2EXTRACT_MODEL_OUTPUT_DICT, get_func2extract_model_output,
                                              register_func2extract_model_output)

    if "extract_hf_loss" not in FUNC2EXTRACT_MODEL_OUTPUT_DICT:
        @register_func2extract_model_output
        def extract_hf_loss(student_outputs, targets, **kwargs):
            # the default copies the whole HF ModelOutput (a dict): logits would join the "model loss"
            return {"loss": student_outputs.loss}

    extract_model_loss = get_func2extract_model_output("extract_hf_loss")
    model_s = HookedStudent(copy.deepcopy(student), copy.deepcopy(proj))
    model_t = copy.deepcopy(teacher.text.bert).requires_grad_(False)
    hooks_s, hooks_t = ForwardHookManager("cpu"), ForwardHookManager("cpu")
    hooks_s.add_hook(model_s, "proj", requires_input=False, requires_output=True)
    teacher_layer = f"encoder.layer.{LAYER - 1}"
    hooks_t.add_hook(model_t, teacher_layer, requires_input=False, requires_output=True)
    criterion = WeightedSumLoss(model_term={"weight": 1.0}, sub_terms={"hidden_mse": {
        "criterion": {"key": "MSELoss", "kwargs": {"reduction": "mean"}},
        "criterion_wrapper": {"key": "SimpleLossWrapper", "kwargs": {
            "input": {"is_from_teacher": False, "module_path": "proj", "io": "output"},
            "target": {"is_from_teacher": True, "module_path": teacher_layer, "io": "output"}}},
        "weight": 1.0}})

    def loss_of(batch: dict) -> torch.Tensor:  # DistillationBox.forward_process
        with torch.no_grad():
            model_t(input_ids=batch["input_ids"])
        io_t = hooks_t.pop_io_dict()
        out = model_s(batch["input_ids"], batch["labels"])
        io_s = hooks_s.pop_io_dict()
        return criterion({"student": io_s, "teacher": io_t}, extract_model_loss(out, None), None)

    optimizer = torch.optim.AdamW(model_s.parameters(), lr=LR)
    step = train_step(loss_of, lambda: list(model_s.parameters()), optimizer, batches, CLIP)
    return loss_of, step, [model_s], [model_t]


def main() -> None:
    args = parse_args(__doc__, ROUNDS, QUICK_ROUNDS)
    torch.manual_seed(0)
    root = Path(tempfile.mkdtemp(prefix="distill-frameworks-"))
    store = make_store(root)
    mc = ModelConfig(**model_preset("bert-6L-512H"))
    teacher = VideoTextTeacher(BertForMaskedLM(bert_config(mc)), VideoTowerConfig(
        feature_dim=16, hidden_size=64, num_layers=1, num_heads=2, intermediate_size=64))
    teacher.eval().requires_grad_(False)
    student = BertForMaskedLM(bert_config(mc))
    data = ShardedBatches(IndexedBlocks(store, range(len(store))),
                          BlockCollator(store.special_ids, store.vocab_size, 0.15), BATCH, seed=0)
    batches = [data[i] for i in range(8)]
    tokens = batches[0]["input_ids"].numel()
    assert batches[0]["input_ids"].shape == (BATCH, 128), batches[0]["input_ids"].shape

    unit, target = "tokens/s", 1.5
    references: dict[str, tuple] = {}
    errors: dict[str, str] = {}
    proj = None
    try:
        loss_tb, step_tb, trained_tb, frozen_tb, proj = build_textbrewer(student, teacher, root, batches)
        references["distill_vs_textbrewer"] = (loss_tb, step_tb, trained_tb, frozen_tb)
    except Exception as e:  # noqa: BLE001 - reported as the line's error
        traceback.print_exc()
        errors["distill_vs_textbrewer"] = f"{type(e).__name__}: {e}".splitlines()[0]
    if proj is None:  # TextBrewer's projection init, or the same init by hand
        proj = nn.Linear(WIDTH, WIDTH)
        nn.init.normal_(proj.weight, std=0.02)
        nn.init.zeros_(proj.bias)
    proj = copy.deepcopy(proj)
    try:
        references["distill_vs_torchdistill"] = build_torchdistill(student, teacher, proj, batches)
    except Exception as e:  # noqa: BLE001
        traceback.print_exc()
        errors["distill_vs_torchdistill"] = f"{type(e).__name__}: {e}".splitlines()[0]
    loss_ours, step_ours, trained_ours, frozen_ours = build_ours(student, teacher, proj, len(store), batches)

    # correctness before timing (dropout off): the same loss on the same batch
    def modes(train: bool) -> None:
        sides = [(trained_ours, frozen_ours)] + [(r[2], r[3]) for r in references.values()]
        for trained, frozen in sides:
            for m in trained:
                m.train(train)
            for m in frozen:
                m.eval()

    modes(False)
    with torch.no_grad():
        ours_loss = loss_ours(batches[0])
        for name, (loss_of, *_rest) in list(references.items()):
            ref = loss_of(batches[0])
            if not torch.allclose(ours_loss, ref, rtol=1e-4):
                errors[name] = f"loss differs from ours on the same batch: {float(ref):.6f} vs {float(ours_loss):.6f}"
                del references[name]
            else:
                print(f"# {name}: loss {float(ref):.6f} == ours {float(ours_loss):.6f}", file=sys.stderr)
    modes(True)
    our_flops = count_flops(lambda: step_ours(0))
    for i in range(WARMUP):
        if i:
            step_ours(i)
        for name, (_, step, *_rest) in list(references.items()):
            try:
                step(i)
            except Exception as e:  # noqa: BLE001
                traceback.print_exc()
                errors[name] = f"step failed: {type(e).__name__}: {e}".splitlines()[0]
                del references[name]

    gemm = Gemm(tokens, WIDTH, 4 * WIDTH, reps=10)
    times = rounds({"ours": step_ours, **{name: r[1] for name, r in references.items()}, "gemm": gemm}, args.rounds)
    peak = peak_fields(our_flops, times["ours"], gemm, times["gemm"])
    median = statistics.median
    for name in ("distill_vs_textbrewer", "distill_vs_torchdistill"):
        if name in references:
            line(name, tokens / median(times["ours"]), tokens / median(times[name]), unit,
                 ratios(times["ours"], times[name]), target, tokens="wikipedia (bundled token store), 15% masked",
                 **peak)
        else:
            error_line(name, None, unit, target, errors.get(name, "not run"))


if __name__ == "__main__":
    main()
