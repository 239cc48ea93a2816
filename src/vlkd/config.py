"""Typed configs: dataclasses filled from YAML (a path or a shipped preset) plus dotted `key=value` overrides.

Every recipe defines its config as a subclass of `TrainConfig`; loading is strict (an unknown key or a
value of the wrong type is an error naming the key), and the resolved config is saved with every run.

Value ranges are declared once, on the field: `lr: float = bounded(1e-4, gt=0)`; a config dataclass may add
rules across its fields in a `check(self, prefix)` method. `from_dict` applies both to every (nested)
config it builds, so every recipe's values are checked before anything is read or written.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from vlkd.errors import VlkdError
from vlkd.io import check_output_dir

MISSING_PATH = ""  # a required path left empty in a preset
RANGE = "range"  # the dataclass field metadata key of `bounded`


@dataclass(frozen=True)
class Range:
    """Allowed values of a number (or of every number in a list): ge/gt/le/lt bounds, any may be None."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def problem(self, value: float) -> str | None:
        """Why `value` is outside the range (None when it is inside)."""
        if isinstance(value, float) and not math.isfinite(value):
            return f"must be a finite number, got {value}"
        for bound, ok, words in ((self.ge, lambda b: value >= b, "at least"), (self.gt, lambda b: value > b, "greater than"),
                                 (self.le, lambda b: value <= b, "at most"), (self.lt, lambda b: value < b, "less than")):
            if bound is not None and not ok(bound):
                return f"must be {words} {bound:g}, got {value}"
        return None


def bounded(default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING,
            ge: float | None = None, gt: float | None = None, le: float | None = None, lt: float | None = None) -> Any:
    """A dataclass field whose value (or each value of a list) must lie in the given range."""
    return field(default=default, default_factory=default_factory,
                 metadata={RANGE: Range(ge=ge, gt=gt, le=le, lt=lt)})


def check_ranges(config: Any, prefix: str = "") -> None:
    """Check every `bounded` field of one dataclass instance, then its own `check(prefix)` rules."""
    for f in dataclasses.fields(config):
        rng = f.metadata.get(RANGE)
        if rng is None:
            continue
        value = getattr(config, f.name)
        values = list(enumerate(value)) if isinstance(value, (list, tuple)) else [(None, value)]
        for i, v in values:
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                problem = rng.problem(v)
                if problem:
                    key = f"{prefix}{f.name}" + ("" if i is None else f"[{i}]")
                    raise VlkdError(f"config key {key!r} {problem}")
    if hasattr(config, "check"):
        config.check(prefix)


@dataclass
class TrainConfig:
    """Keys shared by every recipe (docs/architecture.md, docs/commands.md). `batch_size` is the effective batch per optimizer
    step over all processes and accumulation steps; each process runs batch_size/(processes*grad_accum)."""

    task: str = ""
    output_dir: str = MISSING_PATH
    max_steps: int = bounded(0, ge=0)
    epochs: float = bounded(0.0, ge=0)
    batch_size: int = bounded(32, ge=1)
    grad_accum: int = bounded(1, ge=1)
    lr: float = bounded(1e-4, gt=0)
    warmup: float = bounded(0.0, ge=0)  # >= 1: steps; < 1: fraction of max_steps
    schedule: str = "linear"  # any transformers.get_scheduler name (linear, cosine, ...), or step
    decay_every_epochs: float = bounded(10.0, gt=0)  # schedule step: multiply the lr by decay_factor every this many epochs
    decay_factor: float = bounded(0.5, gt=0, le=1)
    weight_decay: float = bounded(0.01, ge=0)
    adam_eps: float = bounded(1e-6, gt=0)
    adam_betas: list[float] = bounded(default_factory=lambda: [0.9, 0.999], ge=0, lt=1)  # exactly two
    max_grad_norm: float = bounded(1.0, ge=0)  # 0: no clipping
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"  # auto: bf16 on a bf16 GPU or a CPU with AMX/AVX512-BF16, else fp32
    compile: bool = False  # torch.compile the training module (opt-in: compile time up front, see docs/commands.md)
    seed: int = bounded(42, ge=0, lt=2**32)  # numpy seeds are 32-bit
    log_every: int = bounded(50, ge=1)
    save_every: int = bounded(1000, ge=1)
    keep_checkpoints: int = bounded(2, ge=1)  # a run keeps this many newest checkpoints
    eval_every: int = bounded(0, ge=0)  # 0: evaluate only at the end (and at the start if eval_at_start)
    eval_every_epochs: float = bounded(0.0, ge=0)  # > 0: evaluate every this many epochs instead of eval_every steps
    select_best: str = ""  # an evaluation metric (higher is better): keep the best model in best/
    eval_at_start: bool = False
    eval_batches: int = bounded(50, ge=1)
    num_workers: int = bounded(0, ge=0)
    progress: bool = True
    report_to: list[str] = field(default_factory=lambda: ["jsonl"])  # and/or tensorboard (RUN/tensorboard/)
    resume: bool = False
    on_nonfinite: Literal["stop", "skip"] = "stop"  # a NaN/inf loss: stop the run, or skip that step's update
    max_nonfinite: int = bounded(10, ge=1)  # with skip: this many skipped steps in a row are tolerated, one more stops

    def check(self, prefix: str = "") -> None:
        """Rules across the shared keys (ranges are on the fields)."""
        if len(self.adam_betas) != 2:
            raise VlkdError(f"config key '{prefix}adam_betas' must be two numbers [beta1, beta2], got {self.adam_betas}")
        if self.warmup >= 1 and not float(self.warmup).is_integer():
            raise VlkdError(f"config key '{prefix}warmup' is a step count when >= 1 (a fraction of the run when < 1), "
                            f"got {self.warmup}")


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
        raise VlkdError(f"malformed YAML ({' '.join(str(e).split())[:200]})", path) from None
    except UnicodeDecodeError as e:
        raise VlkdError(f"not UTF-8 text (invalid byte at offset {e.start})", path) from None
    except OSError as e:
        raise VlkdError(f"cannot read ({e.strerror})", path) from None
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
    config = cls(**kwargs)
    check_ranges(config, prefix)
    return config


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def dump_yaml(config: Any) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False)


def _check_recursive(config: Any, prefix: str = "") -> None:
    """`check_ranges` on a config and every dataclass inside it (also those left at their defaults)."""
    check_ranges(config, prefix)
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        items = list(enumerate(value)) if isinstance(value, list) else [(None, value)]
        for i, v in items:
            if dataclasses.is_dataclass(v) and not isinstance(v, type):
                _check_recursive(v, f"{prefix}{f.name}" + ("" if i is None else f"[{i}]") + ".")


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
    _check_recursive(config)
    check_output_dir(config.output_dir, "config key 'output_dir'")
