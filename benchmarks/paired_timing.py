"""What the benchmarks share: paired timing, the machine they ran on, FLOP accounting against a GEMM peak
measured in the same run, the JSON line of each figure, and a token store of real text.

Paired timing: the sides of a comparison alternate step by step (A B, then B A, ...; with three sides
A B C, then C B A); these VMs drift by up to 50% within minutes, so only per-round ratios compare. A
figure is the median of the per-round ratios, with its quartiles (`ratio_q1`, `ratio_q3`) and extremes.

FLOP accounting: `count_flops(fn)` runs one step under `torch.utils.flop_counter.FlopCounterMode`, which
counts the FLOPs of matrix products, convolutions and attention, forward and backward (2 per
multiply-add); element-wise work, softmax, normalisation, the loss and the optimizer are not counted (they
are memory-bound and small in FLOPs). A step's achieved GFLOP/s is that count over its time. The peak is a
GEMM of the step's dominant shape (`Gemm`), timed in the same rounds as the step at the same precision;
`fraction_of_peak` is the median over rounds of achieved / GEMM rate.

Run a benchmark as `python benchmarks/NAME.py [--quick] [--precision fp32|bf16]`: this directory is on its
path. `--quick` is a smoke run (few rounds, numbers not meant to be quoted).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from vlkd.data.bundled import bundled_path
from vlkd.data.text.store import TokenStore, build_token_store
from vlkd.data.tokenizer import BUNDLED_TOKENIZER
from vlkd.engine.precision import cpu_flags
from vlkd.heap import keep_heap

SIMD_FLAGS = ("amx_bf16", "amx_tile", "avx512_bf16", "avx512f", "avx2", "fma")
Step = Callable[[int], None]

PRECISION = "fp32"  # set by `parse_args`; every line reports it


def cpu_model() -> str:
    try:
        for row in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if row.startswith("model name"):
                return row.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    """The CPU, its matrix-relevant flags, threads and torch: printed once and added to every line."""
    flags = cpu_flags()
    return {"cpu": cpu_model(), "cpu_flags": [f for f in SIMD_FLAGS if f in flags],
            "threads": torch.get_num_threads(), "torch": torch.__version__, "precision": PRECISION,
            "keep_heap": keep_heap()}


def parse_args(description: str, rounds: int, quick_rounds: int, extra: Callable[[argparse.ArgumentParser], None] | None = None,
               ) -> argparse.Namespace:
    """The shared flags: --rounds, --quick (smoke run), --precision (fp32, or bf16 CPU autocast)."""
    global PRECISION
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=rounds, help=f"timed rounds (pairs); default {rounds}")
    parser.add_argument("--quick", action="store_true", help=f"smoke run: {quick_rounds} rounds")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                        help="bf16: both sides and the GEMM peak under CPU bf16 autocast")
    if extra is not None:
        extra(parser)
    args = parser.parse_args()
    if args.quick:
        args.rounds = min(args.rounds, quick_rounds)
    PRECISION = args.precision
    keep_heap()  # as every vlkd process does (vlkd/heap.py); both sides of a comparison share it
    print(f"# machine: {json.dumps(machine())}", file=sys.stderr, flush=True)
    return args


def autocast() -> contextlib.AbstractContextManager:
    """CPU bf16 autocast when the run's precision is bf16, else nothing."""
    if PRECISION == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def rounds(sides: dict[str, Step], n: int) -> dict[str, list[float]]:
    """Run every side once per round, the order reversed every other round; seconds per side per round."""
    names = list(sides)
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(n):
        for name in (names if i % 2 == 0 else names[::-1]):
            start = time.perf_counter()
            sides[name](i)
            times[name].append(time.perf_counter() - start)
    return times


def paired(a: Step, b: Step, pairs: int) -> tuple[float, float, list[float]]:
    """Alternate a and b (A B, then B A, ...); returns (median time of a, of b, per-pair ratios t_b / t_a)."""
    times = rounds({"a": a, "b": b}, pairs)
    return statistics.median(times["a"]), statistics.median(times["b"]), ratios(times["a"], times["b"])


