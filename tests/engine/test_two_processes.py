"""Every recipe in two CPU processes (gloo), as `torchrun --nproc_per_node 2 -m vlkd ...` runs it; a kill and
resume under two processes that ends with the uninterrupted two-process run's weights, bit for bit; and
preparation and evaluation commands started in two processes that write their output once.

CI time: the two processes start once, for every job (tests/engine/two_processes.py goes through them in
turn, each in a forked child). The launch is torchrun's without torchrun: two processes with the variables it
sets; when a process of a job dies, the other is stopped, as torchrun's agent does.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.engine.test_kill_anywhere import SCHEDULE, recipe_argv, safetensors_under, tiny_bert
from vlkd.recipes import RECIPES
from vlkd.rundir import RunDir

REPO = Path(__file__).parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "finetune"
FEW = ["max_steps=4", "save_every=2", "eval_every=2"]  # after the kill schedule's keys: 4 steps, not 8
TRAINED = ["mlm", "teacher", "distill", "distill-cached", "videoqa", "finetune"]
ONE_WRITER = {"prepare-text": "store/meta.json", "targets": "targets/meta.json",
              "retrieval": "retrieval.json", "evaluate-videoqa": "videoqa-eval.json"}
KILLS = [[1, "step", 3, 1], [0, "checkpoint", 6, 2]]  # rank 1 inside step 3; rank 0 writing checkpoint 6


def free_ports(n: int) -> list[int]:
    """n ports free now (held together while chosen, so they differ)."""
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def launch(root: Path, jobs: list[dict[str, Any]], timeout: float = 400) -> list[int]:
    """Run `jobs` in two processes (one process group per job); if a driver fails, stop the other. Returns the
    two drivers' exit statuses."""
    spec = root / "spec.json"
    spec.write_text(json.dumps({"root": str(root), "jobs": jobs, "ports": free_ports(len(jobs))}))
    env = {**os.environ, "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen([sys.executable, "-m", "tests.engine.two_processes", str(spec)], cwd=REPO,
                              env={**env, "RANK": str(rank), "LOCAL_RANK": str(rank)}) for rank in range(2)]
    deadline = time.monotonic() + timeout
    while any(p.poll() is None for p in procs):
        if any(p.poll() not in (None, 0) for p in procs) or time.monotonic() > deadline:
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGKILL)
        time.sleep(0.05)
    return [p.wait() for p in procs]


