"""`vlkd ls`: what the registries hold (recipes, presets, losses, tasks, backbones)."""

from __future__ import annotations

import argparse
from typing import Callable


def ls_recipes() -> list[str]:
    from vlkd.recipes import RECIPES, recipe_module

    def summary(name: str) -> str:
        return " ".join((recipe_module(name).__doc__ or "").split()).split(". ")[0].split(" (")[0]

    return [f"{name:<10} {RECIPES[name]:<24} {summary(name)}" for name in sorted(RECIPES)]


def ls_presets() -> list[str]:
    from vlkd.config import list_model_presets, list_presets, read_config_source

    lines = [f"{name:<24} task: {read_config_source(name)[0].get('task', '?')}" for name in list_presets()]
    return lines + [f"{name:<24} model section (model: {name})" for name in list_model_presets()]


def ls_losses() -> list[str]:
    from vlkd.losses import LOSSES

    return [f"{e.name:<20} {e.kind:<11} {e.summary}" for e in sorted(LOSSES.values(), key=lambda e: (e.kind, e.name))]


def ls_tasks() -> list[str]:
    from vlkd.data.tasks.registry import TASKS

    lines = [f"{s.name:<12} {s.kind:<9} {', '.join(s.metrics)}"
             + (f" (dev sets: {', '.join(split for split, _ in s.dev)})" if len(s.dev) > 1 else "")
             for s in TASKS.values()]
    return lines + [f"{'ax':<12} {'classify':<9} no metrics: GLUE diagnostics predicted by a fine-tuned MNLI model"]


def ls_backbones() -> list[str]:
    from vlkd.video.backbones import SPECS

    return [f"{s.name:<18} {'--appearance' if s.kind == '2d' else '--motion':<13} "
            + ("size of --weights DIR" if s.tower else f"{s.dim:>5}-d  {s.size}px")
            + (f"  {s.notes}" if s.notes else "") for s in SPECS.values()]


LISTS: dict[str, Callable[[], list[str]]] = {"recipes": ls_recipes, "presets": ls_presets, "losses": ls_losses,
                                             "tasks": ls_tasks, "backbones": ls_backbones}


def cmd_ls(args: argparse.Namespace) -> int:
    sections = [args.what] if args.what else list(LISTS)
    for i, name in enumerate(sections):
        if len(sections) > 1:
            print(("\n" if i else "") + f"{name}:")
        print("\n".join(LISTS[name]()))
    return 0


def add(sub: argparse._SubParsersAction) -> None:
    """Add `vlkd ls`."""
    p = sub.add_parser("ls", help="list recipes, presets, losses, downstream tasks or feature backbones",
                       description="List what the registries hold: recipes (`task:` values), shipped presets, "
                                   "registered losses (name, input kind, summary), fine-tuning tasks (head kind, "
                                   "official metrics) and feature backbones. Without WHAT, every section.")
    p.add_argument("what", nargs="?", choices=list(LISTS), metavar="WHAT",
                   help=f"one of {', '.join(LISTS)} (default: all)")
    p.set_defaults(func=cmd_ls)
