"""Atomic writes and a full disk: every write site (checkpoint: tests/engine, token store, report, features:
tests/video) keeps the previous state and gives one line naming the path; safetensors files are checked
before a model is loaded from them."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest
import torch
from matplotlib.figure import Figure
from safetensors.torch import save_file
from transformers import BertConfig, BertModel

from vlkd.cli import main
from vlkd.data.text import store as store_module
from vlkd.data.text.store import build_token_store
from vlkd.errors import VlkdError
from vlkd.io import atomic_path, check_safetensors, is_disk_full, write_text_atomic
from vlkd.models.bert import ModelConfig, build_masked_lm
from vlkd.report import summarize_run

ENOSPC = OSError(errno.ENOSPC, "No space left on device")


def test_disk_full_is_recognised_behind_torch_and_safetensors_errors() -> None:
    assert is_disk_full(ENOSPC) and is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    try:  # torch.save through a file raises a RuntimeError chained to the OSError
        try:
            raise ENOSPC
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")
    except RuntimeError as e:
        assert is_disk_full(e)
    assert is_disk_full(Exception("Error while serializing: I/O error: No space left on device (os error 28)"))
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied")) and not is_disk_full(ValueError("x"))


def test_disk_full_inside_an_atomic_write_keeps_the_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "report.md"
    write_text_atomic(target, "previous")
    with pytest.raises(VlkdError, match=rf"^{target}: no space left on device .*previous state is kept"):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise ENOSPC
    assert target.read_text() == "previous" and [p.name for p in tmp_path.iterdir()] == ["report.md"]


def test_disk_full_while_building_a_token_store_leaves_no_partial_store(wiki_txt: Path, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    def add(self, id_lists):
        self.f.write(b"\0" * 64)
        raise ENOSPC

    monkeypatch.setattr(store_module._BlockWriter, "add", add)
    out = tmp_path / "store"
    with pytest.raises(VlkdError, match=rf"^{out}: no space left on device"):
        build_token_store([wiki_txt], "bundled:minilm", out, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_disk_full_while_writing_a_report_keeps_the_previous_one(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "loss": 1.0 / s}) + "\n" for s in (1, 2)))
    summarize_run(run)
    before = (run / "curves.png").read_bytes()

    def savefig(self, fname, **kwargs):
        Path(fname).write_bytes(b"\x89PNG half")
        raise ENOSPC

    monkeypatch.setattr(Figure, "savefig", savefig)
    with pytest.raises(VlkdError, match=r"curves.png: no space left on device"):
        summarize_run(run)
    assert (run / "curves.png").read_bytes() == before
    assert sorted(p.name for p in run.iterdir()) == ["curves.png", "metrics.jsonl", "report.md"]


def test_check_safetensors_names_a_truncated_or_foreign_file(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    save_file({"w": torch.zeros(64, 64)}, str(path))
    check_safetensors(path)
    data = path.read_bytes()
    path.write_bytes(data[:-100])
    with pytest.raises(VlkdError, match=rf"^{path}: truncated safetensors file \({len(data) - 100} bytes, its "
                                        rf"header promises {len(data)}\)"):
        check_safetensors(path)
    path.write_bytes(data[:20])
    with pytest.raises(VlkdError, match="truncated safetensors file"):
        check_safetensors(path)
    path.write_bytes(b"\x10\0\0\0\0\0\0\0not json at all!")
    with pytest.raises(VlkdError, match="not a safetensors file"):
        check_safetensors(path)


def test_a_truncated_model_behind_finetune_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    model = tmp_path / "model"
    BertModel(BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                         vocab_size=100)).save_pretrained(model)
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:5000])
    capsys.readouterr()  # (save_pretrained's progress bar)
    data = Path(__file__).parent / "fixtures" / "finetune" / "SST-2"
    assert main(["finetune", "--task", "sst2", "--data-dir", str(data), "--model", str(model), "--out",
                 str(tmp_path / "out"), "max_steps=1"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"vlkd: error: {weights}: truncated safetensors file"), lines
    assert not (tmp_path / "out").exists()


def test_a_truncated_model_behind_init_from_is_one_line(tmp_path: Path) -> None:
    BertModel(BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                         vocab_size=100)).save_pretrained(tmp_path / "enc")
    weights = tmp_path / "enc" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(VlkdError, match=rf"^{weights}: truncated safetensors file"):
        build_masked_lm(ModelConfig(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32,
                                    init_from=str(tmp_path / "enc")))


def test_an_error_quoting_a_line_break_stays_one_line() -> None:
    from vlkd.errors import VlkdError

    error = VlkdError('missing column (the header has: "\nlsmdc0)', "dir/\nval.csv")
    assert str(error) == 'dir/\\nval.csv: missing column (the header has: "\\nlsmdc0)'
