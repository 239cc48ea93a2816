"""One writer per directory: an advisory lock (`flock`) on a `.vlkd.lock` file inside a run directory or a
`prepare`/`extract-features` output, held while the command writes there.

The kernel drops the lock when its process ends, however it ends (kill -9 included), so a lock file left by
a dead process is simply taken over (and said so); the file holds the holder's pid and host for the error
message and is removed on a clean release. flock works on local disks and, through the NFS client's lock
manager, on shared cluster file systems. A forked child (a DataLoader worker) closes its copy of the
descriptor at once: the lock belongs to the process that took it, and dies with it.
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path
from types import TracebackType

from vlkd.errors import VlkdError

LOCK_FILE = ".vlkd.lock"
_HELD: set[int] = set()  # descriptors of the locks this process holds


def _close_inherited() -> None:
    """In a forked child: drop the parent's lock descriptors, or the child would keep the lock alive."""
    for fd in _HELD:
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD.clear()


os.register_at_fork(after_in_child=_close_inherited)


class DirLock:
    """`with DirLock(directory):` the directory (created if needed) is ours until the block ends; a second
    process gets a one-line VlkdError naming the holder's pid. `stale` is the pid a dead holder left. A
directory the lock created and nothing else was written to is removed again on release."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        self.path = self.directory / LOCK_FILE
        self.stale: str | None = None
        self._fd: int | None = None
        self._owner = 0
        self._created = False

    def acquire(self) -> "DirLock":
        self._created = not self.directory.exists()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise VlkdError("exists and is not a directory", self.directory) from None
        except OSError as e:
            raise VlkdError(f"cannot create the directory ({e.strerror})", self.directory) from None
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise VlkdError(f"cannot create the lock file {LOCK_FILE} ({e.strerror})", self.directory) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read(fd) or "unknown"
                os.close(fd)
                raise VlkdError(f"in use by another vlkd process ({holder}; lock file {LOCK_FILE}); wait for it "
                                "to finish or stop it, or choose another directory", self.directory) from None
            if _same_file(fd, self.path):
                break
            os.close(fd)  # the holder released (and removed) it between our open and flock: try again
        self.stale = _read(fd) or None
        try:  # the holder's name is for messages only: a full disk must not stop the run here
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        except OSError:
            pass
        self._fd, self._owner = fd, os.getpid()
        _HELD.add(fd)
        return self

    def release(self) -> None:
        if self._fd is None or os.getpid() != self._owner:  # not taken, or a forked child's copy
            return
        try:
            self.path.unlink()  # while still held: a waiting opener sees another file and retries
        except OSError:
            pass
        _HELD.discard(self._fd)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None
        if self._created:
            try:  # a command that stopped before writing anything leaves no directory behind
                self.directory.rmdir()
            except OSError:
                pass

    def __enter__(self) -> "DirLock":
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def _read(fd: int) -> str:
    try:
        return os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        return ""
