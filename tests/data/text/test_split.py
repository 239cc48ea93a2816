"""Opening a token store to train on: the special-token ids training needs are checked up front."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import run_cli


@pytest.mark.parametrize("damage", ["drop-mask", "null-cls"])
def test_a_store_without_special_ids_is_one_line_exit_2(token_store: Path, tmp_path: Path, damage: str) -> None:
    store = tmp_path / "store"
    shutil.copytree(token_store, store)
    meta = json.loads((store / "meta.json").read_text())
    if damage == "drop-mask":
        del meta["special_ids"]["mask"]
    else:
        meta["special_ids"]["cls"] = None
    (store / "meta.json").write_text(json.dumps(meta))
    out = tmp_path / "run"
    result = run_cli("train", "mlm-tiny", f"data.train={store}", f"output_dir={out}", "max_steps=1",
                     "progress=false")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "special_ids" in lines[0] and str(store / "meta.json") in lines[0], result.stderr
    assert ("mask" if damage == "drop-mask" else "cls") in lines[0]
    assert not out.exists()
