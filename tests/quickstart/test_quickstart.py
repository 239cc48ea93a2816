"""The quickstart pipeline on the real bundled corpus, shortened (the full run is `make quickstart`)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from vlkd.errors import VlkdError
from vlkd.eval.visual_knowledge import evaluate_visual_knowledge
from vlkd.quickstart import render_report, run_quickstart

SHORT = ["max_steps=6", "log_every=3", "save_every=3", "eval_every=3", "eval_batches=2", "batch_size=4",
         "progress=false"]
NUMBER = re.compile(r"(?<![\w.])-?\d[\d,]*(?:\.\d+)?")


def _leaves(tree: Any) -> list[float]:
    if isinstance(tree, dict):
        return [v for value in tree.values() for v in _leaves(value)]
    if isinstance(tree, list):
        return [v for value in tree for v in _leaves(value)]
    return [float(tree)] if isinstance(tree, (int, float)) and not isinstance(tree, bool) else []


def _report_numbers(text: str) -> list[str]:
    """Numbers in the report's table rows and bullet lines, outside code spans, links and headings."""
    found = []
    for line in text.splitlines():
        if not line.startswith(("|", "- ")):
            continue
        line = re.sub(r"`[^`]*`|\([^)]*\.png\)|[\d.]+/s\b|R@\d+|\d+L/\d+H|\d+-d\b|\d+x\d+|\(seed \d\)", " ", line)
        found += NUMBER.findall(line)
    return found


def _matches(number: str, values: list[float]) -> bool:
    digits = len(number.split(".")[1]) if "." in number else 0
    x = float(number.replace(",", ""))
    return any(abs(v - x) <= 0.5 * 10 ** -digits + 1e-9 for v in values)


def _card_value(run: Path, metric: str) -> float:
    """A metric from the evaluation table of RUN/final/README.md."""
    rows = [line.split("|") for line in (run / "final" / "README.md").read_text().splitlines()
            if line.startswith(f"| {metric} |")]
    assert len(rows) == 1, run
    return float(rows[0][2])


