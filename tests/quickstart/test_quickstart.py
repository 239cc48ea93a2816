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
    # the student corpus: the whole bundled Wikipedia + the world's training captions (not the held-out ones)
    sources = json.loads((tmp_path / "text-tokens" / "meta.json").read_text())["sources"]
    assert [Path(s["path"]).name for s in sources] == ["summaries_en-us.json", "world-train-captions.txt"]
    assert "held-out caption -> video retrieval over" in text and "R@5 **" in text
    # baseline and distilled student at equal compute, compared three ways
    assert "## 4. Baseline vs. distilled student" in text
    for name in ("mlm", "distill"):
        assert (tmp_path / name / "final" / "model.safetensors").is_file() and (tmp_path / name / "curves.png").is_file()
        grounding = json.loads((tmp_path / name / "grounding.json").read_text())
        assert grounding["probe"]["r5_chance"] > 0 and (grounding["head"] is None) == (name == "mlm")
        summary = json.loads((tmp_path / f"finetune-{name}" / "eval_results.json").read_text())
        assert summary["seeds"] == [0, 1, 2]
    assert (tmp_path / "distill" / "final" / "kd_head" / "config.json").is_file()
    assert "| text-only BERT (MLM) |" in text and "| distilled student (MLM + NST) |" in text
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
