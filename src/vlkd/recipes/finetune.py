"""Fine-tune any local BERT-style checkpoint on a downstream task and evaluate it (`vlkd finetune`).

GLUE (+ AX), SQuAD v1.1/v2.0, SWAG, PIQA, TRACIE and the bundled offline tasks, through the shared
engine. Metrics are computed on the dev set(s) by the engine's evaluation hook (every process scores
its shard; the shards are gathered, so each dev example counts once). The final model is the one
evaluated and used for the test predictions: nothing is ever chosen on a test set.

Outputs in the run directory, next to the engine's (config.yaml, metrics.jsonl, final/, ...):
`eval_results.json` (the official scripts' metric names), test predictions in the leaderboard's files
(skipped, with one line saying so, when the folder has no test file: many hold train and dev only), for
SQuAD `predictions.json` (dev question id -> answer) and for SQuAD v2.0 `null_odds.json` (the official
script's `--na-prob-file`), for TRACIE `tracie_predictions.txt` (the AllenAI evaluator's input), and for
MNLI with `../diagnostic/diagnostic-full.tsv` beside the task folder `diagnostic.json` (R3 by category).
Everything task-specific (reader, scorer, prediction files and their format, the sets predicted beside a
task) is read from its `TaskSpec` (vlkd.data.tasks): this module names no task. Dev-set prediction files are
written by each evaluation; eval_results.json, the test predictions and the diagnostics by the job's `finish`,
from the model in final/.
`seeds=1,2,3` runs one sub-run per seed (`OUT/seed-N`) and writes their mean and standard deviation.
A finished run drops its checkpoints' optimizer state (`keep_optimizer: true` keeps it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from accelerate import PartialState
from torch import nn
from transformers import PreTrainedTokenizerFast

from vlkd.config import TrainConfig, apply_overrides, bounded
from vlkd.data.tasks.encode import PadCollate, encode_choices, encode_pairs
from vlkd.data.tasks.registry import get_task, has_split, read_split, split_source
from vlkd.data.tasks.spec import CHOICE, LABELS, LST, REGRESS, SPAN, SQUAD, TRACIE_SCORER, TaskSpec
from vlkd.data.tasks.squad import Windows, best_answers, encode_windows
from vlkd.data.tokenizer import load_tokenizer
from vlkd.engine import Job, train
from vlkd.engine.checkpoint import drop_optimizer_state
from vlkd.errors import VlkdError
from vlkd.hub import quiet_transformers
from vlkd.eval.diagnostic import score_diagnostic
from vlkd.eval.metrics import compute, squad_scores, squad_v2_scores, tracie_scores
from vlkd.eval.predict import predict
from vlkd.io import check_safetensors_dir, read_json, write_json_atomic, write_text_atomic
from vlkd.models.heads import TaskModel, load_classifier, load_pretrained
from vlkd.recipes import config_from_dict
from vlkd.rundir import RunDir, model_dir, model_note


@dataclass
class FinetuneData:
    task: str = ""  # cola sst2 mrpc qqp stsb mnli qnli rte wnli squad1 squad2 swag piqa tracie rt-polarity wiki-topic
    dir: str = ""  # the task's folder in its official layout
    max_length: int = bounded(0, ge=0)  # tokens per input; 0: the task's default (126 as the reference; SQuAD 384)
    doc_stride: int = bounded(128, ge=1)  # SQuAD: overlap between windows of a long context
    max_answer_length: int = bounded(30, ge=1)  # SQuAD: longest answer in tokens
    n_best: int = bounded(20, ge=1)  # SQuAD: start/end candidates per window
    eval_batch_size: int = bounded(64, ge=1)  # per process
    tokenizer: str = ""  # default: the model directory


@dataclass
class Config(TrainConfig):
    """The reference's GLUE defaults (docs/commands.md): lr 1e-4, batch 32, warmup 10%, 3 epochs."""

    task: str = "finetune"
    model: str = ""  # a local from_pretrained directory (not a size preset)
    data: FinetuneData = field(default_factory=FinetuneData)
    epochs: float = bounded(3.0, ge=0)
    warmup: float = bounded(0.1, ge=0)
    log_every: int = bounded(20, ge=1)
    seeds: list[int] = bounded(default_factory=list, ge=0, lt=2**32)  # several: one run per seed, mean and std reported
    keep_optimizer: bool = False  # a finished run keeps its checkpoints' optimizer state (to train it further)


