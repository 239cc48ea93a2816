"""Hugging Face: hub names are a convenience when online, and offline they must fail at once, not after
minutes of retries; loading a local transformers model says nothing unless something is wrong."""

from __future__ import annotations

import contextlib
import functools
import os
import socket
from typing import Iterator


@functools.lru_cache(maxsize=1)
def hub_reachable(timeout: float = 3.0) -> bool:
    """True if the Hugging Face hub answers a TCP connection (and offline mode is not forced)."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=timeout):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """No per-layer load reports or weight-loading progress bars: a new task head, or a checkpoint's tensors
    that the loaded class does not use (a CLIP text tower), are expected."""
    from transformers.utils import logging as hf_logging  # transformers costs a second of start-up: only when used

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
