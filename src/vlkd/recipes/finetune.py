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
from typing import Any

import numpy as np
from accelerate import PartialState
from torch import nn
from transformers import PreTrainedTokenizerFast

from vlkd.config import TrainConfig, apply_overrides, bounded, from_dict, validate
from vlkd.data.tasks.encode import PadCollate, encode_choices, encode_pairs
from vlkd.data.tasks.glue import AX_FILE, AX_FULL_FILE, AX_PREDICTIONS, NLI3, read_ax
from vlkd.data.tasks.registry import get_task, has_split, read_split, split_source
from vlkd.data.tasks.spec import CHOICE, CLASSIFY, REGRESS, SPAN, TaskSpec
from vlkd.data.tasks.squad import Windows, best_answers, encode_windows
from vlkd.data.tasks.tracie import LEADERBOARD_LABELS, PREDICTIONS as TRACIE_PREDICTIONS
from vlkd.data.tokenizer import load_tokenizer
from vlkd.engine import Job, train
from vlkd.engine.checkpoint import drop_optimizer_state
from vlkd.errors import VlkdError
from vlkd.eval.diagnostic import load_mnli_classifier, score_diagnostic
from vlkd.eval.metrics import compute, squad_scores, squad_v2_scores, tracie_scores
from vlkd.eval.predict import predict
from vlkd.io import check_safetensors_dir, read_json, write_json_atomic, write_text_atomic
from vlkd.models.heads import TaskModel, load_pretrained, quiet_transformers
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
    """One split to predict: dev sets carry labels (metrics get `suffix`), test sets an output file."""

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
    diagnostic: str = ""  # MNLI: the labelled diagnostic file beside the task folder, scored at the end
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


