"""The directory lock: one holder at a time (named in the error), taken over from a dead process, released
(and its file removed) on exit, not kept alive by a forked child."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vlkd.errors import VlkdError
from vlkd.lock import LOCK_FILE, DirLock


def test_a_second_holder_gets_one_line_naming_the_first(tmp_path: Path) -> None:
    with DirLock(tmp_path / "d"):
        assert (tmp_path / "d" / LOCK_FILE).read_text().startswith(f"pid {os.getpid()} on ")
        with pytest.raises(VlkdError, match=rf"^{tmp_path / 'd'}: in use by another vlkd process \(pid {os.getpid()}"):
            DirLock(tmp_path / "d").acquire()
    assert not (tmp_path / "d").exists()  # created by the lock, nothing else written: removed again


def test_a_lock_held_by_another_process_and_released_when_it_is_killed(tmp_path: Path) -> None:
    code = f"import sys, time; from vlkd.lock import DirLock; DirLock({str(tmp_path)!r}).acquire(); print('held', flush=True); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        assert proc.stdout.readline() == "held\n"
        with pytest.raises(VlkdError, match=rf"in use by another vlkd process \(pid {proc.pid} on "):
            DirLock(tmp_path).acquire()
    finally:
        proc.kill()
        proc.wait()
    with DirLock(tmp_path) as lock:  # the kernel released it with the process: taken over, and said so
        assert lock.stale is not None and lock.stale.startswith(f"pid {proc.pid} on ")


def test_a_forked_child_does_not_keep_the_lock(tmp_path: Path) -> None:
    lock = DirLock(tmp_path).acquire()
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # a DataLoader worker, say, still running when its parent dies
        lock.release()  # a no-op in the child: the parent's file stays
        os.write(ready_w, b"1")  # (the at-fork handler has run by now)
        time.sleep(30)
        os._exit(0)
    try:
        assert os.read(ready_r, 1) == b"1"
        os.close(lock._fd)  # the parent dies (its descriptor closes) while the child lives on
        with DirLock(tmp_path) as again:  # free: the child did not inherit the lock
            assert again.stale is not None
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def test_a_file_where_the_directory_should_be_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(VlkdError, match="f: exists and is not a directory"):
        DirLock(tmp_path / "f").acquire()
