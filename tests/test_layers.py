"""The layering rule (docs/architecture.md): imports only point down

    errors, io, shards, outputs, preparation, rundir, hub, lock, preempt, heap, inference, card  <-  config  <-  data, video, models, losses  <-  eval, report
    <-  engine  <-  recipes  <-  quickstart  <-  cli

and no recipe imports another. Every import is read, function-level ones included; only the CLI package
(`vlkd.cli`, `vlkd.cli.*`) imports lazily (for start-up speed), and nothing else may hide an import inside a function.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import vlkd

SRC = Path(vlkd.__file__).parent
LEVELS = {
    "errors": 0, "io": 0, "shards": 0, "rundir": 0, "hub": 0, "lock": 0, "preempt": 0, "heap": 0, "outputs": 0, "preparation": 0, "inference": 0, "card": 0,
    "__init__": 0,
    "config": 1,
    "data": 2, "video": 2, "models": 2, "losses": 2,
    "eval": 3, "report": 3,
    "engine": 4,
    "recipes": 5,
    "quickstart": 6,
    "cli": 7, "__main__": 7,
}
LAZY_ALLOWED = "vlkd.cli"  # the package and its command modules


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def part(module: str) -> str:
    """The layer-owning part of a module name: vlkd.data.text.store -> data."""
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else "__init__"


def imports(path: Path) -> list[tuple[str, int, bool]]:
    """(imported vlkd module, line, inside a function?) for every import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nested: set[int] = set()
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            nested.update(id(n) for n in ast.walk(fn) if isinstance(n, (ast.Import, ast.ImportFrom)))
    found = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        found += [(n, node.lineno, id(node) in nested) for n in names if n == "vlkd" or n.startswith("vlkd.")]
    return found


def violations(files: list[Path]) -> list[str]:
    bad = []
    for path in files:
        me = module_name(path)
        for target, line, nested in imports(path):
            where = f"{path.relative_to(SRC.parent)}:{line}: {me} imports {target}"
            if LEVELS[part(target)] > LEVELS[part(me)]:
                bad.append(f"{where} (points up: {part(me)} is below {part(target)})")
            if part(me) == part(target) == "recipes" and len(me.split(".")) > 2 and len(target.split(".")) > 2 \
                    and me.split(".")[2] != target.split(".")[2]:
                bad.append(f"{where} (a recipe imports another recipe)")
            if nested and me != LAZY_ALLOWED and not me.startswith(LAZY_ALLOWED + "."):
                bad.append(f"{where} (inside a function: import it at the top)")
    return bad


def test_every_part_has_a_level() -> None:
    parts = {part(module_name(p)) for p in SRC.rglob("*.py")}
    assert parts <= set(LEVELS), sorted(parts - set(LEVELS))


def test_imports_point_down() -> None:
    assert violations(sorted(SRC.rglob("*.py"))) == []


@pytest.mark.parametrize("module, source, message", [
    ("eval/bad.py", "from vlkd.recipes.teacher import build\n", "points up"),
    ("recipes/bad.py", "from vlkd.recipes.mlm import Config\n", "recipe imports another"),
    ("models/bad.py", "def f():\n    from vlkd.losses import nst\n", "inside a function"),
])
def test_the_check_catches_an_upward_import(tmp_path: Path, module: str, source: str, message: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "vlkd"
    (fake / module).parent.mkdir(parents=True)
    (fake / module).write_text(source)
    monkeypatch.setattr(sys.modules[__name__], "SRC", fake)
    (found,) = violations([fake / module])
    assert message in found
