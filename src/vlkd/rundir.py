"""The run directory's layout, in one place: what `vlkd train` writes and every later command reads.

    RUN/config.yaml        the resolved config          RUN/metrics.jsonl   one JSON object per log/eval step
    RUN/checkpoints/step-N one resumable checkpoint     RUN/final/          the model at the last step
    RUN/best/              the best-evaluated model (with `select_best`), its selection.json
    RUN/results.json       the last evaluation (and the best one)
    RUN/eval_results.json  a fine-tuning run's dev metrics (official names)
    RUN/tensorboard/       event files (with `report_to: [tensorboard]`)
    RUN/report.md, RUN/curves.png                    `vlkd report`
    RUN/eval-SPLIT.json, RUN/grounding.json, RUN/retrieval.json, RUN/diagnostic.json   `vlkd evaluate ...`
    RUN/.vlkd.lock         while a process trains there (vlkd.lock)

A checkpoint step-N/ holds model.safetensors, optimizer.pt, scheduler.pt, rng-R.pt (process R's RNG
state) and trainer_state.json (the manifest, written last). Code names these paths through `RunDir`
and `CheckpointDir`, never as literals."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any, Callable

from vlkd.errors import VlkdError
from vlkd.io import read_yaml

CONFIG = "config.yaml"
METRICS = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
FINAL = "final"
BEST = "best"
SELECTION = "selection.json"
RESULTS = "results.json"
EVAL_RESULTS = "eval_results.json"
TENSORBOARD = "tensorboard"
STEP_PREFIX = "step-"
_STEP_DIR = re.compile(rf"^{STEP_PREFIX}(\d+)$")


class RunDir:
    """The paths of one run directory."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def config(self) -> Path:
        return self.root / CONFIG

    @property
    def metrics(self) -> Path:
        return self.root / METRICS

    @property
    def checkpoints(self) -> Path:
        return self.root / CHECKPOINTS

    @property
    def final(self) -> Path:
        return self.root / FINAL

    @property
    def best(self) -> Path:
        return self.root / BEST

    @property
    def selection(self) -> Path:
        """best/selection.json: which evaluation chose best/."""
        return self.best / SELECTION

    @property
    def results(self) -> Path:
        return self.root / RESULTS

    @property
    def eval_results(self) -> Path:
        return self.root / EVAL_RESULTS

    @property
    def tensorboard(self) -> Path:
        return self.root / TENSORBOARD

    @property
    def report(self) -> Path:
        return self.root / "report.md"

    @property
    def curves(self) -> Path:
        return self.root / "curves.png"

    def evaluation(self, split: str) -> Path:
        """`vlkd evaluate videoqa`'s output (without suffix) for a split."""
        return self.root / f"eval-{split}"

    @property
    def grounding(self) -> Path:
        """`vlkd evaluate grounding`'s output (without suffix)."""
        return self.root / "grounding"

    @property
    def retrieval(self) -> Path:
        """`vlkd evaluate retrieval`'s output (without suffix)."""
        return self.root / "retrieval"

    @property
    def diagnostic(self) -> Path:
        return self.root / "diagnostic.json"

    def checkpoint(self, step: int) -> Path:
        """checkpoints/step-N."""
        return self.checkpoints / f"{STEP_PREFIX}{step}"

    @property
    def stale_checkpoints(self) -> list[Path]:
        """The temp directories a writer killed mid-checkpoint left (io.atomic_path's `.NAME.tmp-*`)."""
        return sorted(self.checkpoints.glob(f".{STEP_PREFIX}*.tmp-*"))


def checkpoint_step(path: Path) -> int | None:
    """N for a checkpoints/step-N directory name, else None."""
    match = _STEP_DIR.match(path.name)
    return int(match.group(1)) if match else None


class CheckpointDir:
    """The files of one checkpoint directory (checkpoints/step-N, or its temp directory while written)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def model(self) -> Path:
        return self.root / "model.safetensors"

    @property
    def optimizer(self) -> Path:
        return self.root / "optimizer.pt"

    @property
    def scheduler(self) -> Path:
        return self.root / "scheduler.pt"

    @property
    def state(self) -> Path:
        """trainer_state.json: the trainer's counters and the manifest of every other file."""
        return self.root / "trainer_state.json"

    def rng(self, rank: int) -> Path:
        """Process `rank`'s RNG state."""
        return self.root / f"rng-{rank}.pt"


def load_run_config(run_dir: Path) -> dict[str, Any]:
    """The resolved config a run saved (for tools that inspect finished runs)."""
    path = RunDir(run_dir).config
    if not path.is_file():
        raise VlkdError("not a run directory (no config.yaml)", run_dir)
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise VlkdError("not a saved run config (a YAML mapping)", path)
    return data


def read_metrics(path: Path, say: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl (empty if there is none). A torn last line (a run killed during an
    append) is left out, and told to `say` when given; a malformed or non-UTF-8 line elsewhere is an error
    naming it."""
    if not path.is_file():
        return []
    lines = path.read_bytes().splitlines()
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line.decode("utf-8")))
        except UnicodeDecodeError as e:
            if number < len(lines):
                raise VlkdError(f"line {number} is not UTF-8 text (invalid byte at column {e.start + 1})",
                                path) from None
            torn(say, path, number)
        except json.JSONDecodeError:
            if number < len(lines):
                raise VlkdError(f"line {number} is not JSON", path) from None
            torn(say, path, number)
    return records


def torn(say: Callable[[str], None] | None, path: Path, number: int) -> None:
    if say is not None:
        say(f"left out the torn last line of {path} (line {number}, written when the run was killed)")


def model_dir(run_or_model: str | Path, *required: str, what: str = "model") -> Path:
    """A run's best/ (chosen on validation) if it has one, else its final/; or a model directory itself.
    The chosen directory must hold every `required` file."""
    path = Path(run_or_model)
    run = RunDir(path)
    for candidate in (run.best, run.final, path):
        if all((candidate / name).is_file() for name in required):
            return candidate
    raise VlkdError(f"no {what} here (expected best/ or final/ with {', '.join(required)})", path)


def model_note(given: str | Path, chosen: Path, key: str) -> str:
    """The line saying which model of a run directory is used ("" when `given` was the model itself)."""
    if chosen == Path(given):
        return ""
    why = "the model chosen on validation" if chosen.name == BEST else "the model at the last step"
    return f"vlkd: {key} {given} is a run directory: using {chosen} ({why})"


def resolve_model_dir(run_or_model: str | Path, *required: str, what: str = "model", key: str = "--model") -> Path:
    """`model_dir`; when given a run directory, says on stderr (one line) which of its models is used."""
    chosen = model_dir(run_or_model, *required, what=what)
    note = model_note(run_or_model, chosen, key)
    if note:
        print(note, file=sys.stderr)
    return chosen
