"""`vlkd train`: train with the recipe a config's `task:` names."""

from __future__ import annotations

import argparse

from vlkd.cli.common import RegistryChoices


def preset_names() -> list[str]:
    """The shipped presets (`config.list_presets`), for CONFIG."""
    from vlkd.config import list_presets

    return list(list_presets())


def cmd_train(args: argparse.Namespace) -> int:
    from vlkd.recipes import load_config, run_training

    config = load_config(args.config, args.overrides)
    run_dir = run_training(config)
    print(f"run directory: {run_dir}")
    return 0


def add(sub: argparse._SubParsersAction) -> None:
    """Add `vlkd train`."""
    p = sub.add_parser("train", help="train with a recipe chosen by the config's `task:`",
                       description="CONFIG is a YAML file or a preset name (e.g. mlm-tiny, mlm-small, mlm-base). "
                                   "Overrides are dotted key=value pairs, e.g. lr=2e-4 model.num_layers=4 "
                                   "resume=true. Multi-GPU: accelerate launch -m vlkd train CONFIG ...")
    p.add_argument("config", metavar="CONFIG", choices=RegistryChoices(preset_names),
                   help="YAML config path or preset name: %(choices)s")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    p.set_defaults(func=cmd_train, every_process=True)
