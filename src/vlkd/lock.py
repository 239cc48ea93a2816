"""One writer per directory: an advisory lock (`flock`) on a `.vlkd.lock` file inside a run directory or a
`prepare`/`extract-features` output, held while the command writes there.

The kernel drops the lock when its process ends, however it ends (kill -9 included), so a lock left by a
dead process is simply taken over; the file holds the holder's pid and host for the error message and is
emptied on a clean release (a pid still in it at acquisition marks a holder that died). flock works on
local disks and, through the NFS client's lock manager, on shared cluster file systems.
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path
from types import TracebackType

from vlkd.errors import VlkdError

LOCK_FILE = ".vlkd.lock"


class DirLock:
    """`with DirLock(directory):` the directory (created if needed) is ours until the block ends; a second
    process gets a one-line VlkdError naming the holder's pid. `stale` is the pid a dead holder left."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        self.path = self.directory / LOCK_FILE
        self.stale: str | None = None
        self._fd: int | None = None

    def acquire(self) -> "DirLock":
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fd) or "unknown"
            os.close(fd)
            raise VlkdError(f"in use by another vlkd process ({holder}; lock file {LOCK_FILE}); wait for it "
                            "to finish or stop it, or choose another directory", self.directory) from None
        self.stale = _read(fd) or None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)  # a clean exit: nothing stale to report to the next holder
        except OSError:
            pass
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "DirLock":
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


def _read(fd: int) -> str:
    try:
        return os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        return ""