@dataclass
class EvalSet:
    """One split to predict: dev sets carry labels (metrics get `suffix`), test sets an output file. `spec` is
    the split's task (an MNLI run also predicts ax, with ax's spec)."""

    spec: TaskSpec
    split: str
    examples: list[Any]
    items: list[dict[str, Any]]
    suffix: str = ""
    output: str = ""
    windows: Windows | None = None


@dataclass
class TaskData:
    spec: TaskSpec
    tokenizer: PreTrainedTokenizerFast
    train: list[dict[str, Any]]
    dev: list[EvalSet]
    test: list[EvalSet]
    train_source: str = ""  # the training file (or saved split), for messages
    diagnostics: list[str] = field(default_factory=list)  # labelled diagnostic files (spec.diagnostic), scored at the end
    skipped_tests: list[str] = field(default_factory=list)  # test files not in the folder (dev-only run)
    announced: bool = False  # the one-line notices were printed (once, not once per seed)


# -- data ------------------------------------------------------------------------------------------

def encode(spec: TaskSpec, examples: list[Any], tokenizer: PreTrainedTokenizerFast, data: FinetuneData,
           train: bool) -> tuple[list[dict[str, Any]], Windows | None]:
    max_length = data.max_length or spec.max_length
    if spec.kind == SPAN:
        windows = encode_windows(examples, tokenizer, max_length, data.doc_stride, train=train)
        return windows.items, windows
    if spec.kind == CHOICE:
        return encode_choices(examples, tokenizer, max_length), None
    return encode_pairs(examples, tokenizer, max_length), None


def eval_set(spec: TaskSpec, tokenizer: PreTrainedTokenizerFast, data: FinetuneData, data_dir: Path, split: str,
             **kw: str) -> EvalSet:
    examples = read_split(spec, data_dir, split)
    items, windows = encode(spec, examples, tokenizer, data, train=False)
    return EvalSet(spec, split, examples, items, windows=windows, **kw)


def test_sets(spec: TaskSpec, tokenizer: PreTrainedTokenizerFast, data: FinetuneData,
              data_dir: Path) -> tuple[list[EvalSet], list[str]]:
    """The test splits the folder holds, and the sources of those it lacks."""
    present = [(split, output) for split, output in spec.test if has_split(spec, data_dir, split)]
    missing = [split_source(spec, data_dir, split) for split, output in spec.test if (split, output) not in present]
    return [eval_set(spec, tokenizer, data, data_dir, split, output=output) for split, output in present], missing


def check_model_dir(path: str) -> Path:
    if not path:
        raise VlkdError("--model is required: a local directory written by save_pretrained")
    if not (Path(path) / "config.json").is_file():
        raise VlkdError("model: not a directory with config.json (a save_pretrained output, or a run directory "
                        "with best/ or final/)", path)
    check_safetensors_dir(path)  # a truncated weights file: one line now, before any data is read
    return Path(path)


def resolve_model(config: Config) -> str:
    """A run directory given as the model becomes its best/ (or final/) model; returns the line that says so
    (printed once the inputs are checked, so a bad input is still one line), "" for a model directory."""
    if config.model and not (Path(config.model) / "config.json").is_file():
        with contextlib.suppress(VlkdError):  # not a run either: check_model_dir names the problem
            given, chosen = config.model, model_dir(config.model, "config.json")
            config.model = str(chosen)
            return model_note(given, chosen, "model")
    return ""


def check_vocab_fits(model: str, tokenizer: PreTrainedTokenizerFast, tokenizer_dir: str) -> None:
    """Every id the tokenizer can produce must have a row in the model's embeddings."""
    vocab_size = read_json(Path(model) / "config.json").get("vocab_size")
    if isinstance(vocab_size, int) and len(tokenizer) > vocab_size:
        raise VlkdError(f"mismatched vocab: the tokenizer has {len(tokenizer)} tokens but the model "
                        f"({model}) embeds only vocab_size {vocab_size}", tokenizer_dir)


