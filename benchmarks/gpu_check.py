"""The GPU check: every recipe for a few dozen steps at its reference size under bf16, against fp32.

Run it as `benchmarks/gpu_check.sh` (one H100: about 8 minutes, nothing downloaded). The data are made
here: a synthetic world (`vlkd prepare world`) -> its offline features (HowTo100M layout for the teacher,
HCRN layout for VideoQA) -> `prepare howto100m` / `prepare videoqa` (bundled 50-d GloVe); a token store of
the bundled Wikipedia + the world's captions; the bundled fine-tuning tasks; and, once the teacher has
trained, `prepare teacher-targets` (form full) for the cached distillation. Recipes, in order (each one's
reference preset; `--cpu-smoke`: its tiny preset):

    mlm (mlm-base), teacher (teacher-small), distill online and distill with cached targets
    (distill-small-wiki103, its teacher the teacher run), videoqa (videoqa-msvd-teacher, word_dim 50:
    the bundled GloVe), finetune (rt-polarity from the mlm run, the GLUE defaults: batch 32)

Each recipe trains `--steps` steps through the engine (`run_training`, as `vlkd train` does) twice: bf16,
then fp32 with the same seed, data order and masks. Per recipe one JSON line (DESIGN §4):
- "ours" / "reference": bf16 / fp32 throughput (tokens/s as the engine counts them, or samples/s for
  VideoQA), the median of the logged intervals after the first (warm-up); "ratio": per-interval bf16 / fp32;
- "mfu": achieved FLOP/s of the bf16 run over the dense bf16 GEMM peak measured in the same run (an 8192^3
  bf16 `mm` on the device, median of 5 timings), per process. FLOPs per sample are counted once by torch's FlopCounterMode
  over one micro-batch's forward + backward on the CPU (matmul/conv/attention, the frozen teacher's forward
  included), so achieved = FLOPs per sample x samples/s;
- "peak_memory_mib": torch.cuda.max_memory_allocated of the bf16 run (null on the CPU);
- loss parity: mean relative difference of the logged training losses, bf16 vs fp32, and of the last one;
  "parity_pass" when both are within 2% (the floor of benchmarks/bf16_numerics.py).
Timing is not paired here (one bf16 run, then one fp32 run): the GPU is one machine, not a drifting VM.

With two or more GPUs the wrapper runs the recipes as two processes under `accelerate launch` (the effective
batch is the same; "processes" in each line). `--cpu-smoke`: tiny presets, 2 steps each, on the CPU, to
keep the script working (tests/benchmarks/test_gpu_check.py); its numbers mean nothing, and its low
precision is `auto` (bf16 where the CPU has it natively, else fp32: "precision" in each line says which), since
emulated bf16 fails in oneDNN's LSTM on such CPUs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import PartialState

import paired_timing  # noqa: E402  (this directory is on the path)
from bf16_numerics import FLOOR, curve, curve_difference  # noqa: E402
from paired_timing import Gemm, count_flops, line, machine, make_store  # noqa: E402
from vlkd.data.bundled import bundled_path
from vlkd.data.tasks.bundled import prepare_bundled
from vlkd.data.teacher.howto100m import prepare_howto100m
from vlkd.data.teacher.targets import prepare_teacher_targets
from vlkd.data.text.store import build_token_store
from vlkd.data.tokenizer import BUNDLED_TOKENIZER
from vlkd.data.videoqa.prepare import prepare_videoqa
from vlkd.data.world.generate import ensure_world
from vlkd.engine.batches import seeded_generator
from vlkd.engine.precision import resolve_precision
from vlkd.io import read_json, write_text_atomic
from vlkd.quickstart.vidlankd import world_captions
from vlkd.recipes import load_config, recipe_module, run_training
from vlkd.rundir import read_metrics
from vlkd.video.extract import extract_features

GEMM_SIZE, GEMM_REPS, GEMM_TIMINGS = 8192, 10, 5
FLOP_SAMPLES = 2  # micro-batch whose forward + backward is counted


@dataclass(frozen=True)
class Size:
    """What differs between the GPU check and its CPU smoke run."""

    videos: int
    steps: int
    log_every: int
    presets: dict[str, str]
    extra: tuple[str, ...] = ()  # overrides for every recipe
    clips: int = 8
    frame_size: int | None = None  # HCRN frames (None: the extractor's defaults, 224 / 112)
    valid_blocks: int = 64  # held-out blocks of the token store
    low_precision: str = "bf16"  # the side compared with fp32 (the runs' folders say bf16 either way)
    small_text: bool = False  # the token store: 400 Wikipedia lead sections, not all of them + the captions


GPU = Size(videos=400, steps=40, log_every=10,
           presets={"mlm": "mlm-base", "teacher": "teacher-small", "distill": "distill-small-wiki103",
                    "videoqa": "videoqa-msvd-teacher"})
# auto: bf16 only where the CPU has it natively; emulated CPU bf16 fails in oneDNN's LSTM (VideoQA's BiLSTMs)
SMOKE = Size(videos=24, steps=2, log_every=1, clips=4, frame_size=32, small_text=True, low_precision="auto",
             presets={"mlm": "mlm-tiny", "teacher": "teacher-tiny", "distill": "distill-tiny",
                      "videoqa": "quickstart-videoqa"},
             valid_blocks=8, extra=("batch_size=4", "num_workers=0"))
RECIPES = ("mlm", "teacher", "distill", "distill_cached", "videoqa", "finetune")


def log(msg: str) -> None:
    if PartialState().is_main_process:
        print(f"[gpu_check] {msg}", file=sys.stderr, flush=True)


def inputs_of(out: Path, size: Size) -> dict[str, Path]:
    """Where `prepare` puts each input."""
    return {"world": out / "world", "teacher_data": out / "teacher-data",
            "store": out / ("store" if size.small_text else "text-tokens"), "hcrn": out / "hcrn",
            "videoqa": out / "videoqa-data", "tasks": out / "tasks", "rt_polarity": out / "tasks" / "rt-polarity"}


def prepare(out: Path, size: Size, device: str) -> dict[str, Path]:
    """Every input the recipes read, made here (resumable: finished parts are kept)."""
    inputs = inputs_of(out, size)
    world = ensure_world(inputs["world"], size.videos, seed=0)
    extract_features(world / "videos", out / "features", layout="howto100m", device=device, progress=False)
    if not (inputs["teacher_data"] / "meta.json").is_file():
        prepare_howto100m(world / "caption.json", out / "features", inputs["teacher_data"], valid_fraction=0.25,
                          progress=False)
    if not (inputs["store"] / "meta.json").is_file():
        if size.small_text:  # 400 Wikipedia lead sections: teacher targets in seconds on a CPU
            make_store(out)
        else:
            build_token_store([bundled_path("wikipedia"), world_captions(world, inputs["teacher_data"], out)],
                              BUNDLED_TOKENIZER, inputs["store"], progress=False)
    extract_features(world / "videos", inputs["hcrn"], layout="hcrn", num_clips=size.clips,
                     appearance_size=size.frame_size, motion_size=size.frame_size, device=device, progress=False)
    if not (inputs["videoqa"] / "meta.json").is_file():
        prepare_videoqa("msvd-qa", world, "bundled:glove-50d", inputs["videoqa"], features=inputs["hcrn"],
                        progress=False)
    if not (inputs["rt_polarity"] / "meta.json").is_file():
        prepare_bundled(inputs["tasks"])
    return inputs


def finetune_yaml(out: Path, model: Path, data: Path) -> Path:
    path = out / "finetune.yaml"
    write_text_atomic(path, f"task: finetune\nmodel: {model}\ndata:\n  task: rt-polarity\n  dir: {data}\n")
    return path


def recipe_config(name: str, out: Path, size: Size, inputs: dict[str, Path]) -> tuple[str, list[str]]:
    """The preset (or YAML) and the overrides of one recipe's runs."""
    p = size.presets
    if name == "mlm":
        return p["mlm"], [f"data.train={inputs['store']}", f"data.valid_blocks={size.valid_blocks}"]
    if name == "teacher":
        feature_dim = read_json(inputs["teacher_data"] / "meta.json")["feature_dim"]
        return p["teacher"], [f"data.path={inputs['teacher_data']}", f"video.feature_dim={feature_dim}"]
    if name == "distill":
        return p["distill"], [f"data.train={inputs['store']}", f"data.valid_blocks={size.valid_blocks}",
                              f"teacher={out / 'teacher-bf16'}"]
    if name == "distill_cached":
        return p["distill"], [f"data.train={inputs['store']}", f"data.valid_blocks={size.valid_blocks}",
                              f"teacher={out / 'teacher-bf16'}", f"kd.targets={out / 'targets'}",
                              "kd.teacher_input=unmasked"]
    if name == "videoqa":
        return p["videoqa"], [f"data.path={inputs['videoqa']}", f"data.features={inputs['hcrn']}",
                              "model.word_dim=50", f"model.num_clips={size.clips}"]
    if name == "finetune":
        return str(finetune_yaml(out, out / "mlm-bf16" / "final", inputs["rt_polarity"])), []
    raise ValueError(name)


