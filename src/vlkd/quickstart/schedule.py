"""The quickstart's stages as tasks with dependencies, run in order by one or several worker processes.

On 2 cores the two methods' stages are independent enough to keep both cores busy: the VideoQA stage, the
teacher, the text-only students (they need no teacher) and the distilled ones are scheduled as soon as what
they need is done, each worker running one task at a time on its share of the cores. Every task runs on the
same number of threads whatever it runs beside, so its numbers do not depend on the schedule (they do depend
on the thread count: reductions split differently). Each task resumes on its own (run directories, stores),
so a killed quickstart re-run skips what is finished."""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

import torch

from vlkd.quickstart.timing import cpu_seconds


@dataclass(frozen=True)
class Task:
    """One unit of work: `fn(*args)` (module-level, so a worker process can run it) once every task named in
    `after` has finished. `stage` is the row of the stage-times table it counts toward (default: its name)."""

    name: str
    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    after: tuple[str, ...] = ()
    stage: str = ""

    @property
    def row(self) -> str:
        return self.stage or self.name


def _timed(fn: Callable[..., Any], args: tuple[Any, ...]) -> tuple[Any, float, float]:
    """(fn's result, wall seconds, CPU seconds of this process and its finished children)."""
    start, cpu = time.perf_counter(), cpu_seconds()
    result = fn(*args)
    return result, time.perf_counter() - start, cpu_seconds() - cpu


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


def check_order(tasks: Sequence[Task]) -> None:
    """Every dependency names an earlier task (so the list order is a valid schedule and no cycle exists)."""
    seen: set[str] = set()
    for task in tasks:
        missing = [name for name in task.after if name not in seen]
        if missing or task.name in seen:
            raise ValueError(f"task {task.name!r}: {'duplicate name' if task.name in seen else f'needs {missing} first'}")
        seen.add(task.name)


def run_tasks(tasks: Sequence[Task], workers: int,
              done: Callable[[Task, Any, float, float], None]) -> dict[str, Any]:
    """Run `tasks` (listed in priority order, dependencies first) and return their results by name; `done`
    is called in this process as each one finishes, with its wall and CPU seconds. workers=1 runs them here
    one after the other on every core; more start that many processes with cores // workers threads each
    (spawned: nothing inherited from this process's torch state)."""
    check_order(tasks)
    results: dict[str, Any] = {}
    if workers == 1:
        for task in tasks:
            result, wall, cpu = _timed(task.fn, task.args)
            results[task.name] = result
            done(task, result, wall, cpu)
        return results
    threads = max(1, (os.cpu_count() or 1) // workers)
    pending = list(tasks)
    running: dict[Future, Task] = {}
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker,
                             initargs=(threads,)) as pool:
        try:
            while pending or running:
                # at most one task per worker in flight, so the next free worker takes the first ready task
                for task in [t for t in pending if all(name in results for name in t.after)]:
                    if len(running) >= workers:
                        break
                    running[pool.submit(_timed, task.fn, task.args)] = task
                    pending.remove(task)
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    task = running.pop(future)
                    result, wall, cpu = future.result()
                    results[task.name] = result
                    done(task, result, wall, cpu)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return results
