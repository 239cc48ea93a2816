"""Numerics of CPU bf16 autocast: the quickstart's teacher, MLM and distillation runs in bf16 vs fp32.

Data as the quickstart builds it (src/vlkd/quickstart/vidlankd.py), smaller: a synthetic world of
`--videos` videos -> offline features -> teacher samples; a token store of the bundled Wikipedia + the
world's training captions. Runs, each `--steps` steps of the quickstart configs (quickstart-teacher,
quickstart-mlm, quickstart-distill; evaluation at the start and the end only):
- fp32, seed 42 (the configs' seed): the baseline;
- bf16 (`precision=bf16`, CPU autocast), seed 42: same initial weights, data order and masks;
- fp32, seed 43: the seed-to-seed spread, i.e. the run-to-run noise a user already accepts.
Both distillations use the fp32 teacher, so the distillation comparison sees only its own precision.

Tolerance, and why: bf16 autocast rounds the inputs of matrix products to an 8-bit mantissa (relative
error ~0.4% per product, accumulated in fp32); losses, softmax and normalisation stay fp32. Over a run the
rounding acts like any other small perturbation of training, so bf16 passes when, for each run, (a) the
final validation metrics differ from fp32's by no more than the seed-to-seed difference, with a floor of
2% relative (one seed pair can be close by chance), and (b) the training-loss curves (every logged step)
differ by at most that much on average (mean absolute relative difference). Prints one JSON line per
run: "ours" = the bf16 final metric, "reference" = fp32's, "ratio" = bf16 / fp32, "tolerance" and "pass",
and every final validation metric of the three runs (retrieval, perplexity, NST: reported, not judged).

On a CPU without native bf16 (AMX / AVX512-BF16) bf16 is emulated: correct but slower than fp32. The
default (100 steps) runs a few minutes on 2 cores; `--quick`: 30 steps, 48 videos (the teacher needs >= 32 training samples: 3/4 of the videos).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from vlkd.data.bundled import bundled_path
from vlkd.data.teacher.howto100m import prepare_howto100m
from vlkd.data.text.store import build_token_store
from vlkd.data.tokenizer import BUNDLED_TOKENIZER
from vlkd.data.world.generate import ensure_world
from vlkd.io import read_json
from vlkd.quickstart.vidlankd import world_captions
from vlkd.recipes import load_config, run_training
from vlkd.rundir import read_metrics
from vlkd.video.extract import extract_features

from paired_timing import machine  # noqa: E402  (this directory is on the path)

FLOOR = 0.02
FINAL_METRIC = {"teacher": "valid_mlm", "mlm": "valid_mlm", "distill": "valid_mlm"}
VARIANTS = {"fp32": ["precision=fp32"], "bf16": ["precision=bf16"], "fp32_seed43": ["precision=fp32", "seed=43"]}


def log(msg: str) -> None:
    print(f"[bf16_numerics] {msg}", file=sys.stderr, flush=True)


def curve(run: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_metrics(run / "metrics.jsonl") if "loss" in r}


def final(run: Path, key: str) -> float:
    return [r[key] for r in read_metrics(run / "metrics.jsonl") if key in r][-1]


def finals(run: Path) -> dict[str, float]:
    """Every validation metric of the run's last evaluation."""
    last = [r for r in read_metrics(run / "metrics.jsonl") if any(k.startswith("valid_") for k in r)][-1]
    return {k: v for k, v in last.items() if k.startswith("valid_")}


def curve_difference(a: dict[int, float], b: dict[int, float]) -> float:
    steps = sorted(a.keys() & b.keys())
    return statistics.mean(abs(a[s] - b[s]) / abs(b[s]) for s in steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--videos", type=int, default=64)
    parser.add_argument("--out", type=Path, default=None, help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 30 steps, 48 videos")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.videos = min(args.steps, 30), min(args.videos, 48)
    log(f"machine: {json.dumps({**machine(), 'precision': 'fp32 vs bf16'})}")
    out = args.out or Path(tempfile.mkdtemp(prefix="bf16-numerics-"))
    world = ensure_world(out / "world", args.videos, seed=0)
    extract_features(world / "videos", out / "features", layout="howto100m", progress=False)
    data = out / "teacher-data"
    if not (data / "meta.json").is_file():
        prepare_howto100m(world / "caption.json", out / "features", data, valid_fraction=0.25, progress=False)
    store = out / "text-tokens"
    if not (store / "meta.json").is_file():
        build_token_store([bundled_path("wikipedia"), world_captions(world, data, out)], BUNDLED_TOKENIZER, store,
                          progress=False)
    common = [f"max_steps={args.steps}", f"eval_every={args.steps}", "eval_at_start=true", "log_every=5",
              f"save_every={args.steps}", "progress=false", "resume=true", "warmup=0.1"]
    feature_dim = read_json(data / "meta.json")["feature_dim"]
    stages = {
        "teacher": ("quickstart-teacher", [f"data.path={data}", f"video.feature_dim={feature_dim}"]),
        "mlm": ("quickstart-mlm", [f"data.train={store}"]),
        "distill": ("quickstart-distill", [f"data.train={store}", f"teacher={out / 'teacher-fp32'}"]),
    }
    for stage, (preset, keys) in stages.items():
        runs, seconds = {}, {}
        for variant, precision in VARIANTS.items():
            runs[variant] = out / f"{stage}-{variant}"
            start = time.perf_counter()
            run_training(load_config(preset, [f"output_dir={runs[variant]}", *keys, *common, *precision]))
            seconds[variant] = time.perf_counter() - start
        key = FINAL_METRIC[stage]
        base, bf16, other = (final(runs[v], key) for v in ("fp32", "bf16", "fp32_seed43"))
        curves = {v: curve(runs[v]) for v in runs}
        tolerance = max(abs(other - base) / abs(base), FLOOR)
        curve_tolerance = max(curve_difference(curves["fp32_seed43"], curves["fp32"]), FLOOR)
        final_diff = abs(bf16 - base) / abs(base)
        curve_diff = curve_difference(curves["bf16"], curves["fp32"])
        print(json.dumps({"benchmark": f"bf16_numerics_{stage}", "ours": round(bf16, 4), "reference": round(base, 4),
                          "unit": f"final {key} (bf16 vs fp32)", "ratio": round(bf16 / base, 6),
                          "target": "|ratio - 1| <= tolerance", "tolerance": round(tolerance, 4),
                          "seed43_fp32": round(other, 4), "curve_mean_rel_diff": round(curve_diff, 6),
                          "curve_tolerance": round(curve_tolerance, 6),
                          "pass": final_diff <= tolerance and curve_diff <= curve_tolerance, "steps": args.steps,
                          "seconds": {v: round(s, 1) for v, s in seconds.items()},
                          "finals_fp32_bf16_seed43": {k: [round(finals(runs[v])[k], 4) for v in VARIANTS]
                                                      for k in finals(runs["fp32"])},
                          "timing": "not paired: numerics, the run times are indicative", **machine(),
                          "precision": "bf16 vs fp32"}), flush=True)


if __name__ == "__main__":
    main()
