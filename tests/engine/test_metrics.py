"""metrics.jsonl and the optional TensorBoard event files hold the same scalars."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from vlkd.engine import train
from vlkd.engine.metrics import MetricsLog
from vlkd.errors import VlkdError

from tests.engine.regression_job import job_factory, make_config


def _jsonl(run: Path) -> dict[str, list[tuple[int, float]]]:
    series: dict[str, list[tuple[int, float]]] = {}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        for key, value in record.items():
            if key != "step":
                series.setdefault(key, []).append((record["step"], value))
    return series


def _events(run: Path) -> dict[str, list[tuple[int, float]]]:
    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_tensorboard_events_hold_the_jsonl_scalars_across_a_resume(tmp_path: Path) -> None:
    out = tmp_path / "run"
    options = dict(eval_every=6, eval_at_start=True, report_to=["jsonl", "tensorboard"])
    train(make_config(out, max_steps=8, **options), job_factory())
    train(make_config(out, max_steps=12, resume=True, **options), job_factory())
    jsonl, events = _jsonl(out), _events(out)
    assert set(events) == set(jsonl) and {"loss", "mse", "lr", "valid_mse"} <= set(events)
    for key, points in jsonl.items():
        assert [s for s, _ in events[key]] == [s for s, _ in points], key
        assert [v for _, v in events[key]] == pytest.approx([v for _, v in points], rel=1e-6, abs=1e-7), key
    assert [s for s, _ in jsonl["loss"]] == [3, 6, 8, 9, 12]


def test_jsonl_is_the_default_and_tensorboard_alone_writes_no_jsonl(tmp_path: Path) -> None:
    run = train(make_config(tmp_path / "a"), job_factory())
    assert (run / "metrics.jsonl").is_file() and not (run / "tensorboard").exists()
    run = train(make_config(tmp_path / "b", report_to=["tensorboard"]), job_factory())
    assert not (run / "metrics.jsonl").exists() and _events(run)["loss"]


def test_unknown_reporter_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(VlkdError, match="report_to.*wandb"):
        MetricsLog(tmp_path / "metrics.jsonl", enabled=True, report_to=["jsonl", "wandb"])
