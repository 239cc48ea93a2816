#!/usr/bin/env bash
# The GPU check (benchmarks/gpu_check.py): every recipe at its reference size, bf16 vs fp32, on CUDA.
# One GPU: about 8 minutes on an H100, nothing downloaded. Two or more: two processes under
# `accelerate launch`. Arguments are passed on (--out DIR keeps the data and runs; --recipes a,b).
# `--cpu-smoke`: the same driver on the CPU with the tiny presets, 2 steps each.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="${PYTHON:-python}"
gpus=0
if [[ " $* " != *" --cpu-smoke "* ]] && command -v nvidia-smi >/dev/null; then
    gpus="$(nvidia-smi -L | grep -c '^GPU' || true)"
fi
if [[ " $* " == *" --out "* ]]; then
    args=("$@")
else
    args=("$@" --out "$(mktemp -d -t gpu-check-XXXXXX)")
fi
if (( gpus >= 2 )); then
    # data first, in one process; then the recipes as two processes on the same --out
    "$python" "$here/gpu_check.py" --prepare-only "${args[@]}"
    exec "$python" -m accelerate.commands.launch --multi_gpu --num_processes 2 "$here/gpu_check.py" "${args[@]}"
fi
exec "$python" "$here/gpu_check.py" "${args[@]}"