@pytest.fixture(scope="session")
def two_processes(token_store: Path, wiki_txt: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One launch for every recipe, preparation and evaluation, and the kills and resumes: their folder."""
    root = tmp_path_factory.mktemp("two-processes")

    def train(recipe: str, out: str, *extra: str) -> list[str]:
        return [a.replace("{out}", str(root / out)) for a in recipe_argv(recipe, root, token_store)] + list(extra)

    teacher = train("teacher", "teacher", *FEW)
    howto100m = next(a.split("=", 1)[1] for a in teacher if a.startswith("data.path="))
    distill = train("distill", "distill", *FEW)
    teacher_run = next(a.split("=", 1)[1] for a in distill if a.startswith("teacher="))
    cached = [f"output_dir={root / 'distill-cached'}" if a.startswith("output_dir=") else a for a in distill]
    cached += [f"kd.targets={root / 'targets'}", "kd.teacher_input=unmasked",
               "kd.terms=[{loss: nst, student: tokens, teacher: tokens}, "
               "{loss: voken, student: vokens, teacher: vokens}]"]
    finetune = ["finetune", "--task", "mnli", "--data-dir", str(FIXTURES / "MNLI"), "--model", str(tiny_bert(root)),
                "--out", str(root / "finetune"), "batch_size=4", "data.eval_batch_size=4", *SCHEDULE, *FEW]
    jobs = [
        {"name": "prepare-text", "argv": ["prepare", "text", "--input", str(wiki_txt), "--out", str(root / "store")]},
        {"name": "mlm", "argv": train("mlm", "mlm")},  # the kill schedule's 8 steps: the uninterrupted run
        {"name": "teacher", "argv": teacher},
        {"name": "retrieval", "argv": ["evaluate", "retrieval", "--run", str(root / "teacher"), "--data", howto100m,
                                       "--out", str(root / "retrieval")]},
        {"name": "distill", "argv": distill},
        {"name": "targets", "argv": ["prepare", "teacher-targets", "--teacher", teacher_run, "--store",
                                     str(token_store), "--out", str(root / "targets"), "--form", "full", "--vokens"]},
        {"name": "distill-cached", "argv": cached},
        {"name": "videoqa", "argv": train("videoqa", "videoqa", *FEW)},
        {"name": "evaluate-videoqa", "argv": ["evaluate", "videoqa", "--run", str(root / "videoqa"), "--split", "val",
                                              "--out", str(root / "videoqa-eval")]},
        {"name": "finetune", "argv": finetune},
        {"name": "diagnostic", "argv": ["evaluate", "diagnostic", "--model", str(root / "finetune" / "final"),
                                        "--data", str(FIXTURES / "diagnostic" / "diagnostic-full.tsv"),
                                        "--out", str(root / "diagnostic")]},
        {"name": "killed-1", "argv": train("mlm", "killed"), "kill": KILLS[0]},
        {"name": "killed-2", "argv": [*train("mlm", "killed"), "resume=true"], "kill": KILLS[1]},
        {"name": "resumed", "argv": [*train("mlm", "killed"), "resume=true"]},
    ]
    statuses = launch(root, jobs)
    logs = sorted(root.glob("*.rank-*.log"), key=lambda path: path.stat().st_mtime)[-2:]
    assert statuses == [0, 0], {path.name: path.read_text()[-2000:] for path in logs}  # the last job's
    return root


def test_every_registered_recipe_has_a_two_process_job() -> None:
    assert set(RECIPES) <= set(TRAINED)


def result(root: Path, job: str, rank: int) -> tuple[int, str]:
    """A job's exit code and output in one process."""
    code = json.loads((root / f"{job}.rank-{rank}.json").read_text())["code"]
    return code, (root / f"{job}.rank-{rank}.log").read_text()


@pytest.mark.parametrize("job", TRAINED)
def test_every_recipe_trains_in_two_processes(two_processes: Path, job: str) -> None:
    root = two_processes
    (code0, log0), (code1, log1) = result(root, job, 0), result(root, job, 1)
    assert code0 == code1 == 0, (log0[-3000:], log1[-3000:])
    assert "2 process(es)" in log0
    run = RunDir(root / job)
    assert (run.final / "README.md").is_file() and run.results.is_file()
    checkpoint = sorted(run.checkpoints.glob("step-*"))[-1]
    assert sorted(p.name for p in checkpoint.glob("rng-*.pt")) == ["rng-0.pt", "rng-1.pt"]
    records = [json.loads(line) for line in run.metrics.read_text().splitlines()]
    train_steps = [r["step"] for r in records if "loss" in r]
    assert train_steps and train_steps == sorted(set(train_steps)), "one writer of metrics.jsonl"


@pytest.mark.parametrize("job", sorted(ONE_WRITER))
def test_a_command_that_does_not_share_its_work_runs_on_process_0_only(two_processes: Path,
                                                                       job: str) -> None:
    root = two_processes
    (code0, log0), (code1, log1) = result(root, job, 0), result(root, job, 1)
    assert code0 == 0, log0[-3000:]
    assert (root / ONE_WRITER[job]).is_file()
    assert code1 == 0 and "process 1 of 2:" in log1 and "runs on process 0 only" in log1, log1


def test_evaluate_diagnostic_shares_its_predictions_and_process_0_writes(two_processes: Path) -> None:
    root = two_processes
    (code0, log0), (code1, log1) = result(root, "diagnostic", 0), result(root, "diagnostic", 1)
    assert code0 == code1 == 0, (log0[-3000:], log1[-3000:])
    assert "process 0 only" not in log1
    scored = json.loads((root / "diagnostic.json").read_text())
    examples = len((FIXTURES / "diagnostic" / "diagnostic-full.tsv").read_text().strip().splitlines()) - 1
    assert scored["overall"]["count"] == examples  # each example once over the two processes' shares


def test_kill_and_resume_in_two_processes_ends_with_the_uninterrupted_weights(two_processes: Path) -> None:
    root = two_processes
    # rank 1 killed itself inside step 3, then rank 0 writing checkpoint 6; the other failed or was stopped
    assert result(root, "killed-1", 1)[0] == -signal.SIGKILL and result(root, "killed-1", 0)[0] != 0
    assert result(root, "killed-2", 0)[0] == -signal.SIGKILL and result(root, "killed-2", 1)[0] != 0
    assert "step-2 (step 2)" in result(root, "killed-2", 0)[1]  # what the kill inside step 3 left
    (code0, log), (code1, log1) = result(root, "resumed", 0), result(root, "resumed", 1)
    assert code0 == code1 == 0, (log[-3000:], log1[-3000:])
    assert "resumed from" in log and "step-4 (step 4)" in log, log[-3000:]
    straight, resumed = safetensors_under(root / "mlm" / "final"), safetensors_under(root / "killed" / "final")
    assert straight and straight.keys() == resumed.keys()
    for name, tensors in straight.items():
        assert tensors.keys() == resumed[name].keys()
        for key, value in tensors.items():
            assert torch.equal(value, resumed[name][key]), (name, key)