def ratios(fast: list[float], slow: list[float]) -> list[float]:
    return [s / f for f, s in zip(fast, slow)]


def spread(values: list[float], prefix: str) -> dict:
    q = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else [values[0]] * 3
    return {prefix: round(statistics.median(values), 3), f"{prefix}_q1": round(q[0], 3),
            f"{prefix}_q3": round(q[2], 3), f"{prefix}_min": round(min(values), 3), f"{prefix}_max": round(max(values), 3)}


def line(name: str, ours: float, reference: float, unit: str, ratio_values: list[float], target: float | None,
         **extra) -> None:
    """One figure's JSON line (DESIGN §4), the ratio the median of the per-round ratios, plus the machine."""
    print(json.dumps({"benchmark": name, "ours": round(ours, 2), "reference": round(reference, 2), "unit": unit,
                      **spread(ratio_values, "ratio"), "pairs": len(ratio_values), "target": target, **extra,
                      **machine()}), flush=True)


def train_step(loss_of: Callable[[dict], torch.Tensor], params: Callable[[], list], optimizer: torch.optim.Optimizer,
               batches: list[dict], clip: float = 1.0) -> Step:
    """One training step as the engine takes it (autocast forward, backward, clip, optimizer), as a side."""
    def step(i: int) -> None:
        with autocast():
            loss = loss_of(batches[i % len(batches)])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params(), clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return step


def count_flops(step: Callable[[], object]) -> int:
    """FLOPs of one call of `step` as FlopCounterMode counts them (matmul/conv/attention, fwd + bwd)."""
    with FlopCounterMode(display=False) as counter:
        step()
    return int(counter.get_total_flops())


class Gemm:
    """The GEMM peak: `reps` products (m x k) @ (k x n) at the run's precision, timed as one side of a round."""

    def __init__(self, m: int, k: int, n: int, reps: int, device: torch.device = torch.device("cpu")) -> None:
        g = torch.Generator().manual_seed(0)
        dtype = torch.bfloat16 if PRECISION == "bf16" else torch.float32
        self.a = torch.randn(m, k, generator=g).to(device, dtype)
        self.b = torch.randn(k, n, generator=g).to(device, dtype)
        self.reps, self.shape = reps, (m, k, n)
        self.flops = 2 * m * k * n * reps
        self(0)  # warm-up

    def __call__(self, _: int) -> None:
        for _ in range(self.reps):
            torch.mm(self.a, self.b)
        if self.a.is_cuda:
            torch.cuda.synchronize()


def peak_fields(step_flops: int, step_times: list[float], gemm: Gemm, gemm_times: list[float]) -> dict:
    """Achieved GFLOP/s of a step, the GEMM's, and their per-round fraction (median, quartiles, extremes)."""
    achieved = [step_flops / t / 1e9 for t in step_times]
    peak = [gemm.flops / t / 1e9 for t in gemm_times]
    return {"step_gflop": round(step_flops / 1e9, 2), "achieved_gflop_s": round(statistics.median(achieved), 1),
            "peak_gflop_s": round(statistics.median(peak), 1), "gemm_shape": list(gemm.shape),
            **spread([a / p for a, p in zip(achieved, peak)], "fraction_of_peak"),
            "flops_counted": "torch FlopCounterMode: matmul/conv/attention fwd+bwd"}


def make_store(root: Path) -> TokenStore:
    """A token store of real text (bundled Wikipedia lead sections), enough blocks for every timed step."""
    raw = json.loads(bundled_path("wikipedia").read_text(encoding="utf-8"))
    # the bundled file stores each record as a Python literal
    texts = [(ast.literal_eval(v) if isinstance(v, str) else v)["extract"] for v in list(raw.values())[:400]]
    (root / "wiki.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    build_token_store([root / "wiki.txt"], BUNDLED_TOKENIZER, root / "store", progress=False)
    return TokenStore(root / "store")
