"""Kill a `vlkd` command anywhere and resume it, many times, cheaply: `python kill_anywhere.py` reads one
SPEC.json path per line on stdin, runs it, and answers `done` on stdout.

This process imports vlkd once and forks one child per attempt (a child costs no interpreter start-up and
has touched no thread pool before the fork). Each child runs `vlkd.cli.main(argv)` with hooks that kill it
at one point of the run, chosen as (kind, training step) so it lands however far the resumed run starts:

    step        SIGKILL inside training step S (while its micro-batches are fetched and run)
    checkpoint  SIGKILL while checkpoint S is written, after its j-th torch file (model already written)
    eval        SIGKILL inside the evaluation at step S, after it computed, before anything is logged
    metrics     a torn half line appended to metrics.jsonl at step S, then SIGKILL (a kill during an append)
    sigterm     SIGTERM inside step S: the run must save and exit with code 75

After every attempt every checkpoint on disk must verify (sizes and sha256) and load. SPEC (JSON):
{"argv": [... "{out}" ...], "root": DIR, "seed": N, "points": [[kind, S, j], ...]}. Writes DIR/report.json:
the outcome of each attempt and the number of checkpoints checked. DIR/straight is an uninterrupted run,
DIR/killed the interrupted one.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

import vlkd.recipes.distill  # noqa: F401  imported once here, not in every child
import vlkd.recipes.finetune  # noqa: F401
import vlkd.recipes.mlm  # noqa: F401
import vlkd.recipes.teacher  # noqa: F401
import vlkd.recipes.videoqa  # noqa: F401
from vlkd import cli
from vlkd.engine import checkpoint as ckpt_mod
from vlkd.engine import metrics as metrics_mod
from vlkd.engine import trainer as trainer_mod
from vlkd.engine.checkpoint import checkpoint_dirs, read_trainer_state


def install(kind: str, at_step: int, nth: int) -> None:
    """Patch the engine in this (child) process so it dies at (kind, at_step)."""
    current: dict[str, Any] = {}
    init = trainer_mod.Trainer.__init__

    def remember(self, *args, **kwargs):
        current["trainer"] = self
        init(self, *args, **kwargs)

    trainer_mod.Trainer.__init__ = remember

    def step() -> int:
        return current["trainer"].step if "trainer" in current else -1

    if kind in ("step", "sigterm"):
        to_device = trainer_mod.to_device

        def hooked(batch, device):
            t = current.get("trainer")
            if t is not None and t.module.training and t.step == at_step - 1:
                os.kill(os.getpid(), signal.SIGKILL if kind == "step" else signal.SIGTERM)
            return to_device(batch, device)

        trainer_mod.to_device = hooked
    elif kind == "checkpoint":
        save = ckpt_mod._torch_save
        written = []

        def hooked_save(obj, path):
            save(obj, path)
            if step() == at_step:
                written.append(path)
                if len(written) == nth:
                    os.kill(os.getpid(), signal.SIGKILL)

        ckpt_mod._torch_save = hooked_save
    elif kind == "eval":
        evaluate = trainer_mod.Trainer.evaluate

        def hooked_eval(self):
            result = evaluate(self)
            if self.step == at_step:
                os.kill(os.getpid(), signal.SIGKILL)
            return result

        trainer_mod.Trainer.evaluate = hooked_eval
    elif kind == "metrics":
        write = metrics_mod.MetricsLog.write

        def hooked_write(self, record):
            if self.enabled and record.get("step") == at_step:
                with open(self.path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(record)[: len(json.dumps(record)) // 2])
                os.kill(os.getpid(), signal.SIGKILL)
            write(self, record)

        metrics_mod.MetricsLog.write = hooked_write


def attempt(argv: list[str], point: list | None, log: Path) -> str:
    """Run one attempt in a forked child; 'killed', 'exit N'."""
    pid = os.fork()
    if pid == 0:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        code = 1
        try:
            if point is not None:
                install(*point)
            code = cli.main(argv)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return "killed" if os.WTERMSIG(status) == signal.SIGKILL else f"signal {os.WTERMSIG(status)}"
    return f"exit {os.WEXITSTATUS(status)}"


def check_checkpoints(run: Path) -> int:
    """Every checkpoint directory on disk verifies against its manifest and loads."""
    count = 0
    for _, path in checkpoint_dirs(run):
        state = read_trainer_state(path)
        load_file(str(path / "model.safetensors"))
        for name in state["files"]:
            if name.endswith(".pt"):
                torch.load(path / name, map_location="cpu", weights_only=False)
        count += 1
    return count


def run_spec(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    root = Path(spec["root"])

    def argv(out: Path, *extra: str) -> list[str]:
        return [a.replace("{out}", str(out)) for a in spec["argv"]] + list(extra)

    t0 = time.perf_counter()
    report: dict[str, Any] = {"straight": attempt(argv(root / "straight"), None, root / "straight.log"),
                              "attempts": [], "checkpoints_checked": 0, "seconds": [time.perf_counter() - t0]}
    killed = root / "killed"
    for i, point in enumerate([*spec["points"], None]):
        t0 = time.perf_counter()
        extra = ("resume=true",) if i else ()
        outcome = attempt(argv(killed, *extra), point, root / "killed.log")
        report["attempts"].append([point, outcome])
        report["checkpoints_checked"] += check_checkpoints(killed)
        report["seconds"].append(round(time.perf_counter() - t0, 2))
    (root / "report.json").write_text(json.dumps(report))


def main() -> None:
    for line in sys.stdin:
        if line.strip():
            run_spec(line.strip())
            print("done", flush=True)


if __name__ == "__main__":
    main()