def flops_per_sample(preset: str, overrides: list[str]) -> float:
    """FLOPs of one sample's forward + backward in this recipe's module (CPU, fp32: the count is the same)."""
    config = load_config(preset, [*overrides, "precision=fp32"])
    job = recipe_module(config.task).build(config)
    items = [job.train_data[i] for i in range(FLOP_SAMPLES)]
    batch = job.collate(items, seeded_generator(0))
    job.module.train()
    return count_flops(lambda: job.module(batch)["loss"].backward()) / FLOP_SAMPLES


def gemm_peak(device: torch.device, size: int, precision: str) -> float:
    """Dense GFLOP/s of a large `mm` at `precision` on the device: the median of a few timings after a warm-up."""
    paired_timing.PRECISION = precision  # Gemm's dtype
    gemm = Gemm(size, size, size, reps=GEMM_REPS, device=device)
    times = []
    for _ in range(GEMM_TIMINGS):
        start = time.perf_counter()
        gemm(0)
        times.append(time.perf_counter() - start)
    return gemm.flops / statistics.median(times) / 1e9


def throughput(run: Path, batch_size: int, per_token: bool) -> list[float]:
    """Per logged interval (the first, warm-up, dropped when there are more): tokens/s or samples/s."""
    records = [r for r in read_metrics(run / "metrics.jsonl") if "tokens_per_s" in r]
    values, last_step = [], 0
    for r in records:
        steps, last_step = r["step"] - last_step, r["step"]
        values.append(r["tokens_per_s"] if per_token else batch_size * steps / r["seconds"])
    return values[1:] if len(values) > 1 else values


