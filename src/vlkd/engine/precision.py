"""Which precision a run trains in: `precision: auto` resolved against the hardware, with the reason.

On a GPU, auto is bf16 autocast where the GPU supports bf16, fp32 otherwise. On a CPU, auto is bf16
autocast only where the CPU has native bf16 matrix instructions (Intel AMX `amx_bf16`, or
`avx512_bf16`): there bf16 GEMMs run several times faster than fp32. Elsewhere (e.g. AMD EPYCs without
AVX-512) bf16 is emulated and slower than fp32, so auto stays fp32. The CPU flags come from
/proc/cpuinfo (Linux); where it cannot be read, no native bf16 is assumed. The environment variable
VLKD_CPU_BF16=1/0 overrides the detection (the test suite sets 0, so its results do not depend on the
machine it runs on).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from vlkd.errors import VlkdError

BF16_FLAGS = ("amx_bf16", "avx512_bf16")
CPUINFO = Path("/proc/cpuinfo")
ENV_OVERRIDE = "VLKD_CPU_BF16"


def cpu_flags() -> set[str]:
    """The CPU's feature flags as the kernel lists them (empty where /proc/cpuinfo is unreadable)."""
    try:
        text = CPUINFO.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    for row in text.splitlines():
        key, _, value = row.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def cpu_native_bf16() -> tuple[bool, str]:
    """(whether this CPU has native bf16 matrix support, why we think so)."""
    forced = os.environ.get(ENV_OVERRIDE, "").strip()
    if forced in ("0", "1"):
        return forced == "1", f"{ENV_OVERRIDE}={forced}"
    found = sorted(cpu_flags() & set(BF16_FLAGS))
    if found:
        return True, f"CPU has {', '.join(found)}"
    return False, "CPU lacks amx_bf16/avx512_bf16 (bf16 would be emulated, slower than fp32)"


def resolve_precision(requested: str) -> tuple[str, str]:
    """The precision to run (fp32, bf16 or fp16) for a requested one (auto or explicit), and the reason."""
    cuda = torch.cuda.is_available()
    if requested == "auto":
        if cuda:
            if torch.cuda.is_bf16_supported():
                return "bf16", "auto: the GPU supports bf16"
            return "fp32", "auto: the GPU does not support bf16"
        native, why = cpu_native_bf16()
        return ("bf16" if native else "fp32"), f"auto: {why}"
    if requested == "fp16" and not cuda:
        raise VlkdError("precision=fp16 needs a GPU; use precision=fp32, bf16 or auto on CPU")
    return requested, "set in the config"
