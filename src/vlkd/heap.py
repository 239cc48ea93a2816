"""Keep large CPU tensors' memory in the process heap instead of returning it to the kernel each step.

glibc's malloc serves blocks above its mmap threshold (128 KiB, raised dynamically up to 32 MiB) with a
fresh `mmap` and unmaps them on free. A training step on the CPU allocates and frees the same multi-MB
activations every step (an MLM step's vocabulary logits are hundreds of MB), so every step pays page
faults to zero fresh pages. Measured here (AMD EPYC, 2 cores): the quickstart's VideoQA teacher spent
27 of 65 s in the kernel, and 2 of 50 s with this on; 60 quickstart MLM steps went from 31.2 to 26.0 s;
the metrics were identical to the last digit. Turning mmap off for the heap (`M_MMAP_MAX=0`; mallopt
cannot raise the threshold itself past 32 MiB) and keeping up to 2 GiB of freed top of heap makes freed
blocks reusable. This is what exporting `MALLOC_MMAP_THRESHOLD_`/`MALLOC_TRIM_THRESHOLD_` does, set from
inside the process so no launcher has to. Freed memory then stays with the process until it exits, which
a training process reuses anyway. A no-op where libc is not glibc; `VLKD_KEEP_HEAP=0` turns it off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # mallopt parameters (malloc.h)
TRIM_THRESHOLD = 2**31 - 1  # mallopt takes an int: up to 2 GiB of free heap top is kept
_applied = False


def keep_heap() -> bool:
    """Apply the settings once per process; True if glibc accepted them (False: not glibc, or turned off)."""
    global _applied
    if _applied or os.environ.get("VLKD_KEEP_HEAP", "1") == "0":
        return _applied
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        return False
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    _applied = bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _applied
