"""The engine on a tiny deterministic job (linear regression): accumulation, decay groups, schedule,
checkpoints, NaN handling, and faults: corrupt checkpoints, torn metrics, stop signals, the run lock, a
full disk. The MLM recipe tests cover the kill -9 / exact-resume property end to end."""

from __future__ import annotations

import errno
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from vlkd.config import TrainConfig, validate
from vlkd.engine import checkpoint as checkpoint_module
from vlkd.engine import metrics as metrics_module
from vlkd.engine import train
from vlkd.engine.checkpoint import list_checkpoints, prune_checkpoints, read_trainer_state
from vlkd.engine.trainer import _param_groups
from vlkd.errors import Preempted, VlkdError
from vlkd.lock import LOCK_FILE, DirLock

from tests.engine.regression_job import Regression, job_factory, make_config


def config(tmp_path: Path, name: str, **kw) -> TrainConfig:
    return make_config(tmp_path / name, **kw)


def final_weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "final" / "weights.pt")


def test_grad_accumulation_matches_one_big_batch(tmp_path: Path) -> None:
    one = train(config(tmp_path, "a"), job_factory())
    two = train(config(tmp_path, "b", grad_accum=2), job_factory())
    for key, value in final_weights(one).items():
        assert torch.allclose(value, final_weights(two)[key], atol=1e-6), key


def test_run_directory_layout_and_metrics(tmp_path: Path) -> None:
    run = train(config(tmp_path, "r", eval_every=6, eval_at_start=True), job_factory())
    assert (run / "config.yaml").is_file() and (run / "results.json").is_file()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train_steps = [r["step"] for r in records if "loss" in r]
    assert train_steps == [3, 6, 9, 12]
    assert all({"mse", "lr", "grad_norm", "tokens_per_s"} <= set(r) for r in records if "loss" in r)
    valid = [r for r in records if "valid_mse" in r]
    assert [r["step"] for r in valid] == [0, 6, 12] and valid[-1]["valid_mse"] < valid[0]["valid_mse"]
    # keep_checkpoints=2: only the newest two remain
    assert [s for s, _ in list_checkpoints(run)] == [8, 12]
    state = load_file(run / "checkpoints" / "step-12" / "model.safetensors")
    assert torch.equal(state["linear.weight"], final_weights(run)["linear.weight"])


def test_linear_warmup_then_decay_is_logged(tmp_path: Path) -> None:
    run = train(config(tmp_path, "s", log_every=1), job_factory())
    lrs = [json.loads(line)["lr"] for line in (run / "metrics.jsonl").read_text().splitlines() if "lr" in line]
    # HF's linear schedule: warmup 0 -> lr over 2 steps, then linear decay towards 0 at step 12
    assert lrs[:3] == pytest.approx([0.0, 0.025, 0.05])
    assert lrs[-1] == pytest.approx(0.05 / 10) and all(a > b for a, b in zip(lrs[2:], lrs[3:]))


def test_no_weight_decay_on_bias_and_norm() -> None:
    module = Regression()
    decay, no_decay = _param_groups(module, 0.01)
    assert {id(p) for p in decay["params"]} == {id(module.linear.weight)}
    assert {id(p) for p in no_decay["params"]} == {id(module.linear.bias), id(module.norm.weight),
                                                     id(module.norm.bias)}
    assert no_decay["weight_decay"] == 0.0


def test_nan_loss_stops_without_writing_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(VlkdError, match=r"non-finite loss at step 6 \(loss=nan.*last good checkpoint: .*step-4"):
        train(config(tmp_path, "n"), job_factory(nan_at_call=5))
    run = tmp_path / "n"
    assert [s for s, _ in list_checkpoints(run)] == [4] and not (run / "final").exists()


def test_existing_run_needs_resume_and_resume_of_finished_run_is_a_no_op(tmp_path: Path) -> None:
    train(config(tmp_path, "x"), job_factory())
    with pytest.raises(VlkdError, match="already holds a run"):
        train(config(tmp_path, "x"), job_factory())
    before = final_weights(tmp_path / "x")
    train(config(tmp_path, "x", resume=True), job_factory())
    assert torch.equal(before["linear.weight"], final_weights(tmp_path / "x")["linear.weight"])


