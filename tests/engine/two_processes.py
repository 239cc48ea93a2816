"""Run many vlkd commands in one two-process launch: each of the two processes runs `python two_processes.py
SPEC.json` with the variables torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR), imports vlkd once,
and goes through the SPEC's jobs in order (tests/engine/test_two_processes.py launches it).

Each job is `vlkd.cli.main(argv)` in a child forked for it (no interpreter start; the child has touched no
thread pool before the fork), so each job has its own process group on its own MASTER_PORT, as a launch of
its own would, and a job may kill a process. SPEC (JSON): {"root": DIR, "ports": [one per job], "jobs":
[{"name": N, "argv": [...], "kill": [rank, kind, step, nth]}, ...]}. Job N's output goes to DIR/N.rank-R.log,
its exit code (negative: killed by that signal) and CPU seconds to DIR/N.rank-R.json. With `kill`, process
`rank` kills itself at that point of the run (kinds of tests/engine/kill_anywhere.py), as a lost machine
would; the other process's child is then stopped, as torchrun's agent stops a group whose member failed. A
job starts once both processes have finished the one before (a later job may read what process 0 alone wrote).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

from tests.engine.kill_anywhere import install
from vlkd import cli


def result_path(root: Path, name: str, rank: int) -> Path:
    return root / f"{name}.rank-{rank}.json"


def run_child(job: dict, root: Path, rank: int, port: int) -> int:
    """Fork a child that runs the job; return its pid."""
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        os.environ["MASTER_PORT"] = str(port)
        log = os.open(root / f"{job['name']}.rank-{rank}.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(log, 1)
        os.dup2(log, 2)
        if job.get("kill") and job["kill"][0] == rank:
            install(*job["kill"][1:])
        code = cli.main(job["argv"])
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def failed_elsewhere(name: str, root: Path, rank: int, processes: int) -> bool:
    for other in range(processes):
        path = result_path(root, name, other)
        if other != rank and path.is_file() and json.loads(path.read_text())["code"] != 0:
            return True
    return False


def run_job(job: dict, root: Path, rank: int, processes: int, port: int) -> None:
    """Run the job, stop it if another process's failed, record its exit code, then wait for the others'."""
    pid = run_child(job, root, rank, port)
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            break
        if failed_elsewhere(job["name"], root, rank, processes):
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)
    code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    path = result_path(root, job["name"], rank)
    cpu = round(usage.ru_utime + usage.ru_stime, 2)
    path.with_suffix(".tmp").write_text(json.dumps({"code": code, "cpu_s": cpu}))
    path.with_suffix(".tmp").rename(path)  # whole, for the other processes
    while not all(result_path(root, job["name"], r).is_file() for r in range(processes)):
        time.sleep(0.02)


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    rank, processes = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    for job, port in zip(spec["jobs"], spec["ports"], strict=True):
        run_job(job, Path(spec["root"]), rank, processes, port)


if __name__ == "__main__":
    main(sys.argv[1])
