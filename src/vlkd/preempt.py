"""A polite stop: while a `StopSignals` block is active, SIGTERM and SIGUSR1 (what Slurm and Kubernetes
send before they kill a job) only set a flag, and the long-running loop stops at its next resumable point
(training: a checkpoint at the next step boundary; feature extraction and teacher targets: after the item
in hand). SIGINT (Ctrl-C) is left alone: it still interrupts at once.

DataLoader workers ignore the two signals (`ignore_stop_signals` as `worker_init_fn`), so a signal sent to
the whole process group, as Slurm does, does not kill a worker under the main process.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class StopSignals:
    """Context manager; `requested` is the name of the first stop signal received, or None."""

    def __init__(self) -> None:
        self.requested: str | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested is None:
            self.requested = signal.Signals(signum).name

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():  # handlers can only be set there
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


def ignore_stop_signals(worker_id: int = 0) -> None:
    """A DataLoader `worker_init_fn`: the main process decides when to stop, not a signal to a worker."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
