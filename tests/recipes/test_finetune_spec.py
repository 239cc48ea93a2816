"""Fine-tuning reads everything task-specific from the TaskSpec: a task the recipe has never heard of (a spec,
its reader) trains, scores and writes its predictions; `vlkd finetune` runs `vlkd train`'s config checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.recipes.test_finetune import FIXTURES, finetune, tiny_model  # noqa: F401 (the fixture)
from vlkd.data.tasks import registry
from vlkd.data.tasks.spec import CLASSIFY, LST, PairExample, TaskSpec


def read_lines(data_dir: Path, split: str) -> list[PairExample]:
    """`label<TAB>sentence` per line; test lines have no label."""
    rows = [line.split("\t") for line in (data_dir / f"{split}.txt").read_text(encoding="utf-8").splitlines()]
    return [PairExample(r[-1], None, ("no", "yes").index(r[0]) if len(r) > 1 else None, str(i))
            for i, r in enumerate(rows)]


TOY = TaskSpec(name="toy", kind=CLASSIFY, metrics=("accuracy", "mcc"), read=read_lines, train="train",
               dev=(("dev", ""),), test=(("test", "toy-predictions.lst"),), labels=("no", "yes"),
               leaderboard_labels=("N", "Y"), prediction_format=LST, dev_predictions="toy-dev.lst",
               path=lambda data_dir, split: data_dir / f"{split}.txt")


def test_a_new_spec_driven_task_end_to_end(tiny_model: Path, tmp_path: Path,  # noqa: F811
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.TASKS, "toy", TOY)
    data = tmp_path / "toy"
    data.mkdir()
    words = ["good film", "bad film", "great plot", "awful plot", "fine acting", "poor acting"]
    for split, n in (("train", 8), ("dev", 5)):
        (data / f"{split}.txt").write_text("".join(f"{('no', 'yes')[i % 2]}\t{words[i % 6]}\n" for i in range(n)))
    (data / "test.txt").write_text("".join(f"{w}\n" for w in words[:3]))
    out = tmp_path / "run"
    assert finetune("toy", data, tiny_model, out) == 0
    results = json.loads((out / "eval_results.json").read_text())
    assert set(results) == {"accuracy", "mcc"}
    assert results == {k[len("valid_"):]: v for k, v in json.loads((out / "results.json").read_text()).items()
                       if k.startswith("valid_")}
    assert len((out / "toy-predictions.lst").read_text().splitlines()) == 3
    dev = (out / "toy-dev.lst").read_text().splitlines()
    assert len(dev) == 5 and set(dev) <= {"N", "Y"}
    expected = sum(("N", "Y").index(p) == i % 2 for i, p in enumerate(dev)) / 5  # the dev file agrees with the score
    assert results["accuracy"] == pytest.approx(expected)


def test_finetune_runs_the_config_checks_of_train(tiny_model: Path, tmp_path: Path,  # noqa: F811
                                                  capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    assert finetune("sst2", FIXTURES / "SST-2", tiny_model, out, "select_best=valid_f1") == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "'select_best'" in err and "valid_accuracy" in err, err
    assert not out.exists()
