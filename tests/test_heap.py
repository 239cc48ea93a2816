"""vlkd.heap: the glibc settings are applied once, can be turned off, and large blocks then stay in the heap."""

import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the settings are glibc's")

# After keep_heap(), freeing and reallocating a 64 MiB tensor must not map fresh pages: the process's
# minor page faults for 20 rounds, once warm, stay far below 20 x 16384 (4 KiB pages in 64 MiB).
SCRIPT = """
import os, resource, sys, torch
from vlkd.heap import keep_heap
print(keep_heap(), keep_heap())
for _ in range(10):  # glibc settles after a few rounds (measured: 8)
    torch.ones(16 * 2**20)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    torch.ones(16 * 2**20)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _run(env_value: str) -> tuple[str, int]:
    env = {"VLKD_KEEP_HEAP": env_value, "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True,
                         env=env | {"PYTHONPATH": ":".join(sys.path)}).stdout.split("\n")
    return out[0], int(out[1])


def test_keep_heap_reuses_freed_blocks() -> None:
    applied, faults_on = _run("1")
    assert applied == "True True"
    off, faults_off = _run("0")
    assert off == "False False"
    pages = 20 * 16 * 2**20 * 4 // 4096
    assert faults_off > pages // 2  # without it every round maps fresh pages
    assert faults_on < pages // 20
