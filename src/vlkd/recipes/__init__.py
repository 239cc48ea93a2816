"""Recipes: one module per job. Each defines `Config` (a TrainConfig subclass) and `build(config) -> Job`,
and may define `check(config)` (rules across fields, checked before any data is read) and
`eval_metrics(config)` (the metrics its evaluation logs, so `select_best` is checked up front).
`vlkd train` picks one by the config's `task:` key.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from vlkd.config import TrainConfig, build_config, read_config
from vlkd.engine import train
from vlkd.errors import VlkdError

RECIPES: dict[str, str] = {
    "mlm": "vlkd.recipes.mlm",
    "teacher": "vlkd.recipes.teacher",
    "distill": "vlkd.recipes.distill",
    "finetune": "vlkd.recipes.finetune",
    "videoqa": "vlkd.recipes.videoqa",
}


def recipe_module(task: str) -> ModuleType:
    if task not in RECIPES:
        raise VlkdError(f"unknown task {task!r} (available: {', '.join(sorted(RECIPES))})")
    return importlib.import_module(RECIPES[task])


def check_recipe_config(config: TrainConfig, where: str = "") -> None:
    """The recipe's own rules and the `select_best` metric, before any data is read."""
    recipe = recipe_module(config.task)
    prefix = f"config ({where}): " if where else ""
    try:
        if hasattr(recipe, "check"):
            recipe.check(config)
        if config.select_best and hasattr(recipe, "eval_metrics"):
            known = recipe.eval_metrics(config)
            if not any(config.select_best == m or (m.endswith("*") and config.select_best.startswith(m[:-1]))
                       for m in known):
                raise VlkdError(f"config key 'select_best': task {config.task} evaluates no metric "
                                f"{config.select_best!r} (it logs {', '.join(known)})")
    except VlkdError as e:
        raise VlkdError(f"{prefix}{e}") from None


def load_config(source: str, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML path or preset, apply overrides, build the recipe's typed config and check it."""
    return config_from_dict(*read_config(source, overrides))


def config_from_dict(data: dict, where: str) -> TrainConfig:
    """The recipe's typed config from a plain dict (its `task:` picks the recipe), checked as `vlkd train` does."""
    task = data.get("task")
    if not task:
        raise VlkdError(f"config ({where}) has no `task:` key saying which recipe to run")
    config = build_config(recipe_module(str(task)).Config, data, where)
    check_recipe_config(config, where)
    return config


def run_training(config: TrainConfig) -> Path:
    """Build the recipe's job and run it through the engine."""
    return train(config, recipe_module(config.task).build)
