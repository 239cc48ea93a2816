from __future__ import annotations

from pathlib import Path

import pytest

from vlkd.config import apply_overrides, dump_yaml, list_presets
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