def test_resume_with_more_steps_notes_the_change(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    train(config(tmp_path, "m", max_steps=8), job_factory())
    train(config(tmp_path, "m", max_steps=12, resume=True), job_factory())
    err = capsys.readouterr().err
    assert "resumed from" in err and "config differs from the saved run: max_steps: 8 -> 12" in err
    assert "max_steps: 12" in (tmp_path / "m" / "config.yaml").read_text()


def test_truncated_checkpoint_is_reported_and_skipped_on_resume(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture) -> None:
    run = train(config(tmp_path, "t", max_steps=8), job_factory())
    before = final_weights(run)
    (run / "final").rename(run / "final-old")
    ckpt = run / "checkpoints" / "step-8" / "optimizer.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:50])
    train(config(tmp_path, "t", max_steps=8, resume=True), job_factory())
    err = capsys.readouterr().err
    assert f"{ckpt}: checkpoint file is truncated" in err and "falling back to step-4" in err
    assert (run / "checkpoints" / "step-8.corrupt").is_dir()  # kept for inspection, out of resume's way
    for key, value in before.items():
        assert torch.equal(value, final_weights(run)[key]), key


def _flip_byte(path: Path, offset: int = -20) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_flipped_bytes_are_detected_by_checksum_and_resume_falls_back(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture) -> None:
    run = train(config(tmp_path, "f", max_steps=8), job_factory())
    before = final_weights(run)
    (run / "final").rename(run / "final-old")
    weights = run / "checkpoints" / "step-8" / "model.safetensors"
    size = weights.stat().st_size
    _flip_byte(weights)
    assert weights.stat().st_size == size
    with pytest.raises(VlkdError, match="sha256 differs"):
        read_trainer_state(weights.parent)
    train(config(tmp_path, "f", max_steps=8, resume=True), job_factory())
    err = capsys.readouterr().err
    assert f"{weights}: checkpoint file is corrupt (sha256" in err and "resumed from" in err and "step-4" in err
    for key, value in before.items():
        assert torch.equal(value, final_weights(run)[key]), key
    # every checkpoint left on disk verifies
    assert all(read_trainer_state(path) for _, path in list_checkpoints(run))


def test_no_intact_checkpoint_stops_naming_them(tmp_path: Path) -> None:
    run = train(config(tmp_path, "c", max_steps=8), job_factory())
    (run / "final").rename(run / "final-old")
    _flip_byte(run / "checkpoints" / "step-8" / "optimizer.pt")
    (run / "checkpoints" / "step-4" / "trainer_state.json").unlink()
    with pytest.raises(VlkdError, match=r"checkpoints: no intact checkpoint to resume from \(step-8, step-4"):
        train(config(tmp_path, "c", max_steps=8, resume=True), job_factory())
    assert (run / "checkpoints" / "step-8").is_dir()  # nothing moved, nothing overwritten


def test_checkpoint_without_state_file_is_not_silently_overwritten(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    run = train(config(tmp_path, "s", max_steps=8), job_factory())
    (run / "final").rename(run / "final-old")
    for _, path in list_checkpoints(run):
        (path / "trainer_state.json").unlink()
    with pytest.raises(VlkdError, match="already holds a run"):  # a fresh run may not start over it
        train(config(tmp_path, "s", max_steps=8), job_factory())
    with pytest.raises(VlkdError, match="no intact checkpoint"):
        train(config(tmp_path, "s", max_steps=8, resume=True), job_factory())
    assert "incomplete checkpoint: no trainer_state.json" in capsys.readouterr().err


def test_torn_last_metrics_line_is_dropped_on_resume(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = train(config(tmp_path, "m", max_steps=8), job_factory())
    (run / "final").rename(run / "final-old")
    metrics = run / "metrics.jsonl"
    metrics.write_text(metrics.read_text() + '{"step": 9, "loss": 0.1')  # a kill during an append
    train(config(tmp_path, "m", max_steps=12, resume=True), job_factory())
    assert "dropped the torn last line" in capsys.readouterr().err
    steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines()]
    assert steps == [3, 6, 8, 8, 9, 12, 12]  # train and eval records; nothing torn or duplicated
    metrics.write_text('{"step": 1}\nnot json\n{"step": 2}\n')
    (run / "final").rename(run / "final-2")
    with pytest.raises(VlkdError, match=r"metrics.jsonl: line 2 is not a JSON object"):
        train(config(tmp_path, "m", max_steps=12, resume=True), job_factory())


def test_keep_checkpoints_must_be_at_least_one(tmp_path: Path) -> None:
    with pytest.raises(VlkdError, match="keep_checkpoints"):
        validate(config(tmp_path, "k", keep_checkpoints=-1))
    with pytest.raises(VlkdError, match="keep_checkpoints"):
        prune_checkpoints(tmp_path, 0)


def test_on_nonfinite_skip_skips_the_update_and_counts_it(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = train(config(tmp_path, "k", on_nonfinite="skip"), job_factory(nan_at_call={5, 11}))
    assert "step 5: non-finite loss (loss=nan, mse=nan), update skipped (1 in a row)" in capsys.readouterr().err
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["nonfinite_skipped"] for r in records if "lr" in r] == [0, 1, 0, 1]
    assert all(math.isfinite(r["loss"]) for r in records if "loss" in r)
    assert all(torch.isfinite(v).all() for v in final_weights(run).values())
    # the skipped steps still count: same schedule, same data order as a run where they were no-ops
    assert [s for s, _ in list_checkpoints(run)] == [8, 12]


def test_on_nonfinite_skip_stops_after_max_nonfinite_in_a_row(tmp_path: Path) -> None:
    with pytest.raises(VlkdError, match=r"4 non-finite steps in a row at step 8 \(more than max_nonfinite=3\)"):
        train(config(tmp_path, "r", on_nonfinite="skip", max_nonfinite=3), job_factory(nan_at_call=set(range(5, 99))))


def test_nan_stop_before_any_checkpoint_leaves_a_directory_that_can_be_rerun(tmp_path: Path) -> None:
    with pytest.raises(VlkdError, match="no checkpoint was written \\(the same output_dir can be used again\\)"):
        train(config(tmp_path, "n", save_every=100), job_factory(nan_at_call=5))
    run = tmp_path / "n"
    assert (run / "metrics.jsonl").is_file()  # what happened before the NaN stays readable until the rerun
    train(config(tmp_path, "n", save_every=100), job_factory())
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [3, 6, 9, 12, 12]  # the failed attempt's lines are gone


def _signal_at(call: int, sig: int):
    def hook(n: int) -> None:
        if n == call:
            os.kill(os.getpid(), sig)
    return hook


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1])
def test_stop_signal_saves_at_the_next_step_boundary_and_resume_is_exact(tmp_path: Path, sig: int) -> None:
    straight = final_weights(train(config(tmp_path, "straight"), job_factory()))
    with pytest.raises(Preempted, match=rf"{signal.Signals(sig).name} at step 6 of 12: checkpoint .*step-6; "
                                        r"continue with resume=true"):
        train(config(tmp_path, "p"), job_factory(on_call=_signal_at(6, sig)))
    run = tmp_path / "p"
    assert [s for s, _ in list_checkpoints(run)] == [4, 6] and not (run / "final").exists()
    assert signal.getsignal(sig) is signal.SIG_DFL or signal.getsignal(sig) == signal.default_int_handler \
        or callable(signal.getsignal(sig))  # handlers restored
    train(config(tmp_path, "p", resume=True), job_factory())
    for key, value in straight.items():
        assert torch.equal(value, final_weights(run)[key]), key