def test_quickstart_report_numbers_come_from_metrics_json_and_the_run_logs(tmp_path: Path) -> None:
    report = run_quickstart(tmp_path, overrides=SHORT, world_videos=12)
    text = report.read_text()
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    # the report is a pure rendering of metrics.json, and every number in its tables and bullets is one of them
    assert render_report(metrics) == text
    values = _leaves(metrics)
    numbers = _report_numbers(text)
    assert len(numbers) > 60
    assert [n for n in numbers if not _matches(n, values)] == []
    # every linked picture exists
    links = re.findall(r"!\[[^]]*\]\(([^)]+)\)", text)
    assert {"figures/teacher-curves.png", "figures/vidlankd-visual-knowledge.png", "figures/vidlankd-bars.png",
            "figures/vidlankd-perplexity.png", "figures/videoqa-bars.png", "teacher/retrieval.png"} <= set(links)
    assert all((tmp_path / link).read_bytes()[:4] == b"\x89PNG" for link in links)
    # metrics.json holds what the runs logged
    teacher = json.loads((tmp_path / "teacher" / "retrieval.json").read_text())
    assert {k: metrics["teacher"]["retrieval"][k] for k in ("r1", "r5", "r10")} == {k: teacher[k] for k in ("r1", "r5", "r10")}
    assert metrics["teacher"]["retrieval"]["gallery"] == metrics["teacher"]["held_out_videos"] == teacher["gallery_size"]
    vidlankd = metrics["vidlankd"]
    seeds, finetune_seeds = vidlankd["student_seeds"], vidlankd["finetune_seeds"]
    assert len(seeds) >= 2 and set(vidlankd["students"]) == {"mlm", "distill", "hidden_cos"}
    for name in ("mlm", "distill", "hidden_cos"):
        student = vidlankd["students"][name]
        assert student["valid_perplexity"]["values"] == [
            json.loads((tmp_path / f"{name}-seed{s}" / "results.json").read_text())["valid_perplexity"] for s in seeds]
        grounding = json.loads((tmp_path / f"{name}-seed{seeds[0]}" / "grounding.json").read_text())
        assert student["grounding_probe"]["r5"] == grounding["probe"]["r5"]
        # no quickstart student aligns a KD head with the teacher's tokens (NST: similarities only;
        # hidden_cos: the last hidden layer, no head): the head route is absent, with the evaluator's reason
        assert student["grounding_head"] is None and student["grounding_head_absent"]
        finetuned = json.loads((tmp_path / f"finetune-rt-polarity-{name}-seed{seeds[0]}" / "eval_results.json").read_text())
        assert student["finetune"]["rt-polarity"]["values"] == [100 * finetuned["per_seed"][str(s)]["accuracy"]
                                                                 for s in finetune_seeds]
        # the visual-knowledge table: the evaluator's accuracy on every seed's run
        for prop in ("colour", "shape", "size", "motion"):
            assert vidlankd["visual_knowledge"]["students"][name]["accuracy"][prop]["values"] == [
                100 * evaluate_visual_knowledge(str(tmp_path / f"{name}-seed{s}"), "world",
                                                tmp_path / "world" / "visual_knowledge")["parts"][prop]["accuracy"]
                for s in seeds]
    assert (tmp_path / f"distill-seed{seeds[0]}" / "final" / "kd_head" / "config.json").is_file()
    # the student corpus: the whole bundled Wikipedia + the world's training captions (not the held-out ones)
    # + the world's corpus, for every student alike
    sources = json.loads((tmp_path / "text-tokens" / "meta.json").read_text())["sources"]
    assert [Path(s["path"]).name for s in sources] == ["summaries_en-us.json", "world-train-captions.txt", "corpus.txt"]
    # VideoQA: four models x the profile's seeds (the ablation: its own), each scored on test with its
    # val-selected model
    models, both = metrics["videoqa"]["models"], metrics["videoqa"]["seeds"]
    assert len(both) >= 2
    for name, seeds in (("teacher", both), ("student-kd", both), ("student", both),
                        ("teacher-no-motion", metrics["videoqa"]["ablation_seeds"])):
        for i, seed in enumerate(seeds):
            run = tmp_path / "videoqa" / f"{name}-seed{seed}"
            assert (run / "best" / "selection.json").is_file()
            scored = json.loads((run / "eval-test.json").read_text())
            assert scored["split"] == "test" and models[name]["accuracy"]["values"][i] == 100 * scored["accuracy"]
    # the gap figure is computed from those per-seed accuracies; VideoQA ran on its own --events world
    for column in ("accuracy", "acc_several"):
        gap = metrics["videoqa"]["gap"][column]
        assert gap["gap"]["values"] == [t - s for t, s in zip(models["teacher"][column]["values"],
                                                              models["student"][column]["values"])]
        assert gap["kd_gain"]["values"] == [k - s for k, s in zip(models["student-kd"][column]["values"],
                                                                  models["student"][column]["values"])]
    videoqa_world = json.loads((tmp_path / "world-videoqa" / "world.json").read_text())
    assert videoqa_world["events"] is True and videoqa_world["num_videos"] == metrics["videoqa"]["videos"] == 12
    assert (tmp_path / "world" / "caption.json").is_file() and "events" not in json.loads(
        (tmp_path / "world" / "world.json").read_text())
    assert set(metrics["stage_seconds"]["cpu"]) == set(metrics["stage_seconds"]["wall"]) == {
        "world", "teacher_data", "teacher", "text", "bundled", "mlm", "distill", "hidden_cos", "visual_knowledge",
        "finetune", "comparison", "videoqa"}
    # every final/ has a model card, and where a card and metrics.json give the same quantity they agree
    finals = [p for p in tmp_path.rglob("final") if p.is_dir()]
    runs = (len(vidlankd["students"]) * (len(vidlankd["student_seeds"]) + len(finetune_seeds)) + 1  # + teacher
            + sum(len(model["accuracy"]["values"]) for model in models.values()))
    assert len(finals) == runs and all((p / "README.md").is_file() for p in finals)
    for name in ("mlm", "distill", "hidden_cos"):
        student = vidlankd["students"][name]
        assert [_card_value(tmp_path / f"{name}-seed{s}", "valid_perplexity") for s in vidlankd["student_seeds"]] == \
            student["valid_perplexity"]["values"]
        tuned = tmp_path / f"finetune-rt-polarity-{name}-seed{vidlankd['student_seeds'][0]}"
        assert [100 * _card_value(tuned / f"seed-{s}", "accuracy") for s in finetune_seeds] == \
            student["finetune"]["rt-polarity"]["values"]
    # a second run resumes: nothing is retrained, the report is rewritten identically
    again = run_quickstart(tmp_path, overrides=SHORT, world_videos=12)
    assert again.read_text() == text
    # and with the two pipelines in two processes (--jobs 2) it collects the same numbers from the runs
    again = run_quickstart(tmp_path, overrides=SHORT, world_videos=12, jobs=2)
    parallel = json.loads((tmp_path / "metrics.json").read_text())
    assert parallel["jobs"] == 2
    assert {k: v for k, v in parallel.items() if k not in ("jobs", "stage_seconds")} == \
        {k: v for k, v in metrics.items() if k not in ("jobs", "stage_seconds")}
    assert again.read_text().split("## Stage times")[0] == text.split("## Stage times")[0]


def test_only_and_profile_are_checked(tmp_path: Path) -> None:
    with pytest.raises(VlkdError, match="--only"):
        run_quickstart(tmp_path, only="everything")
    with pytest.raises(VlkdError, match="profile"):
        run_quickstart(tmp_path, profile="huge")
    with pytest.raises(VlkdError, match="--jobs"):
        run_quickstart(tmp_path, jobs=3)
