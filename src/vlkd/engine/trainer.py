"""The one training loop (docs/architecture.md): every recipe hands it a `Job` and gets a run directory.

Accelerate runs the same loop on CPU, one GPU, or `accelerate launch` over N GPUs/nodes; autocast on
GPU (bf16, or fp16 with a grad scaler); gradient accumulation; clipping; AdamW without decay on biases
and norms; warmup + decay schedule; atomic checkpoints with exact resume; metrics.jsonl; progress bar;
validation on a held-out set. Fault tolerance (docs/run-directory.md): one process per run directory (a
lock), SIGTERM/SIGUSR1 -> a checkpoint at the next step boundary and exit code 75, corrupt checkpoints
skipped on resume in favour of the newest intact one, and `on_nonfinite: stop|skip`.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import broadcast_object_list, gather_object, set_seed
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import get_scheduler

from vlkd.config import TrainConfig, dump_yaml, to_dict
from vlkd.engine.batches import Collate, ShardedBatches
from vlkd.engine.checkpoint import (
    checkpoint_dirs,
    list_checkpoints,
    load_checkpoint,
    prune_checkpoints,
    read_trainer_state,
    rng_state,
    save_checkpoint,
)
from vlkd.engine.grad_share import LossTermsFn, shares, term_gradient_norms
from vlkd.engine.metrics import MetricsLog
from vlkd.engine.precision import resolve_precision
from vlkd.heap import keep_heap
from vlkd.inference import to_device
from vlkd.errors import Preempted, VlkdError
from vlkd.card import write_model_cards
from vlkd.io import atomic_path, read_json, remove_path, write_json_atomic, write_text_atomic
from vlkd.lock import DirLock
from vlkd.preempt import StopSignals, ignore_stop_signals
from vlkd.rundir import SELECTION, RunDir, load_run_config


@dataclass
class Job:
    """What a recipe hands the engine.

    `module(batch)` returns a dict of scalar losses; key `loss` is the one optimised, the others are
    logged. `collate(items, generator)` builds a batch, drawing any randomness from `generator`.
    Evaluation defaults to the mean of each loss over `valid_data` (logged as `valid_<name>`); a recipe
    that scores predictions (accuracy, F1, retrieval) passes `evaluate(module, accelerator) -> metrics`
    instead, called in eval mode under no_grad on every process; it returns the metrics to log.

    `frozen` names submodules of `module` that are not trained (a distillation teacher): the engine keeps
    them in eval mode without gradients, and leaves them out of the optimizer and of every checkpoint.
    `finish(run_dir)`, called on every process once the run is complete (also when a finished run is
    resumed), writes a recipe's own outputs (fine-tuning's eval_results.json and prediction files).
    `loss_terms(outputs)` maps the module's outputs to the weighted terms that sum to `loss` (the base
    loss included): with it, every evaluation logs each term's `grad_share_<term>` on the parameters of
    `student(module)` (default: every trained parameter); engine/grad_share.py.
    """

    module: nn.Module
    train_data: Sequence[Any]
    collate: Collate
    save_final: Callable[[nn.Module, Path], None]
    valid_data: Sequence[Any] | None = None
    count_tokens: Callable[[dict[str, torch.Tensor]], int] | None = None
    eval_summary: Callable[[dict[str, float]], dict[str, float]] = field(default=lambda m: m)
    evaluate: Callable[[nn.Module, Accelerator], dict[str, float]] | None = None
    frozen: Sequence[nn.Module] = ()
    finish: Callable[[Path], None] | None = None
    loss_terms: LossTermsFn | None = None
    student: Callable[[nn.Module], nn.Module] | None = None


def make_accelerator(config: TrainConfig) -> tuple[Accelerator, str]:
    """The accelerator for the config's precision (engine/precision.py resolves auto), and why that one."""
    precision, why = resolve_precision(config.precision)
    mixed = "no" if precision == "fp32" else precision
    if AcceleratorState._shared_state.get("_mixed_precision", mixed) != mixed:
        AcceleratorState._reset_state()  # accelerate fixes one precision per process; a new run may pick another
    # cpu=True on a machine without a GPU lets torchrun/accelerate launch run N CPU processes (gloo)
    accelerator = Accelerator(mixed_precision=mixed, cpu=not torch.cuda.is_available())
    return accelerator, why