def eval_set(spec: TaskSpec, tokenizer: PreTrainedTokenizerFast, data: FinetuneData, split: str, examples: list[Any],
             **kw: str) -> EvalSet:
    items, windows = encode(spec, examples, tokenizer, data, train=False)
    return EvalSet(split, examples, items, windows=windows, **kw)


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
    dev = [eval_set(spec, tokenizer, config.data, split, read_split(spec, data_dir, split), suffix=suffix)
           for split, suffix in spec.dev]
    present = [(split, output) for split, output in spec.test if has_split(spec, data_dir, split)]
    missing = [split_source(spec, data_dir, split) for split, output in spec.test if (split, output) not in present]
    test = [eval_set(spec, tokenizer, config.data, split, read_split(spec, data_dir, split), output=output)
            for split, output in present]
    ax = data_dir.parent / "diagnostic" / AX_FILE
    if spec.name == "mnli" and ax.is_file():  # the standard layout: glue_data/{MNLI,diagnostic}
        test.append(eval_set(spec, tokenizer, config.data, "ax", read_ax(ax), output=AX_PREDICTIONS))
    full = data_dir.parent / "diagnostic" / AX_FULL_FILE
    diagnostic = str(full) if spec.name == "mnli" and full.is_file() else ""
    if note:
        print(note, file=sys.stderr)
    return TaskData(spec, tokenizer, train_items, dev, test, split_source(spec, data_dir, spec.train), diagnostic,
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

def span_answers(spec: TaskSpec, data: FinetuneData, dev: EvalSet,
                 logits: np.ndarray) -> tuple[dict[str, str], dict[str, float]]:
    """SQuAD: the answer and the null odds of every question of a dev set."""
    return best_answers(dev.examples, dev.windows, logits, allow_null=spec.name == "squad2", n_best=data.n_best,
                        max_answer_length=data.max_answer_length)


def score(spec: TaskSpec, data: FinetuneData, dev: EvalSet, logits: np.ndarray) -> dict[str, float]:
    """Official metrics of one dev set, keys suffixed (MNLI mismatched: accuracy_mm)."""
    if spec.kind == SPAN:
        answers, odds = span_answers(spec, data, dev, logits)
        golds = {e.qid: e.answers for e in dev.examples}
        result = squad_scores(answers, golds) if spec.name == "squad1" else squad_v2_scores(answers, golds, odds)
    elif spec.name == "tracie":
        result = tracie_scores(logits.argmax(-1).tolist(), [e.label for e in dev.examples],
                               [e.text_b for e in dev.examples], [e.text_a for e in dev.examples])
    else:
        labels = [e.label for e in dev.examples]
        preds = logits[:, 0] if spec.kind == REGRESS else logits.argmax(-1)
        result = compute(spec.metrics, preds, labels)
    return {f"{k}{dev.suffix}": v for k, v in result.items()}


def prediction_text(spec: TaskSpec, test: EvalSet, logits: np.ndarray) -> str:
    """A test set's predictions in the leaderboard's format (label names; STS-B scores in [0, 5])."""
    if spec.kind == REGRESS:
        values = [f"{min(max(float(x), 0.0), 5.0):.3f}" for x in logits[:, 0]]
    elif spec.kind == CHOICE:
        values = [str(int(i)) for i in logits.argmax(-1)]
    else:
        labels = NLI3 if test.split == "ax" else LEADERBOARD_LABELS if spec.name == "tracie" else spec.labels
        values = [labels[int(i)] for i in logits.argmax(-1)]
    if spec.prediction_format == "lst" or spec.name == "tracie":
        return "".join(f"{v}\n" for v in values)
    return "index\tprediction\n" + "".join(f"{e.index}\t{v}\n" for e, v in zip(test.examples, values))


# -- the job ---------------------------------------------------------------------------------------

class Run:
    """One fine-tuning run: builds the engine's job, and remembers the final dev outputs."""

    def __init__(self, data: TaskData) -> None:
        self.data = data
        self.module: TaskModel | None = None
        self.dev_logits: dict[str, np.ndarray] = {}
        self.metrics: dict[str, float] = {}

    def build(self, config: Config) -> Job:
        spec, data = self.data.spec, self.data
        announce(config, data)
        self.module = TaskModel(load_pretrained(config.model, spec), spec.kind)
        collate = PadCollate(data.tokenizer.pad_token_id or 0)

        def evaluate(module: nn.Module, accelerator: Any) -> dict[str, float]:
            metrics: dict[str, float] = {}
            for dev in data.dev:
                logits = predict(accelerator.unwrap_model(module).logits, dev.items, collate, config.data.eval_batch_size)
                self.dev_logits[dev.split] = logits
                metrics.update(score(spec, config.data, dev, logits))
            return {f"valid_{k}": v for k, v in metrics.items()}

        def save_final(module: nn.Module, path: Path) -> None:
            with quiet_transformers():
                module.model.save_pretrained(path)
                data.tokenizer.save_pretrained(path)

        def finish(out: Path) -> None:
            self.metrics = self.outputs(config, out)
            if not config.keep_optimizer and PartialState().is_main_process:
                freed = drop_optimizer_state(out)
                if freed:
                    print(f"vlkd: dropped the finished run's optimizer state ({freed / 1e6:.1f} MB; "
                          "keep_optimizer=true keeps it)", file=sys.stderr)
            PartialState().wait_for_everyone()

        return Job(module=self.module, train_data=data.train, collate=collate, save_final=save_final,
                   evaluate=evaluate, finish=finish)

    def outputs(self, config: Config, out: Path) -> dict[str, float]:
        """eval_results.json and the prediction files, from the final model."""
        spec, data, state = self.data.spec, self.data, PartialState()
        collate = PadCollate(data.tokenizer.pad_token_id or 0)
        module = self.module
        if not self.dev_logits:  # the run was already complete: nothing trained or evaluated here
            module = TaskModel(load_pretrained(RunDir(out).final, spec), spec.kind).to(state.device).eval()
        module.eval()
        metrics: dict[str, float] = {}
        for dev in data.dev:
            logits = self.dev_logits.get(dev.split)
            if logits is None:
                logits = predict(module.logits, dev.items, collate, config.data.eval_batch_size)
            metrics.update(score(spec, config.data, dev, logits))
            if spec.kind == SPAN and state.is_main_process:
                answers, odds = span_answers(spec, config.data, dev, logits)
                write_json_atomic(out / "predictions.json", answers)
                if spec.name == "squad2":
                    write_json_atomic(out / "null_odds.json", odds)
            if spec.name == "tracie" and state.is_main_process:  # TRACIE's evaluation split is its test set
                write_text_atomic(out / TRACIE_PREDICTIONS, prediction_text(spec, dev, logits))
        if data.diagnostic:
            result = score_diagnostic(module.model, data.tokenizer, data.diagnostic,
                                      config.data.max_length or spec.max_length, config.data.eval_batch_size)
            if state.is_main_process:
                write_json_atomic(RunDir(out).diagnostic, result)
        for test in data.test:
            logits = predict(module.logits, test.items, collate, config.data.eval_batch_size)
            if state.is_main_process:
                write_text_atomic(out / test.output, prediction_text(spec, test, logits))
        if state.is_main_process:
            write_json_atomic(RunDir(out).eval_results, metrics)
        state.wait_for_everyone()
        return metrics


def build(config: Config) -> Job:
    """`vlkd train` with `task: finetune`: trains, evaluates and writes the outputs, as `vlkd finetune` does."""
    return Run(load_task_data(config)).build(config)


def finetune_once(config: Config, data: TaskData) -> dict[str, float]:
    run = Run(data)
    train(config, run.build)
    return run.metrics


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


def predict_ax(model: str, data_dir: str, out: str, data: FinetuneData | None = None, note: str = "") -> Path:
    """GLUE diagnostics: AX.tsv predicted by a fine-tuned MNLI model (no training)."""
    data = data or FinetuneData()
    path = Path(data_dir) / AX_FILE
    examples = read_ax(path)
    check_model_dir(model)
    classifier = load_mnli_classifier(model)
    if note:
        print(note, file=sys.stderr)
    tokenizer = load_tokenizer(data.tokenizer or model)
    state = PartialState()
    module = TaskModel(classifier, CLASSIFY).to(state.device).eval()
    spec = get_task("mnli")
    test = eval_set(spec, tokenizer, data, "ax", examples, output=AX_PREDICTIONS)
    logits = predict(module.logits, test.items, PadCollate(tokenizer.pad_token_id or 0), data.eval_batch_size)
    target = Path(out) / AX_PREDICTIONS
    if state.is_main_process:
        write_text_atomic(target, prediction_text(spec, test, logits))
    print(f"vlkd: {len(examples)} diagnostic predictions -> {target}", file=sys.stderr)
    full = Path(data_dir) / AX_FULL_FILE
    if full.is_file():  # the labelled release beside it: R3 by category as well
        result = score_diagnostic(classifier, tokenizer, full, data.max_length or spec.max_length, data.eval_batch_size)
        if state.is_main_process:
            write_json_atomic(RunDir(out).diagnostic, result)
        print(f"vlkd: R3 by category of {full} -> {RunDir(out).diagnostic}", file=sys.stderr)
    return target


def finetune_command(task: str, data_dir: str, model: str, out: str, overrides: list[str]) -> dict[str, Any]:
    """`vlkd finetune`: the config from the flags and key=value overrides; ax only predicts."""
    raw = apply_overrides({"task": "finetune", "model": model, "output_dir": out,
                           "data": {"task": task, "dir": data_dir}}, list(overrides))
    config = from_dict(Config, raw)
    validate(config)
    if config.task != "finetune":
        raise VlkdError(f"config key 'task' is the recipe (finetune); the downstream task is --task, got {config.task!r}")
    if task == "ax":
        note = resolve_model(config)
        predict_ax(config.model, config.data.dir, config.output_dir, config.data, note)
        return {}
    check(config)
    return run_finetune(config)