def run_recipe(name: str, out: Path, size: Size, inputs: dict[str, Path], peak: float, device: torch.device) -> None:
    preset, overrides = recipe_config(name, out, size, inputs)
    common = [f"max_steps={size.steps}", f"log_every={size.log_every}", f"save_every={size.steps}", "eval_every=0",
              "eval_every_epochs=0",
              "eval_batches=2", "progress=false", "seed=42", *size.extra, *overrides]
    runs, seconds = {}, {}
    for precision, requested in (("bf16", size.low_precision), ("fp32", "fp32")):
        runs[precision] = out / f"{name}-{precision}"
        config = load_config(preset, [f"output_dir={runs[precision]}", *common, f"precision={requested}"])
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        start = time.perf_counter()
        run_training(config)
        seconds[precision] = round(time.perf_counter() - start, 1)
        if precision == "bf16":
            memory = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
        log(f"{name} {precision}: {seconds[precision]} s")
    if not PartialState().is_main_process:
        return
    per_token = name != "videoqa"
    bf16, fp32 = (throughput(runs[p], config.batch_size, per_token) for p in ("bf16", "fp32"))
    samples_per_s = statistics.median(throughput(runs["bf16"], config.batch_size, False))
    achieved = flops_per_sample(preset, [f"output_dir={out / 'flops'}", *common]) * samples_per_s / 1e9
    processes = PartialState().num_processes
    curves = {p: curve(runs[p]) for p in runs}
    last = max(curves["fp32"])
    curve_diff = curve_difference(curves["bf16"], curves["fp32"])
    last_diff = abs(curves["bf16"][last] - curves["fp32"][last]) / abs(curves["fp32"][last])
    line(f"gpu_check_{name}", statistics.median(bf16), statistics.median(fp32),
         "tokens/s" if per_token else "samples/s", [b / f for b, f in zip(bf16, fp32)], None,
         preset=Path(preset).name, steps=size.steps, batch_size=config.batch_size, processes=processes,
         samples_per_s=round(samples_per_s, 2), achieved_gflop_s=round(achieved, 1),
         peak_gflop_s=round(peak, 1), mfu=round(achieved / (peak * processes), 4),
         peak_memory_mib=None if memory is None else round(memory, 1),
         loss_curve_rel_diff=round(curve_diff, 5), last_loss_rel_diff=round(last_diff, 5),
         parity_tolerance=FLOOR, parity_pass=curve_diff <= FLOOR and last_diff <= FLOOR,
         seconds=seconds, device=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
         timing="not paired: one bf16 run, then one fp32 run")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny presets, 2 steps each, on the CPU")
    parser.add_argument("--prepare-only", action="store_true", help="make the data and stop (the wrapper's first step)")
    parser.add_argument("--out", type=Path, default=None, help="data and runs (default: a temporary folder)")
    parser.add_argument("--recipes", default=",".join(RECIPES), help=f"comma-separated subset of {','.join(RECIPES)}")
    args = parser.parse_args()
    size = SMOKE if args.cpu_smoke else GPU
    if not args.cpu_smoke and not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device (use --cpu-smoke for the CPU dry run)")
    state = PartialState(cpu=args.cpu_smoke)
    device = state.device
    out = args.out or Path(tempfile.mkdtemp(prefix="gpu-check-"))
    if state.is_main_process:
        print(f"# machine: {json.dumps(machine())}", file=sys.stderr, flush=True)
        start = time.perf_counter()
        prepare(out, size, device.type)
        log(f"data ready in {time.perf_counter() - start:.0f} s: {out}")
    state.wait_for_everyone()
    if args.prepare_only:
        return
    inputs = inputs_of(out, size)
    low = resolve_precision(size.low_precision)[0]
    peak = gemm_peak(device, GEMM_SIZE if device.type == "cuda" else 256, low)
    log(f"dense {low} GEMM peak: {peak:.1f} GFLOP/s")
    # what every line compares, as machine() reports it ("bf16 vs fp32"; the smoke on a CPU without bf16: fp32)
    paired_timing.PRECISION = f"{low} vs fp32"
    for name in args.recipes.split(","):
        if name == "distill_cached" and not (out / "targets" / "meta.json").is_file():
            if state.is_main_process:
                prepare_teacher_targets(out / "teacher-bf16", inputs["store"], out / "targets", form="full",
                                        progress=False)
            state.wait_for_everyone()
        run_recipe(name, out, size, inputs, peak, device)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