def load_task_data(config: Config) -> TaskData:
    """Read and tokenize every split (train, dev, test) up front: bad input fails before any output. A run
    directory as the model is resolved to its best/ or final/ (config.model is updated, and saved so)."""
    note = resolve_model(config)
    spec = get_task(config.data.task)
    data_dir = Path(config.data.dir)
    if not data_dir.is_dir():
        raise VlkdError("data directory not found", data_dir)
    check_model_dir(config.model)
    tokenizer = load_tokenizer(config.data.tokenizer or config.model)
    check_vocab_fits(config.model, tokenizer, config.data.tokenizer or config.model)
    train_items, _ = encode(spec, read_split(spec, data_dir, spec.train), tokenizer, config.data, train=True)
    dev = [eval_set(spec, tokenizer, config.data, data_dir, split, suffix=suffix) for split, suffix in spec.dev]
    test, missing = test_sets(spec, tokenizer, config.data, data_dir)
    diagnostics = []
    for folder, name in spec.beside:  # predicted only when the folder holds it (no note when it does not)
        other, where = get_task(name), data_dir.parent / folder
        test += test_sets(other, tokenizer, config.data, where)[0]
        if other.diagnostic and (where / other.diagnostic).is_file():
            diagnostics.append(str(where / other.diagnostic))
    if note:
        print(note, file=sys.stderr)
    return TaskData(spec, tokenizer, train_items, dev, test, split_source(spec, data_dir, spec.train), diagnostics,
                    missing)


def announce(config: Config, data: TaskData) -> None:
    """Once per run (not per seed), on the main process, after the engine has started the processes: the
    skipped test files, and a training set smaller than a batch (config.batch_size lowered in place, before
    the engine reads it)."""
    fit_batch(config, data, say=not data.announced)
    if data.skipped_tests and not data.announced and PartialState().is_main_process:
        print(f"vlkd: no test file ({', '.join(data.skipped_tests)}): training and scoring dev only, test "
              "predictions skipped", file=sys.stderr)
    data.announced = True


def fit_batch(config: Config, data: TaskData, say: bool = True) -> None:
    """A training set smaller than one batch trains with the largest batch it fills (said in one line);
    one too small for a single example per process and accumulation step is an error naming the file."""
    n, unit = len(data.train), PartialState().num_processes * config.grad_accum
    if n >= config.batch_size:
        return
    what = "training windows" if data.spec.kind == SPAN else "training examples"
    smaller = n // unit * unit
    if smaller == 0:
        raise VlkdError(f"{n} {what}, fewer than one per process and accumulation step ({unit}): "
                        "too few to train on", data.train_source)
    if say and PartialState().is_main_process:
        print(f"vlkd: {data.train_source}: {n} {what}, fewer than batch_size {config.batch_size}: training with "
              f"batch_size {smaller}", file=sys.stderr)
    config.batch_size = smaller


def check(config: Config) -> None:
    """Config rules checked before any data is read: a known downstream task; SQuAD windows that advance."""
    spec = get_task(config.data.task)
    max_length = config.data.max_length or spec.max_length
    if spec.kind == SPAN and config.data.doc_stride >= max_length:
        raise VlkdError(f"config key 'data.doc_stride' ({config.data.doc_stride}) must be less than the window "
                        f"data.max_length ({max_length})")


def eval_metrics(config: Config) -> list[str]:
    """What `evaluate` logs, from the task spec: `valid_` + each official metric + each dev set's suffix."""
    spec = get_task(config.data.task)
    return [f"valid_{metric}{suffix}" for _, suffix in spec.dev for metric in spec.metrics]


# -- scoring ---------------------------------------------------------------------------------------

def span_answers(data: FinetuneData, dev: EvalSet, logits: np.ndarray) -> tuple[dict[str, str], dict[str, float]]:
    """SQuAD: the answer and the null odds of every question of a dev set."""
    return best_answers(dev.examples, dev.windows, logits, allow_null=dev.spec.allow_null, n_best=data.n_best,
                        max_answer_length=data.max_answer_length)


def predicted(spec: TaskSpec, logits: np.ndarray) -> np.ndarray:
    """Class (or choice) indices, or the scores of a regression."""
    return logits[:, 0] if spec.kind == REGRESS else logits.argmax(-1)


def label_scores(data: FinetuneData, dev: EvalSet, logits: np.ndarray) -> dict[str, float]:
    return compute(dev.spec.metrics, predicted(dev.spec, logits), [e.label for e in dev.examples])


def squad_official(data: FinetuneData, dev: EvalSet, logits: np.ndarray) -> dict[str, float]:
    """evaluate-v1.1.py's scores, or evaluate-v2.0.py's with the null odds when questions may have no answer."""
    answers, odds = span_answers(data, dev, logits)
    golds = {e.qid: e.answers for e in dev.examples}
    return squad_v2_scores(answers, golds, odds) if dev.spec.allow_null else squad_scores(answers, golds)


