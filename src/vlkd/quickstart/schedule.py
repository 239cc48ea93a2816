"""The quickstart's stages as tasks with dependencies, run in order by one or several worker processes.

On 2 cores the two methods' stages are independent enough to keep both cores busy: the VideoQA stage, the
teacher, the text-only students (they need no teacher) and the distilled ones are scheduled as soon as what
they need is done, each worker running one task at a time on its share of the cores. Every task runs on the
same number of threads whatever it runs beside, so its numbers do not depend on the schedule (they do depend
on the thread count: reductions split differently). Each task resumes on its own (run directories, stores),
so a killed quickstart re-run skips what is finished.

Stopping: SIGTERM or SIGUSR1 to the quickstart (what a scheduler sends) starts no further task and asks every
worker to stop its task at the next resumable point (a training run checkpoints at its next step boundary),
then the quickstart stops with exit code 75; re-running it continues. A worker whose quickstart has gone
(killed with SIGKILL, say) stops its task the same way and exits, rather than running on unowned."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

import torch

from vlkd.errors import Preempted
from vlkd.preempt import StopSignals, ignore_stop_signals
from vlkd.quickstart.timing import cpu_seconds

NUDGE_SECONDS = 1.0  # how often a stopping worker repeats its stop signal (see _watch)


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


_busy = threading.Event()  # in a worker: set while it runs a task


def _timed(fn: Callable[..., Any], args: tuple[Any, ...]) -> tuple[Any, float, float]:
    """(fn's result, wall seconds, CPU seconds of this process and its finished children)."""
    _busy.set()
    try:
        start, cpu = time.perf_counter(), cpu_seconds()
        result = fn(*args)
        return result, time.perf_counter() - start, cpu_seconds() - cpu
    finally:
        _busy.clear()


def _watch(stop: Any, parent: int) -> None:
    """A worker's watcher thread: once the quickstart asks to stop (`stop` set) or is gone, send this process
    SIGTERM every NUDGE_SECONDS while it runs a task. A task's stages catch the signal only inside their
    resumable loops (training, extraction), elsewhere the worker ignores it, so it is repeated until one
    catches it and the task ends. An orphaned worker then exits."""
    while not stop.wait(NUDGE_SECONDS) and os.getppid() == parent:
        pass
    while True:
        if _busy.is_set():
            os.kill(os.getpid(), signal.SIGTERM)
        elif os.getppid() != parent:
            os._exit(1)
        time.sleep(NUDGE_SECONDS)


def _init_worker(threads: int, stop: Any) -> None:
    torch.set_num_threads(threads)
    ignore_stop_signals()  # outside a resumable loop a stop signal waits for the next one (_watch)
    threading.Thread(target=_watch, args=(stop, os.getppid()), daemon=True).start()


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
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    with StopSignals() as signals, ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                                                        initargs=(threads, stop)) as pool:
        try:
            while pending or running:
                if signals.requested and not stop.is_set():  # start nothing more; the workers stop their tasks
                    stop.set()
                    pending.clear()
                # at most one task per worker in flight, so the next free worker takes the first ready task
                for task in [t for t in pending if all(name in results for name in t.after)]:
                    if len(running) >= workers:
                        break
                    running[pool.submit(_timed, task.fn, task.args)] = task
                    pending.remove(task)
                finished, _ = wait(running, timeout=NUDGE_SECONDS, return_when=FIRST_COMPLETED)
                for future in finished:
                    task = running.pop(future)
                    try:
                        result, wall, cpu = future.result()
                    except Preempted:
                        if stop.is_set():
                            continue
                        raise
                    results[task.name] = result
                    done(task, result, wall, cpu)
        except BaseException:
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    if signals.requested:
        raise Preempted(f"{signals.requested}: every running task stopped at a resumable point and "
                        f"{len(tasks) - len(results)} of {len(tasks)} tasks are not finished; run the same command "
                        "again to continue")
    return results
