from __future__ import annotations

from pathlib import Path

import pytest

from vlkd.config import apply_overrides, dump_yaml, list_presets, read_config
from vlkd.recipes import load_config
from vlkd.errors import VlkdError


def test_presets_load_with_reference_hyperparameters() -> None:
    assert {"mlm-tiny", "mlm-small", "mlm-base", "quickstart-mlm"} <= set(list_presets())
    base = load_config("mlm-base", ["data.train=x", "output_dir=y"])
    assert (base.model.num_layers, base.model.hidden_size, base.model.num_heads) == (12, 768, 12)
    assert base.model.intermediate_size == 3072 and base.model.vocab_size == 30522
    assert (base.batch_size, base.lr, base.warmup, base.max_steps) == (256, 2e-4, 5000, 500000)
    small = load_config("mlm-small", ["data.train=x"])
    assert (small.model.num_layers, small.model.hidden_size, small.model.num_heads) == (6, 512, 8)
    assert small.model.intermediate_size == 2048 and small.epochs == 40 and small.warmup == 10000


def test_overrides_are_typed_and_nested() -> None:
    config = load_config("mlm-tiny", ["lr=1e-4", "model.num_layers=3", "data.train=/x", "resume=true",
                                      "adam_betas=[0.9,0.98]", "output_dir=runs/a"])
    assert config.lr == pytest.approx(1e-4) and isinstance(config.lr, float)
    assert config.model.num_layers == 3 and config.model.hidden_size == 128  # rest of the preset kept
    assert config.data.train == "/x" and config.resume is True
    assert config.adam_betas == [0.9, 0.98]


def test_yaml_file_round_trip(tmp_path: Path) -> None:
    config = load_config("mlm-tiny", ["data.train=/x"])
    path = tmp_path / "c.yaml"
    path.write_text(dump_yaml(config))
    again = load_config(str(path))
    assert again == config


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["lrr=1"], "unknown config key 'lrr'"),
        (["model.hiden_size=3"], "unknown config key 'model.hiden_size'"),
        (["lr=fast"], "'lr' expects a number"),
        (["max_steps=1.5"], "'max_steps' expects an integer"),
        (["model=nope"], "unknown model preset 'nope'"),
        (["output_dir="], "'output_dir' is required"),
        (["lr"], "not of the form key=value"),
    ],
)
def test_bad_config_is_a_clear_error(overrides: list[str], message: str) -> None:
    with pytest.raises(VlkdError, match=message):
        load_config("mlm-tiny", overrides)