def test_stop_signal_on_a_save_step_does_not_save_twice(tmp_path: Path) -> None:
    with pytest.raises(Preempted, match="at step 4 of 12: checkpoint .*step-4"):
        train(config(tmp_path, "q"), job_factory(on_call=_signal_at(4, signal.SIGTERM)))
    assert [s for s, _ in list_checkpoints(tmp_path / "q")] == [4]


def test_ctrl_c_still_interrupts_at_once(tmp_path: Path) -> None:
    # Python's own SIGINT handler, as in a terminal (a pytest-xdist worker ignores SIGINT)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            train(config(tmp_path, "i"), job_factory(on_call=_signal_at(6, signal.SIGINT)))
    finally:
        signal.signal(signal.SIGINT, previous)
    assert [s for s, _ in list_checkpoints(tmp_path / "i")] == [4]


def test_a_second_process_on_the_same_run_directory_is_refused(tmp_path: Path) -> None:
    run = tmp_path / "l"
    with DirLock(run):
        with pytest.raises(VlkdError, match=rf"{run}: in use by another vlkd process \(pid {os.getpid()} on "):
            train(config(tmp_path, "l"), job_factory())
    train(config(tmp_path, "l"), job_factory())  # released: the directory is free again


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "stale"
    run.mkdir()
    (run / LOCK_FILE).write_text("pid 999999 on some-node\n")  # its process was killed: no flock held
    train(config(tmp_path, "stale"), job_factory())
    assert "took over the lock a stopped process left (pid 999999 on some-node)" in capsys.readouterr().err
    assert not (run / LOCK_FILE).exists()  # released cleanly