def tracie_official(data: FinetuneData, dev: EvalSet, logits: np.ndarray) -> dict[str, float]:
    return tracie_scores(logits.argmax(-1).tolist(), [e.label for e in dev.examples],
                         [e.text_b for e in dev.examples], [e.text_a for e in dev.examples])


SCORERS: dict[str, Callable[[FinetuneData, EvalSet, np.ndarray], dict[str, float]]] = {
    LABELS: label_scores, SQUAD: squad_official, TRACIE_SCORER: tracie_official}


def score(data: FinetuneData, dev: EvalSet, logits: np.ndarray) -> dict[str, float]:
    """Official metrics of one dev set, keys suffixed (MNLI mismatched: accuracy_mm)."""
    return {f"{k}{dev.suffix}": v for k, v in SCORERS[dev.spec.scorer](data, dev, logits).items()}


def prediction_text(test: EvalSet, logits: np.ndarray) -> str:
    """A set's predictions in the leaderboard's format (label names; STS-B scores in [0, 5])."""
    spec = test.spec
    if spec.kind == REGRESS:
        values = [f"{min(max(float(x), 0.0), 5.0):.3f}" for x in logits[:, 0]]
    elif spec.kind == CHOICE:
        values = [str(int(i)) for i in logits.argmax(-1)]
    else:
        labels = spec.leaderboard_labels or spec.labels
        values = [labels[int(i)] for i in logits.argmax(-1)]
    if spec.prediction_format == LST:
        return "".join(f"{v}\n" for v in values)
    return "index\tprediction\n" + "".join(f"{e.index}\t{v}\n" for e, v in zip(test.examples, values))


def write_dev_predictions(out: Path, data: FinetuneData, dev: EvalSet, logits: np.ndarray) -> None:
    """A dev set's prediction files: SQuAD's predictions.json (and null_odds.json, the v2.0 script's
    --na-prob-file), and `spec.dev_predictions` (TRACIE's evaluator input)."""
    if dev.spec.kind == SPAN:
        answers, odds = span_answers(data, dev, logits)
        write_json_atomic(out / "predictions.json", answers)
        if dev.spec.allow_null:
            write_json_atomic(out / "null_odds.json", odds)
    if dev.spec.dev_predictions:
        write_text_atomic(out / dev.spec.dev_predictions, prediction_text(dev, logits))


def write_tests_and_diagnostics(model: TaskModel, out: Path, config: Config, data: TaskData) -> None:
    """The test predictions (leaderboard files) and the labelled diagnostics' R3 (diagnostic.json)."""
    state, collate = PartialState(), PadCollate(data.tokenizer.pad_token_id or 0)
    for diagnostic in data.diagnostics:
        result = score_diagnostic(model.model, data.tokenizer, diagnostic,
                                  config.data.max_length or data.spec.max_length, config.data.eval_batch_size)
        if state.is_main_process:
            write_json_atomic(RunDir(out).diagnostic, result)
    for test in data.test:
        logits = predict(model.logits, test.items, collate, config.data.eval_batch_size)
        if state.is_main_process:
            write_text_atomic(out / test.output, prediction_text(test, logits))


# -- the job ---------------------------------------------------------------------------------------

def job(config: Config, data: TaskData) -> Job:
    """The engine's job: `evaluate` scores the dev sets (and writes their prediction files), `finish` writes
    eval_results.json (the final evaluation's metrics), the test predictions and diagnostics from final/."""
    spec, out = data.spec, Path(config.output_dir)
    announce(config, data)
    collate = PadCollate(data.tokenizer.pad_token_id or 0)

    def evaluate(module: nn.Module, accelerator: Any) -> dict[str, float]:
        metrics: dict[str, float] = {}
        for dev in data.dev:
            logits = predict(accelerator.unwrap_model(module).logits, dev.items, collate, config.data.eval_batch_size)
            metrics.update(score(config.data, dev, logits))
            if accelerator.is_main_process:
                write_dev_predictions(out, config.data, dev, logits)
        return {f"valid_{k}": v for k, v in metrics.items()}

    def save_final(module: nn.Module, path: Path) -> None:
        with quiet_transformers():
            module.model.save_pretrained(path)
            data.tokenizer.save_pretrained(path)

    def finish(run_dir: Path) -> None:
        state = PartialState()
        final = TaskModel(load_pretrained(RunDir(run_dir).final, spec), spec.kind).to(state.device).eval()
        write_tests_and_diagnostics(final, run_dir, config, data)
        if state.is_main_process:
            results = read_json(RunDir(run_dir).results)
            write_json_atomic(RunDir(run_dir).eval_results,
                              {k[len("valid_"):]: v for k, v in results.items() if k.startswith("valid_")})
            freed = 0 if config.keep_optimizer else drop_optimizer_state(run_dir)
            if freed:
                print(f"vlkd: dropped the finished run's optimizer state ({freed / 1e6:.1f} MB; "
                      "keep_optimizer=true keeps it)", file=sys.stderr)
        state.wait_for_everyone()

    return Job(module=TaskModel(load_pretrained(config.model, spec), spec.kind), train_data=data.train,
               collate=collate, save_final=save_final, evaluate=evaluate, finish=finish)