def test_unknown_task_and_preset(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("task: dance\n")
    with pytest.raises(VlkdError, match="unknown task 'dance'"):
        load_config(str(path))
    with pytest.raises(VlkdError, match="no such config file or preset"):
        load_config("no-such-preset")
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: [mlm\n")
    with pytest.raises(VlkdError, match="malformed YAML"):
        load_config(str(bad))


def test_apply_overrides_creates_nested_keys() -> None:
    assert apply_overrides({}, ["a.b.c=1", "a.d=x"]) == {"a": {"b": {"c": 1}, "d": "x"}}


def required_overrides(preset: str, root: Path) -> list[str]:
    """Dummy data paths (never read) and an output directory: what a preset leaves to the user."""
    task = read_config(preset)[0]["task"]
    paths = {"mlm": ["data.train"], "teacher": ["data.path"], "videoqa": ["data.path", "data.features"],
             "distill": ["data.train", "teacher"]}[task]
    return [f"{key}={root / 'no-such-dir' / key}" for key in paths] + [f"output_dir={root / 'out'}"]


@pytest.mark.parametrize("preset", list_presets())
def test_every_preset_loads_without_reading_data(preset: str, tmp_path: Path) -> None:
    config = load_config(preset, required_overrides(preset, tmp_path))
    assert config.output_dir == str(tmp_path / "out")
    assert list(tmp_path.iterdir()) == []  # nothing read, nothing written


def test_eval_metrics_of_each_recipe() -> None:
    from vlkd.recipes import recipe_module
    from vlkd.recipes.finetune import Config as FinetuneConfig, FinetuneData

    assert recipe_module("mlm").eval_metrics(None) == ["valid_loss", "valid_mlm", "valid_perplexity"]
    teacher = recipe_module("teacher").eval_metrics(None)
    assert {"valid_mlm", "valid_match", "valid_perplexity", "valid_r1", "valid_r5", "valid_r10",
            "valid_median_rank"} <= set(teacher)
    assert recipe_module("videoqa").eval_metrics(None) == ["valid_accuracy", "valid_acc_*"]
    distill = load_config("distill-small-wiki103", ["data.train=/x", "teacher=/y"])
    assert recipe_module("distill").eval_metrics(distill) == ["valid_loss", "valid_mlm", "valid_perplexity", "valid_nst"]
    finetune = recipe_module("finetune")
    mnli = finetune.eval_metrics(FinetuneConfig(data=FinetuneData(task="mnli")))
    assert mnli == ["valid_accuracy", "valid_accuracy_mm"]
    assert finetune.eval_metrics(FinetuneConfig(data=FinetuneData(task="squad1"))) == ["valid_exact_match", "valid_f1"]
    squad2 = finetune.eval_metrics(FinetuneConfig(data=FinetuneData(task="squad2")))
    assert squad2[:2] == ["valid_exact", "valid_f1"] and "valid_best_f1" in squad2
    assert finetune.eval_metrics(FinetuneConfig(data=FinetuneData(task="mrpc"))) == ["valid_accuracy", "valid_f1"]


def test_select_best_accepts_a_prefixed_metric(tmp_path: Path) -> None:
    overrides = required_overrides("videoqa-msvd-teacher", tmp_path)
    assert load_config("videoqa-msvd-teacher", [*overrides, "select_best=valid_acc_what"]).select_best == "valid_acc_what"


@pytest.mark.parametrize("preset, override, message", [
    ("mlm-tiny", "precision=fp8", "'precision' must be one of auto, fp32, bf16, fp16, got 'fp8'"),
    ("videoqa-msvd-teacher", "role=teachr", "'role' must be one of teacher, student, got 'teachr'"),
    ("teacher-small", "video.pooling=max", "'video.pooling' must be one of mean, first, got 'max'"),
    ("teacher-small", "batch_size=7", "halfswap needs an even micro-batch"),
    ("videoqa-msvd-teacher", "select_best=valid_acuracy", "evaluates no metric 'valid_acuracy'"),
    ("teacher-tiny", "matching=[{loss: nsst, student: text, teacher: video}]", "unknown loss 'nsst'"),
    ("mlm-tiny", "select_best=valid_accuracy", "evaluates no metric 'valid_accuracy'"),
])
def test_bad_config_fails_in_the_cli_before_any_data_is_read(preset: str, override: str, message: str,
                                                             tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from vlkd.cli import main

    overrides = required_overrides(preset, tmp_path)
    assert main(["train", preset, *overrides, override]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vlkd: error: ") and err.count("\n") == 1, err
    assert message in err and "not found" not in err and "no-such-dir" not in err
    assert not (tmp_path / "out").exists() and list(tmp_path.iterdir()) == []


def test_distillation_presets_have_the_reference_settings_and_equal_compute_baselines() -> None:
    paths = ["data.train=/x", "teacher=/y"]
    small, small_base = load_config("distill-small-wiki103", paths), load_config("mlm-small", paths[:1])
    assert (small.model.num_layers, small.model.hidden_size, small.model.num_heads) == (6, 512, 8)
    assert (small.batch_size, small.epochs, small.lr, small.warmup) == (256, 40, 2e-4, 10000)
    assert [t.loss for t in small.kd.terms] == ["nst"] and small.kd.head and small.kd.teacher_input == "masked"
    base, base_baseline = load_config("distill-base-wiki", paths), load_config("mlm-base", paths[:1])
    assert (base.model.num_layers, base.model.hidden_size, base.max_steps, base.warmup) == (12, 768, 500000, 5000)
    voken = load_config("voken-small-wiki103", paths)
    assert [t.loss for t in voken.kd.terms] == ["voken"]
    for kd, baseline in ((small, small_base), (base, base_baseline), (load_config("distill-tiny", paths),
                                                                      load_config("mlm-tiny", paths[:1])),
                         (load_config("quickstart-distill", paths), load_config("quickstart-mlm", paths[:1]))):
        same = ("max_steps", "epochs", "batch_size", "grad_accum", "lr", "warmup", "seed", "weight_decay")
        assert [getattr(kd, k) for k in same] == [getattr(baseline, k) for k in same], kd.output_dir
        assert kd.model == baseline.model and kd.data == baseline.data


def _numeric_fields(cls: type, prefix: str = "") -> dict[str, bool]:
    """Every int/float field (nested sections too) of a config dataclass -> whether it declares a range."""
    import dataclasses
    import typing

    from vlkd.config import RANGE

    found: dict[str, bool] = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        inner = typing.get_args(tp)[0] if typing.get_origin(tp) is list else tp
        if dataclasses.is_dataclass(inner):
            found.update(_numeric_fields(inner, f"{prefix}{f.name}."))
        elif inner in (int, float):
            found[f"{prefix}{f.name}"] = RANGE in f.metadata
    return found


def test_every_numeric_config_key_declares_its_range() -> None:
    """A new numeric key must say what values it takes (`bounded`); these few take any value on purpose."""
    from vlkd.recipes import RECIPES, recipe_module

    unbounded_on_purpose = {"keep_checkpoints"}  # checked by the engine (issue 15's checkpoint pruning rule)
    missing = {f"{task}: {key}" for task in RECIPES
               for key, ranged in _numeric_fields(recipe_module(task).Config).items()
               if not ranged and key.split(".")[-1] not in unbounded_on_purpose}
    assert not missing, sorted(missing)


def test_every_preset_is_inside_the_ranges() -> None:
    from vlkd.config import build_config, list_presets, read_config
    from vlkd.recipes import recipe_module

    for name in list_presets():
        data, where = read_config(name)
        build_config(recipe_module(data["task"]).Config, data, where)  # raises on a value out of range
