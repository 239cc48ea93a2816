"""Recipes: one module per job. Each defines `Config` (a TrainConfig subclass) and
`build(config) -> Job`; `vlkd train` picks one by the config's `task:` key."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from vlkd.config import TrainConfig
from vlkd.errors import VlkdError

RECIPES: dict[str, str] = {
    "mlm": "vlkd.recipes.mlm",
    "teacher": "vlkd.recipes.teacher",
    "finetune": "vlkd.recipes.finetune",
    "videoqa": "vlkd.recipes.videoqa",
}


def recipe_module(task: str) -> ModuleType:
    if task not in RECIPES:
        raise VlkdError(f"unknown task {task!r} (available: {', '.join(sorted(RECIPES))})")
    return importlib.import_module(RECIPES[task])


def run_training(config: TrainConfig) -> Path:
    """Build the recipe's job and run it through the engine."""
    from vlkd.engine import train

    return train(config, recipe_module(config.task).build)
