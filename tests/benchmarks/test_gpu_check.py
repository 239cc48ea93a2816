"""benchmarks/gpu_check.py: importable, its presets exist, and its CPU dry run (`--cpu-smoke`) prints one
complete line per recipe with fp32 and bf16 losses that agree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from vlkd.config import list_presets

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import gpu_check  # noqa: E402


def test_every_preset_it_names_exists() -> None:
    presets = set(list_presets())
    for size in (gpu_check.GPU, gpu_check.SMOKE):
        assert set(size.presets.values()) <= presets, size.presets


def test_throughput_drops_the_warm_up_interval(tmp_path: Path) -> None:
    rows = [{"step": 10, "tokens_per_s": 100.0, "seconds": 4.0}, {"step": 20, "tokens_per_s": 300.0, "seconds": 2.0},
            {"step": 20, "valid_loss": 1.0}, {"step": 25, "tokens_per_s": 310.0, "seconds": 1.0}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert gpu_check.throughput(tmp_path, 8, per_token=True) == [300.0, 310.0]
    assert gpu_check.throughput(tmp_path, 8, per_token=False) == [8 * 10 / 2.0, 8 * 5 / 1.0]


def test_cpu_smoke_prints_every_recipe(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHON": sys.executable, "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(["bash", str(BENCHMARKS / "gpu_check.sh"), "--cpu-smoke", "--out", str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(row) for row in done.stdout.splitlines() if row.startswith("{")]
    assert [r["benchmark"] for r in lines] == [f"gpu_check_{name}" for name in gpu_check.RECIPES]
    for r in lines:
        assert r["ours"] > 0 and r["reference"] > 0 and r["peak_gflop_s"] > 0 and r["mfu"] > 0, r
        assert r["device"] == "cpu" and r["peak_memory_mib"] is None and r["processes"] == 1
        assert r["precision"] in ("bf16 vs fp32", "fp32 vs fp32"), r
        # two steps from the same weights and batches: bf16 autocast stays within the parity tolerance
        assert r["parity_pass"], r
    assert lines[-1]["preset"] == "finetune.yaml" and lines[-2]["unit"] == "samples/s"
