"""The quickstart pipeline on the real bundled corpus, shortened (the full run is `make quickstart`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vlkd.errors import VlkdError
from vlkd.quickstart import run_quickstart


def test_quickstart_builds_store_trains_and_reports(tmp_path: Path) -> None:
    short = ["max_steps=6", "log_every=3", "save_every=3", "eval_every=3", "eval_batches=2", "batch_size=8",
             "progress=false"]
    report = run_quickstart(tmp_path, overrides=short, world_videos=12)
    text = report.read_text()
    assert "1,010,142 tokens" in text  # the whole bundled Wikipedia, bert-base-uncased vocabulary
    assert "held-out perplexity" in text and (tmp_path / "mlm" / "final" / "model.safetensors").is_file()
    assert (tmp_path / "mlm" / "curves.png").is_file()
    assert "dev accuracy" in text and (tmp_path / "finetune-rt-polarity" / "results.json").is_file()
    assert "held-out caption -> video retrieval over" in text and "R@5 **" in text
    assert (tmp_path / "teacher" / "retrieval.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "teacher" / "final" / "text" / "config.json").is_file()
    # VideoQA: three models x 3 seeds + the motion ablation, each scored on test with its val-selected model
    assert "## 5. VideoQA" in text and "| student (1 graph layer) + feature KD |" in text
    runs = sorted(p.name for p in (tmp_path / "videoqa").iterdir())
    assert runs == sorted([f"{m}-seed{s}" for m in ("teacher", "student-kd", "student") for s in (0, 1, 2)]
                          + ["teacher-no-motion-seed0"])
    for run in runs:
        assert (tmp_path / "videoqa" / run / "best" / "selection.json").is_file()
        assert json.loads((tmp_path / "videoqa" / run / "eval-test.json").read_text())["split"] == "test"
    # a second run resumes: nothing is retrained, the report is rewritten
    again = run_quickstart(tmp_path, overrides=short, world_videos=12)
    assert again.read_text() == text


def test_only_picks_one_method(tmp_path: Path) -> None:
    with pytest.raises(VlkdError, match="--only"):
        run_quickstart(tmp_path, only="everything")
