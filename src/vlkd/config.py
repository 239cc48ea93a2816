"""Typed configs: dataclasses filled from YAML (a path or a shipped preset) plus dotted `key=value` overrides.

Every recipe defines its config as a subclass of `TrainConfig`; loading is strict (an unknown key or a
value of the wrong type is an error naming the key), and the resolved config is saved with every run.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from vlkd.errors import VlkdError

MISSING_PATH = ""  # a required path left empty in a preset


@dataclass
class TrainConfig:
    """Keys shared by every recipe (docs/architecture.md, docs/commands.md). `batch_size` is the effective batch per optimizer
    step over all processes and accumulation steps; each process runs batch_size/(processes*grad_accum)."""

    task: str = ""
    output_dir: str = MISSING_PATH
    max_steps: int = 0
    epochs: float = 0.0
    batch_size: int = 32
    grad_accum: int = 1
    lr: float = 1e-4
    warmup: float = 0.0  # >= 1: steps; < 1: fraction of max_steps
    schedule: str = "linear"  # any transformers.get_scheduler name (linear, cosine, ...), or step
    decay_every_epochs: float = 10.0  # schedule step: multiply the lr by decay_factor every this many epochs
    decay_factor: float = 0.5
    weight_decay: float = 0.01
    adam_eps: float = 1e-6
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    max_grad_norm: float = 1.0
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"  # auto: bf16 on a bf16 GPU or a CPU with AMX/AVX512-BF16, else fp32
    compile: bool = False  # torch.compile the training module (opt-in: compile time up front, see docs/commands.md)
    seed: int = 42
    log_every: int = 50
    save_every: int = 1000
    keep_checkpoints: int = 2
    eval_every: int = 0  # 0: evaluate only at the end (and at the start if eval_at_start)
    eval_every_epochs: float = 0.0  # > 0: evaluate every this many epochs instead of eval_every steps
    select_best: str = ""  # an evaluation metric (higher is better): keep the best model in best/
    eval_at_start: bool = False
    eval_batches: int = 50
    num_workers: int = 0
    progress: bool = True
    resume: bool = False


def _presets_dir() -> Path:
    return Path(str(resources.files("vlkd") / "configs"))


def list_presets() -> list[str]:
    """Names of the training presets shipped in the package."""
    return sorted(p.stem for p in _presets_dir().glob("*.yaml"))


def list_model_presets() -> list[str]:
    return sorted(p.stem for p in (_presets_dir() / "model").glob("*.yaml"))


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as e:
        raise VlkdError(f"malformed YAML ({str(e).splitlines()[0]})", path) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise VlkdError("a config file must be a YAML mapping", path)
    return data


def read_config_source(source: str) -> tuple[dict[str, Any], str]:
    """Read CONFIG (a YAML path or a preset name) into a plain dict; returns (dict, where it came from)."""
    path = Path(source)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise VlkdError("config file not found", path)
        return _read_yaml(path), str(path)
    preset = _presets_dir() / f"{source}.yaml"
    if not preset.is_file():
        raise VlkdError(f"no such config file or preset {source!r} (presets: {', '.join(list_presets())})")
    return _read_yaml(preset), f"preset {source}"


def model_preset(name: str) -> dict[str, Any]:
    path = _presets_dir() / "model" / f"{name}.yaml"
    if not path.is_file():
        raise VlkdError(f"unknown model preset {name!r} (presets: {', '.join(list_model_presets())})")
    return _read_yaml(path)


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `a.b.c=value` overrides (value parsed as YAML) to a nested dict, in place."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise VlkdError(f"override {item!r} is not of the form key=value")
        try:
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            value = raw
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if isinstance(child, str) and part == "model":  # `model: tiny` then `model.x=..`
                child = model_preset(child)
            if not isinstance(child, dict):
                child = {}
            node[part] = child
            node = child
        node[parts[-1]] = value
    return data


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check/convert one value against a type hint; errors name the dotted key."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        last: VlkdError | None = None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except VlkdError as e:
                last = e
        raise last or VlkdError(f"config key {key!r}: bad value {value!r}")
    if origin is Literal:
        choices = typing.get_args(tp)
        if value in choices and type(value) is type(choices[0]):
            return value
        raise VlkdError(f"config key {key!r} must be one of {', '.join(map(str, choices))}, got {value!r}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise VlkdError(f"config key {key!r} expects a mapping, got {value!r}")
        return from_dict(tp, value, prefix=f"{key}.")
    if origin is list:
        (inner,) = typing.get_args(tp) or (Any,)
        if isinstance(value, str):
            value = [v for v in value.split(",") if v != ""]
        if not isinstance(value, (list, tuple)):
            raise VlkdError(f"config key {key!r} expects a list, got {value!r}")
        return [_coerce(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict or tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise VlkdError(f"config key {key!r} expects true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise VlkdError(f"config key {key!r} expects an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(float(value)) if float(value).is_integer() else int(value)
            except ValueError:
                pass
        raise VlkdError(f"config key {key!r} expects an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)  # YAML 1.1 reads `1e-4` as a string
            except ValueError:
                pass
        raise VlkdError(f"config key {key!r} expects a number, got {value!r}")
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise VlkdError(f"config key {key!r} expects a string, got {value!r}")
    raise VlkdError(f"config key {key!r}: unsupported type {tp}")


def from_dict(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    """Build dataclass `cls` from a dict, strictly: unknown keys and wrong types are errors."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise VlkdError(
            f"unknown config key '{prefix}{unknown[0]}' (known keys under {prefix.rstrip('.') or 'the top level'}: "
            f"{', '.join(sorted(names))})"
        )
    kwargs = {}
    for name, value in data.items():
        tp = hints[name]
        if dataclasses.is_dataclass(tp) and isinstance(value, str) and getattr(tp, "PRESETS", ""):
            value = model_preset(value)  # `model: bert-6L-512H` names a preset of that section
        kwargs[name] = _coerce(value, tp, f"{prefix}{name}")
    return cls(**kwargs)


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def dump_yaml(config: Any) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False)


def read_config(source: str, overrides: list[str] | None = None) -> tuple[dict[str, Any], str]:
    """A YAML path or preset with the overrides applied, as a plain dict; and where it came from."""
    data, where = read_config_source(source)
    apply_overrides(data, list(overrides or []))
    return data, where


def build_config(cls: type, data: dict[str, Any], where: str) -> Any:
    """The typed config of a recipe (`cls`) from a dict, checked: errors name the key and the source."""
    try:
        config = from_dict(cls, data)
    except VlkdError as e:
        raise VlkdError(f"config ({where}): {e}") from None
    validate(config)
    return config


def validate(config: TrainConfig) -> None:
    """Checks shared by every recipe."""
    if not config.output_dir:
        raise VlkdError("config key 'output_dir' is required (e.g. output_dir=runs/my-run)")
    if config.max_steps <= 0 and config.epochs <= 0:
        raise VlkdError("set max_steps or epochs to a positive number")
    for key in ("batch_size", "grad_accum", "log_every", "save_every", "eval_batches"):
        if getattr(config, key) <= 0:
            raise VlkdError(f"config key {key!r} must be positive, got {getattr(config, key)}")
    if config.lr <= 0:
        raise VlkdError(f"config key 'lr' must be positive, got {config.lr}")
