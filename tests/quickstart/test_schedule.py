"""The quickstart's task schedule: dependencies first, results by name, times reported, failures raised."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch

from vlkd.quickstart.schedule import Task, check_order, run_tasks


def write(path: Path, text: str) -> int:
    time.sleep(0.2)  # long enough for the other worker to pick up a task meanwhile
    path.write_text(text)
    return torch.get_num_threads()


def append(path: Path, source: Path, text: str) -> str:
    path.write_text(source.read_text() + text)  # fails if `source` is not written yet
    return path.read_text()


def fail(message: str) -> None:
    raise ValueError(message)


def chain(tmp_path: Path) -> list[Task]:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    return [Task("a", write, (a, "A")), Task("b", append, (b, a, "B"), after=("a",), stage="ab"),
            Task("c", write, (c, "C")), Task("d", append, (tmp_path / "d", b, "D"), after=("b", "c"))]


@pytest.mark.parametrize("workers", [1, 2])
def test_tasks_run_after_what_they_need_and_report_their_times(tmp_path: Path, workers: int) -> None:
    seen: list[tuple[str, str, float, float]] = []
    results = run_tasks(chain(tmp_path), workers, lambda t, r, wall, cpu: seen.append((t.name, t.row, wall, cpu)))
    assert results["b"] == "AB" and results["d"] == "ABD"
    order = [name for name, *_ in seen]
    assert sorted(order) == ["a", "b", "c", "d"] and order.index("a") < order.index("b") < order.index("d")
    assert dict((n, row) for n, row, *_ in seen) == {"a": "a", "b": "ab", "c": "c", "d": "d"}
    assert all(wall >= 0 and cpu >= 0 for *_, wall, cpu in seen)
    assert next(wall for n, _, wall, _ in seen if n == "a") >= 0.2
    if workers == 2:  # each worker on its share of the cores
        assert results["a"] == results["c"] == max(1, (os.cpu_count() or 1) // 2)


def test_a_failing_task_raises_its_error(tmp_path: Path) -> None:
    tasks = [Task("a", write, (tmp_path / "a", "A")), Task("boom", fail, ("no such thing",), after=("a",))]
    with pytest.raises(ValueError, match="no such thing"):
        run_tasks(tasks, 2, lambda *_: None)


def test_a_dependency_must_come_first() -> None:
    with pytest.raises(ValueError, match="needs"):
        check_order([Task("b", fail, after=("a",)), Task("a", fail)])
    with pytest.raises(ValueError, match="duplicate"):
        check_order([Task("a", fail), Task("a", fail)])


def wait_for(path: Path, seconds: float = 60) -> str:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)
    return path.read_text()


def gone(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status  # exited, not yet reaped by whoever adopted it


def loop_until_stopped(pid_file: Path) -> None:
    """A task that, like a training run, stops only at a resumable point once a stop signal arrives."""
    from vlkd.errors import Preempted
    from vlkd.preempt import StopSignals

    time.sleep(0.5)  # outside any resumable loop first: a signal now is ignored, and must be repeated
    with StopSignals() as stop:
        pid_file.write_text(str(os.getpid()))
        while not stop.requested:
            time.sleep(0.05)
    raise Preempted(f"{stop.requested} in {pid_file.name}")


def test_a_stop_signal_stops_the_running_tasks_and_starts_no_more(tmp_path: Path) -> None:
    import signal
    import threading

    from vlkd.errors import Preempted

    pids = [tmp_path / "one.pid", tmp_path / "two.pid"]
    tasks = [Task("one", loop_until_stopped, (pids[0],)), Task("two", loop_until_stopped, (pids[1],)),
             Task("later", write, (tmp_path / "later", "L"), after=("one",))]

    def stop_once_both_run() -> None:
        for pid in pids:
            wait_for(pid)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=stop_once_both_run, daemon=True).start()
    with pytest.raises(Preempted, match="SIGTERM: every running task stopped.*3 of 3 tasks are not finished"):
        run_tasks(tasks, 2, lambda *_: None)
    assert not (tmp_path / "later").exists()
    assert all(gone(int(pid.read_text())) for pid in pids)


ORPHAN_SCRIPT = """
import sys, time
from pathlib import Path
from vlkd.quickstart.schedule import Task, run_tasks

def loop(pid_file):
    import os
    pid_file.write_text(str(os.getpid()))
    from vlkd.preempt import StopSignals
    with StopSignals() as stop:
        while not stop.requested:
            time.sleep(0.05)
    Path(str(pid_file) + ".stopped").write_text(stop.requested)

if __name__ == "__main__":
    run_tasks([Task("loop", loop, (Path(sys.argv[1]),))], 2, lambda *_: None)
"""


def test_a_worker_whose_quickstart_was_killed_stops_its_task_and_exits(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    script = tmp_path / "orphan.py"
    script.write_text(ORPHAN_SCRIPT)
    pid_file = tmp_path / "worker.pid"
    parent = subprocess.Popen([sys.executable, str(script), str(pid_file)])
    try:
        worker = int(wait_for(pid_file, 120))
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        assert wait_for(Path(f"{pid_file}.stopped"), 30) == "SIGTERM"  # stopped at its resumable point
        deadline = time.monotonic() + 30
        while not gone(worker):
            assert time.monotonic() < deadline, "the orphaned worker kept running"
            time.sleep(0.1)
    finally:
        parent.kill()