def _param_groups(module: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """No weight decay on biases and normalisation weights (every parameter with fewer than 2 dims)."""
    decay, no_decay = [], []
    for param in module.parameters():
        if param.requires_grad:
            (decay if param.ndim >= 2 else no_decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _make_optimizer(module: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    groups = _param_groups(module, config.weight_decay)
    betas = tuple(config.adam_betas)
    try:  # the fused kernel (CPU and CUDA) is several times faster than the per-tensor loop
        return torch.optim.AdamW(groups, lr=config.lr, betas=betas, eps=config.adam_eps, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(groups, lr=config.lr, betas=betas, eps=config.adam_eps)


def _default_count_tokens(batch: dict[str, torch.Tensor]) -> int:
    ids = batch.get("input_ids")
    return int(ids.numel()) if isinstance(ids, torch.Tensor) else 0


def _check_run_dir(out: Path, resume: bool) -> None:
    """A directory holds a run once it has a checkpoint (complete or not) or final/. What a run stopped
    before its first checkpoint leaves (config.yaml, metrics.jsonl) does not count: a new run replaces it."""
    if resume:
        return
    if checkpoint_dirs(out) or RunDir(out).final.exists():
        raise VlkdError("output_dir already holds a run: pass resume=true to continue it, or choose another "
                        "output_dir", out)


class Trainer:
    def __init__(self, config: TrainConfig, build_job: Callable[[TrainConfig], Job]) -> None:
        self.config = config
        self.out = Path(config.output_dir)
        self.run = RunDir(self.out)
        _check_run_dir(self.out, config.resume)
        self.accelerator, self.precision_reason = make_accelerator(config)
        set_seed(config.seed)
        self.job = build_job(config)
        for frozen in self.job.frozen:
            frozen.requires_grad_(False)
        if config.compile:  # in place: parameter names, checkpoints and state dicts stay as they are
            self.job.module.compile()
        acc = self.accelerator

        procs = acc.num_processes
        if config.batch_size % (procs * config.grad_accum):
            raise VlkdError(f"batch_size {config.batch_size} is not divisible by processes ({procs}) x "
                            f"grad_accum ({config.grad_accum})")
        self.micro_batch = config.batch_size // (procs * config.grad_accum)
        self.batches = ShardedBatches(self.job.train_data, self.job.collate, self.micro_batch,
                                      num_processes=procs, rank=acc.process_index, seed=config.seed)
        if len(self.batches) < config.grad_accum:
            raise VlkdError(f"training set has {len(self.job.train_data)} samples, fewer than one batch "
                            f"({config.batch_size})")
        self.steps_per_epoch = len(self.batches) / config.grad_accum
        self.max_steps = config.max_steps or math.ceil(config.epochs * self.steps_per_epoch)
        warmup = int(config.warmup) if config.warmup >= 1 else round(config.warmup * self.max_steps)

        self.eval_every = (max(1, round(config.eval_every_epochs * self.steps_per_epoch))
                           if config.eval_every_epochs > 0 else config.eval_every)
        optimizer = _make_optimizer(self.job.module, config)
        self.scheduler = self._make_scheduler(optimizer, warmup)
        # The scheduler is stepped by us, once per optimizer step: accelerate's wrapper would step it
        # once per process. The DataLoader is ours too: ShardedBatches already shards and resumes.
        self.module, self.optimizer = acc.prepare(self.job.module, optimizer)
        self.metrics = MetricsLog(self.run.metrics, enabled=acc.is_main_process, report_to=config.report_to)
        self.step = 0
        self.micro_step = 0
        self.saved_step = -1  # the step of the newest checkpoint on disk
        self.nonfinite_in_row = 0
        self.stop = StopSignals()

    def _make_scheduler(self, optimizer: torch.optim.Optimizer, warmup: int) -> Any:
        config = self.config
        if config.schedule == "step":
            # Step decay (the VideoQA reference halves the lr every 10 epochs), after a linear warmup.
            every = max(1, round(config.decay_every_epochs * self.steps_per_epoch))
            factor = config.decay_factor

            def step_decay(step: int) -> float:
                return min(1.0, (step + 1) / warmup if warmup else 1.0) * factor ** (step // every)

            return torch.optim.lr_scheduler.LambdaLR(optimizer, step_decay)
        try:
            return get_scheduler(config.schedule, optimizer, num_warmup_steps=warmup,
                                 num_training_steps=self.max_steps)
        except ValueError as e:
            raise VlkdError(f"config key 'schedule': {e} (or step)") from None

    # -- checkpoints -------------------------------------------------------------------------------
    def _resume(self) -> None:
        acc = self.accelerator
        choice: list[Any] = [self._newest_intact() if acc.is_main_process else None]
        if acc.num_processes > 1:
            broadcast_object_list(choice)
        if choice[0] is None:
            self._say("resume: no checkpoint found, starting from step 0")
            return
        path, state = Path(choice[0][0]), choice[0][1]
        state = load_checkpoint(path, module=acc.unwrap_model(self.module), frozen=self.job.frozen,
                                optimizer=self.optimizer, scheduler=self.scheduler, rank=acc.process_index,
                                state=state)
        self.step, self.micro_step = state["step"], state["micro_step"]
        if not state.get("optimizer_state", True) and self.step < self.max_steps:
            raise VlkdError(f"the run finished without keeping its optimizer state, so it cannot continue to "
                            f"{self.max_steps} steps; start a new run from {self.run.final} (or keep_optimizer: "
                            "true next time)", path)
        self.saved_step = self.step
        self.nonfinite_in_row = state.get("nonfinite_in_row", 0)
        self.metrics.trim_after(self.step, say=self._say)
        self._say(f"resumed from {path} (step {self.step})")

    def _newest_intact(self) -> tuple[str, dict[str, Any]] | None:
        """The newest checkpoint whose manifest checks out (sizes and sha256). Newer unusable ones are
        named and moved aside to `step-N.corrupt`; if none is intact the run stops, naming them."""
        bad: list[Path] = []
        for _, path in reversed(checkpoint_dirs(self.out)):
            try:
                state = read_trainer_state(path)
            except VlkdError as e:
                self._say(f"checkpoint {path.name} is unusable: {e}")
                bad.append(path)
                continue
            for corrupt in bad:
                aside = corrupt.with_name(corrupt.name + ".corrupt")
                remove_path(aside)
                corrupt.rename(aside)
                self._say(f"moved {corrupt.name} aside to {aside}")
            if bad:
                self._say(f"falling back to {path.name}, the newest intact checkpoint")
            return str(path), state
        if bad:
            raise VlkdError(f"no intact checkpoint to resume from ({', '.join(p.name for p in bad)} unusable, "
                            "reasons above); remove them to start again from step 0", self.run.checkpoints)
        return None

    def _save(self) -> None:
        acc = self.accelerator
        rngs = gather_object([rng_state()])
        if acc.is_main_process:
            save_checkpoint(self.run.checkpoint(self.step), module=acc.unwrap_model(self.module),
                            frozen=self.job.frozen, optimizer=self.optimizer, scheduler=self.scheduler,
                            trainer_state={"step": self.step, "micro_step": self.micro_step,
                                           "max_steps": self.max_steps, "nonfinite_in_row": self.nonfinite_in_row},
                            rngs=rngs)
            prune_checkpoints(self.out, self.config.keep_checkpoints)
        self.saved_step = self.step
        acc.wait_for_everyone()

    # -- evaluation --------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """The recipe's own evaluation, or the mean of each named loss over a fixed held-out slice."""
        if self.job.evaluate is not None:
            self.module.eval()
            try:
                return self.job.evaluate(self.module, self.accelerator)
            finally:
                self._train_mode()
        if self.job.valid_data is None:
            return {}
        acc = self.accelerator
        valid = ShardedBatches(self.job.valid_data, self.job.collate, self.micro_batch,
                               num_processes=acc.num_processes, rank=acc.process_index,
                               seed=self.config.seed + 1, shuffle=False)
        n = min(self.config.eval_batches, len(valid))
        if n == 0:
            raise VlkdError(f"validation set has {len(self.job.valid_data)} samples, fewer than one "
                            f"micro-batch per process ({self.micro_batch})")
        self.module.eval()
        sums: dict[str, torch.Tensor] = {}
        for m in range(n):
            batch = to_device(valid[m], acc.device)
            for key, value in self.module(batch).items():
                sums[key] = sums.get(key, 0) + value.detach().float() / n
        self._train_mode()
        keys = sorted(sums)
        means = acc.reduce(torch.stack([sums[k] for k in keys]), reduction="mean").tolist()
        result = {f"valid_{k}": v for k, v in zip(keys, means)}
        return self.job.eval_summary(result)

    def _log_eval(self) -> dict[str, float]:
        result = self.evaluate()
        if result:
            self.metrics.write({"step": self.step, **result, **self._grad_shares()})
            self._say(f"step {self.step}: " + ", ".join(f"{k}={v:.4g}" for k, v in result.items()))
            self._keep_if_best(result)
        return result

    def _grad_shares(self) -> dict[str, float]:
        """Each term's `grad_share_<term>` on the first micro-batch of the held-out slice (of the training
        data without one), in eval mode, averaged over the processes; {} when the Job has no loss_terms."""
        if self.job.loss_terms is None:
            return {}
        acc = self.accelerator
        data = self.job.valid_data if self.job.valid_data is not None else self.job.train_data
        batches = ShardedBatches(data, self.job.collate, self.micro_batch, num_processes=acc.num_processes,
                                 rank=acc.process_index, seed=self.config.seed + 1, shuffle=False)
        if len(batches) == 0:
            return {}
        module = acc.unwrap_model(self.module)
        params = (self.job.student(module) if self.job.student is not None else module).parameters()
        self.module.eval()
        try:
            norms = term_gradient_norms(module, to_device(batches[0], acc.device), self.job.loss_terms, params,
                                        acc.autocast())
        finally:
            self._train_mode()
        names = list(norms)
        means = acc.reduce(torch.tensor([norms[n] for n in names], device=acc.device), reduction="mean").tolist()
        return shares(dict(zip(names, means)))

    def _best(self) -> dict[str, Any] | None:
        path = self.run.selection
        return read_json(path) if path.is_file() else None

    def _keep_if_best(self, result: dict[str, float]) -> None:
        """With `select_best`, write the model to best/ when this evaluation beats every earlier one."""
        name = self.config.select_best
        if not name:
            return
        if name not in result:
            raise VlkdError(f"config key 'select_best': the evaluation has no metric {name!r} "
                            f"(it has {', '.join(sorted(result))})")
        best = self._best()
        if self.accelerator.is_main_process and (best is None or result[name] > best["value"]):
            with atomic_path(self.run.best) as tmp:
                self.job.save_final(self.accelerator.unwrap_model(self.module), tmp)
                write_json_atomic(tmp / SELECTION, {"metric": name, "value": result[name], "step": self.step})
            self._say(f"best {name} so far: {result[name]:.4g} at step {self.step} -> {self.run.best}")
        self.accelerator.wait_for_everyone()

    # -- the loop ----------------------------------------------------------------------------------
    def fit(self) -> Path:
        """Train under the run directory's lock, with SIGTERM/SIGUSR1 turned into a stop at a step boundary."""
        lock = DirLock(self.out) if self.accelerator.is_main_process else contextlib.nullcontext()
        with lock, self.stop:
            if isinstance(lock, DirLock) and lock.stale:
                self._say(f"took over the lock a stopped process left ({lock.stale})")
            _check_run_dir(self.out, self.config.resume)  # again, now that the directory is ours
            return self._fit()

    def _fit(self) -> Path:
        acc, config = self.accelerator, self.config
        if config.resume:
            self._resume()
        if acc.is_main_process:
            self.out.mkdir(parents=True, exist_ok=True)
            if self.step == 0:  # a fresh start: drop what an attempt without a checkpoint left
                self.metrics.reset()
                remove_path(self.run.best)
                remove_path(self.run.results)
            if config.resume and self.run.config.is_file():
                self._note_config_changes()
            write_text_atomic(self.run.config, dump_yaml(config))
        # complete once results.json is written (after final/): a kill between the two redoes the finish
        if self.step >= self.max_steps and self.run.final.is_dir() and self.run.results.is_file():
            self._say(f"run already complete at step {self.step}: {self.run.final}")
            if self.job.finish is not None:
                self.job.finish(self.out)
            if acc.is_main_process:
                write_model_cards(self.out)
            return self.out
        n_params = sum(p.numel() for p in self.job.module.parameters() if p.requires_grad)
        self._say(f"{config.task}: {n_params / 1e6:.1f}M parameters, {acc.num_processes} process(es) on "
                  f"{acc.device}, precision {'fp32' if acc.mixed_precision == 'no' else acc.mixed_precision} "
                  f"({self.precision_reason}), batch {config.batch_size} = "
                  f"{self.micro_batch} x {acc.num_processes} x {config.grad_accum}, {self.max_steps} steps "
                  f"({self.max_steps / self.steps_per_epoch:.2f} epochs)")

        total_micro = self.max_steps * config.grad_accum
        # Its own generator: creating the iterator must not draw from the global RNG (exact resume).
        loader = DataLoader(self.batches, batch_size=None, sampler=range(self.micro_step, total_micro),
                            num_workers=config.num_workers, pin_memory=acc.device.type == "cuda",
                            generator=torch.Generator(), worker_init_fn=ignore_stop_signals)
        batches = iter(loader)
        count_tokens = self.job.count_tokens or _default_count_tokens
        bar = tqdm(total=self.max_steps, initial=self.step, desc=config.task, dynamic_ncols=True,
                   disable=not (acc.is_main_process and config.progress), file=sys.stderr)
        if config.eval_at_start and self.step == 0:
            self._log_eval()

        sums: dict[str, torch.Tensor] = {}
        tokens, t0, grad_norm = 0, time.perf_counter(), torch.tensor(0.0)
        interval_steps = skipped = 0
        self._train_mode()
        while self.step < self.max_steps:
            if self._stop_requested():  # at a step boundary: save (unless just saved) and stop
                self._preempt(sums)
            step_sums: dict[str, torch.Tensor] = {}
            for a in range(config.grad_accum):
                batch = to_device(next(batches), acc.device)
                tokens += count_tokens(batch)
                sync = a == config.grad_accum - 1
                with contextlib.nullcontext() if sync else acc.no_sync(self.module):
                    losses = self.module(batch)
                    acc.backward(losses["loss"] / config.grad_accum)
                for key, value in losses.items():
                    step_sums[key] = step_sums.get(key, 0) + value.detach().float() / config.grad_accum
                self.micro_step += 1
            self.lr = self.scheduler.get_last_lr()[0]  # the rate this step uses
            skip = config.on_nonfinite == "skip" and not self._finite_everywhere(step_sums["loss"])
            if not skip:
                if config.max_grad_norm > 0:
                    grad_norm = acc.clip_grad_norm_(self.module.parameters(), config.max_grad_norm)
                self.optimizer.step()
                for key, value in step_sums.items():
                    sums[key] = sums.get(key, 0) + value
            self.scheduler.step()  # a skipped step still counts: the schedule and the data order move on
            self.optimizer.zero_grad(set_to_none=True)
            self.step += 1
            interval_steps += 1
            bar.update(1)
            if skip:
                skipped += 1
                self._skipped_nonfinite(step_sums)
            else:
                self.nonfinite_in_row = 0

            last = self.step == self.max_steps
            if self.step % config.log_every == 0 or last:
                record = self._log_train(sums, interval_steps - skipped, skipped, tokens, time.perf_counter() - t0,
                                         grad_norm)
                if "loss" in record:
                    bar.set_postfix(loss=f"{record['loss']:.4g}")
                sums, tokens, t0, interval_steps, skipped = {}, 0, time.perf_counter(), 0, 0
            if self.eval_every and self.step % self.eval_every == 0 and not last:
                self._log_eval()
            if self.step % config.save_every == 0 or last:
                self._check_finite(sums)
                self._save()
        bar.close()
        self._finish()
        self.metrics.close()
        return self.out

    def _note_config_changes(self) -> None:
        """Resuming with a changed config is allowed (e.g. more steps) but is no longer an exact replay."""
        before = _flatten(load_run_config(self.out))
        now = _flatten(to_dict(self.config))
        changed = sorted(k for k in before.keys() | now.keys() if k != "resume" and before.get(k) != now.get(k))
        if changed:
            self._say("note: config differs from the saved run: " + ", ".join(
                f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in changed))

    def _log_train(self, sums: dict[str, torch.Tensor], steps: int, skipped: int, tokens: int, seconds: float,
                   grad_norm: torch.Tensor) -> dict[str, Any]:
        """One train record: the losses averaged over the interval's `steps` updated steps (skipped ones
        are counted in `nonfinite_skipped` with on_nonfinite=skip)."""
        acc = self.accelerator
        keys = sorted(sums)
        means = acc.reduce(torch.stack([sums[k] / steps for k in keys]), reduction="mean").tolist() if keys else []
        record: dict[str, Any] = {"step": self.step, "epoch": round(self.step / self.steps_per_epoch, 4)}
        record.update(zip(keys, means))
        self._check_finite(dict(zip(keys, means)))
        if self.config.on_nonfinite == "skip":
            record["nonfinite_skipped"] = skipped
        record["lr"] = self.lr
        record["grad_norm"] = float(grad_norm)
        record["tokens_per_s"] = tokens * acc.num_processes / max(seconds, 1e-9)
        record["seconds"] = seconds
        self.metrics.write(record)
        return record

    def _check_finite(self, values: dict[str, Any]) -> None:
        bad = {k: float(v) for k, v in values.items() if not math.isfinite(float(v))}
        if bad:
            raise VlkdError(f"non-finite loss at step {self.step} ({', '.join(f'{k}={v}' for k, v in bad.items())}); "
                            f"stopped without saving, {self._where()}. Try a lower lr, precision=fp32 or "
                            "on_nonfinite=skip")

    def _where(self) -> str:
        saved = list_checkpoints(self.out)
        if saved:
            return f"last good checkpoint: {saved[-1][1]} (continue with resume=true)"
        return "no checkpoint was written (the same output_dir can be used again)"

    def _finite_everywhere(self, loss: torch.Tensor) -> bool:
        """Whether this step's loss is finite on every process (one host sync per step: skip mode only)."""
        bad = (~torch.isfinite(loss.detach().float())).float().reshape(1)
        if self.accelerator.num_processes > 1:
            bad = self.accelerator.reduce(bad, reduction="sum")
        return bool(bad.item() == 0)

    def _skipped_nonfinite(self, losses: dict[str, torch.Tensor]) -> None:
        self.nonfinite_in_row += 1
        values = ", ".join(f"{k}={float(v):.4g}" for k, v in sorted(losses.items()))
        self._say(f"step {self.step}: non-finite loss ({values}), update skipped ({self.nonfinite_in_row} in a row)")
        if self.nonfinite_in_row > self.config.max_nonfinite:
            raise VlkdError(f"{self.nonfinite_in_row} non-finite steps in a row at step {self.step} (more than "
                            f"max_nonfinite={self.config.max_nonfinite}); stopped without saving, {self._where()}. "
                            "Try a lower lr or precision=fp32")

    def _stop_requested(self) -> str | None:
        """The stop signal's name if any process received one (every process must agree to stop together)."""
        name = self.stop.requested
        acc = self.accelerator
        if acc.num_processes > 1:
            flag = acc.reduce(torch.tensor([1.0 if name else 0.0], device=acc.device), reduction="sum")
            name = (name or "a stop signal (another process)") if flag.item() > 0 else None
        return name

    def _preempt(self, sums: dict[str, torch.Tensor]) -> None:
        """Save a checkpoint at this step boundary (unless one is there already) and stop with Preempted."""
        signal_name = self.stop.requested or "a stop signal (another process)"
        if self.step > 0 and self.saved_step != self.step:
            self._check_finite(sums)
            self._save()
        where = (f"checkpoint {self.run.checkpoint(self.step)}" if self.step > 0
                 else "before the first step, nothing to save")
        raise Preempted(f"{signal_name} at step {self.step} of {self.max_steps}: {where}; continue with resume=true")

    def _finish(self) -> None:
        acc = self.accelerator
        result = self._log_eval()
        if acc.is_main_process:
            with atomic_path(self.run.final) as tmp:
                self.job.save_final(acc.unwrap_model(self.module), tmp)
            best = {"best": self._best()} if self.config.select_best else {}
            write_json_atomic(self.run.results, {"step": self.step, **result, **best})
            self._say(f"done: {self.run.final}")
        acc.wait_for_everyone()
        if self.job.finish is not None:
            self.job.finish(self.out)
        if acc.is_main_process:  # after finish: the card shows fine-tuning's eval_results.json too
            write_model_cards(self.out)

    def _train_mode(self) -> None:
        self.module.train()
        for frozen in self.job.frozen:
            frozen.eval()  # no dropout; normalisation statistics kept

    def _say(self, message: str) -> None:
        if self.accelerator.is_main_process:
            tqdm.write(f"vlkd: {message}", file=sys.stderr)


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def train(config: TrainConfig, build_job: Callable[[TrainConfig], Job]) -> Path:
    """Run (or resume) one training job and return its run directory."""
    keep_heap()
    return Trainer(config, build_job).fit()