def test_disk_full_while_writing_a_checkpoint_keeps_the_previous_one(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    real = checkpoint_module.save_file
    calls = []

    def save_file(tensors, path):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(tensors, path)

    monkeypatch.setattr(checkpoint_module, "save_file", save_file)
    with pytest.raises(VlkdError, match=r"checkpoints/step-8: no space left on device .*previous state is kept"):
        train(config(tmp_path, "d"), job_factory())
    run = tmp_path / "d"
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step-4"]  # no temp dir, step-4 intact
    read_trainer_state(run / "checkpoints" / "step-4")
    monkeypatch.setattr(checkpoint_module, "save_file", real)
    train(config(tmp_path, "d", resume=True), job_factory())
    assert (run / "final").is_dir()


def test_disk_full_while_appending_metrics_is_one_line_naming_the_file(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(metrics_module, "open", full, raising=False)
    with pytest.raises(VlkdError, match=r"metrics.jsonl: no space left on device"):
        train(config(tmp_path, "mj"), job_factory())


def test_batch_not_divisible_by_accumulation_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(VlkdError, match="not divisible"):
        train(config(tmp_path, "d", grad_accum=3), job_factory())


def test_two_processes_train_like_one_with_the_same_effective_batch(tmp_path: Path) -> None:
    """torchrun with 2 CPU processes (gloo): each runs half the batch, gradients are averaged."""
    one = train(config(tmp_path, "one", eval_batches=1), job_factory())
    script = Path(__file__).with_name("regression_job.py")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533"]
    done = subprocess.run([*torchrun, str(script), str(tmp_path / "two")], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "2 process(es)" in done.stderr and "batch 8 = 4 x 2 x 1" in done.stderr
    assert sorted(p.name for p in (tmp_path / "two" / "checkpoints" / "step-12").glob("rng-*")) == ["rng-0.pt",
                                                                                                 "rng-1.pt"]
    for key, value in final_weights(one).items():
        assert torch.allclose(value, final_weights(tmp_path / "two")[key], atol=1e-6), key


def test_recipe_evaluation_hook_replaces_loss_averaging(tmp_path: Path) -> None:
    calls = []

    def build(cfg: TrainConfig):
        job = job_factory()(cfg)

        def evaluate(module, accelerator) -> dict[str, float]:
            calls.append(module.training)
            return {"valid_accuracy": 0.5 + len(calls)}

        job.evaluate = evaluate
        return job

    run = train(config(tmp_path, "e", eval_every=6), build)
    assert calls == [False, False]  # in eval mode, at step 6 and at the end
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["valid_accuracy"] for r in records if "valid_accuracy" in r] == [1.5, 2.5]
    assert json.loads((run / "results.json").read_text())["valid_accuracy"] == 2.5


def test_step_schedule_decays_every_n_epochs(tmp_path: Path) -> None:
    # 56 samples, batch 8: 7 steps per epoch; halve every 2 epochs = every 14 steps
    run = train(config(tmp_path, "step", max_steps=30, warmup=0, log_every=1, schedule="step",
                       decay_every_epochs=2, decay_factor=0.5), job_factory())
    lrs = [json.loads(line)["lr"] for line in (run / "metrics.jsonl").read_text().splitlines() if "lr" in line]
    assert lrs == pytest.approx([0.05] * 14 + [0.025] * 14 + [0.0125] * 2)


def test_select_best_keeps_the_best_evaluation_and_eval_every_epochs(tmp_path: Path) -> None:
    scores = iter([0.2, 0.9, 0.5, 0.7, 0.1])

    def build(cfg: TrainConfig):
        job = job_factory()(cfg)
        job.evaluate = lambda module, acc: {"valid_score": next(scores)}
        return job

    # 7 steps per epoch, 35 steps: evaluations at 7, 14, 21, 28 and the final one at 35
    run = train(config(tmp_path, "best", max_steps=35, eval_every_epochs=1, select_best="valid_score"), build)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "valid_score" in r] == [7, 14, 21, 28, 35]
    selection = json.loads((run / "best" / "selection.json").read_text())
    assert selection == {"metric": "valid_score", "value": 0.9, "step": 14}
    assert (run / "best" / "weights.pt").is_file()
    assert json.loads((run / "results.json").read_text())["best"] == selection
    # the weights in best/ are those of step 14, not the final ones
    assert not torch.equal(torch.load(run / "best" / "weights.pt")["linear.weight"],
                           final_weights(run)["linear.weight"])


def test_select_best_needs_a_metric_the_evaluation_has(tmp_path: Path) -> None:
    with pytest.raises(VlkdError, match="select_best"):
        train(config(tmp_path, "nobest", select_best="valid_accuracy"), job_factory())