def build(config: Config) -> Job:
    """`vlkd train` with `task: finetune`: trains, evaluates and writes the outputs, as `vlkd finetune` does."""
    return job(config, load_task_data(config))


def finetune_once(config: Config, data: TaskData) -> dict[str, float]:
    out = train(config, lambda c: job(c, data))
    return read_json(RunDir(out).eval_results)


def run_finetune(config: Config) -> dict[str, Any]:
    """Fine-tune (once, or once per seed) and return the dev metrics (with mean/std over seeds)."""
    data = load_task_data(config)
    if not config.seeds:
        return finetune_once(config, data)
    out = Path(config.output_dir)
    per_seed = {}
    for seed in config.seeds:
        one = dataclasses.replace(config, seed=seed, seeds=[], output_dir=str(out / f"seed-{seed}"))
        per_seed[str(seed)] = finetune_once(one, data)
    summary: dict[str, Any] = {}
    for key in per_seed[str(config.seeds[0])]:
        values = [r[key] for r in per_seed.values()]
        summary[key] = statistics.fmean(values)
        summary[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
    summary["seeds"] = list(config.seeds)
    summary["per_seed"] = per_seed
    if PartialState().is_main_process:
        write_json_atomic(RunDir(out).eval_results, summary)
    return summary


def predict_only(config: Config) -> dict[str, Any]:
    """A task that is only predicted (`spec.predicted_by`: GLUE's ax by an MNLI model): its test files, and its
    labelled diagnostics' R3 when the folder holds them; no training."""
    spec, data, data_dir = get_task(config.data.task), config.data, Path(config.data.dir)
    note = resolve_model(config)
    for split, _ in spec.test:
        read_split(spec, data_dir, split)  # a missing or malformed file: one line before the model is loaded
    check_model_dir(config.model)
    classifier = load_classifier(config.model, get_task(spec.predicted_by))
    if note:
        print(note, file=sys.stderr)
    tokenizer = load_tokenizer(data.tokenizer or config.model)
    tests = [eval_set(spec, tokenizer, data, data_dir, split, output=output) for split, output in spec.test]
    full = data_dir / spec.diagnostic if spec.diagnostic else None
    task_data = TaskData(spec, tokenizer, [], [], tests, diagnostics=[str(full)] if full and full.is_file() else [])
    out = Path(config.output_dir)
    write_tests_and_diagnostics(TaskModel(classifier, spec.kind).to(PartialState().device).eval(), out, config,
                                task_data)
    for test in tests:
        print(f"vlkd: {len(test.examples)} {spec.name} predictions -> {out / test.output}", file=sys.stderr)
    if task_data.diagnostics:
        print(f"vlkd: R3 by category of {full} -> {RunDir(out).diagnostic}", file=sys.stderr)
    return {}


def finetune_command(task: str, data_dir: str, model: str, out: str, overrides: list[str]) -> dict[str, Any]:
    """`vlkd finetune`: the config from the flags and key=value overrides, checked as `vlkd train` checks it;
    a task that is only predicted (ax) is predicted."""
    raw = apply_overrides({"task": "finetune", "model": model, "output_dir": out,
                           "data": {"task": task, "dir": data_dir}}, list(overrides))
    if raw.get("task") != "finetune":
        raise VlkdError(f"config key 'task' is the recipe (finetune); the downstream task is --task, "
                        f"got {raw.get('task')!r}")
    config = config_from_dict(raw, "vlkd finetune")
    return predict_only(config) if get_task(config.data.task).predicted_by else run_finetune(config)
