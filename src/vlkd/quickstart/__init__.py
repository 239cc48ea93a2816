"""`vlkd quickstart`: the embedded default, offline on a CPU, from bundled real data (README.md).

Stages (each resumable: re-running continues where a kill stopped it):
1. the video-language teacher on a generated synthetic world: world -> features -> samples -> training,
   with retrieval against a gallery of every held-out video and its grounding grid (`vlkd.quickstart.vidlankd`);
2. a token store from the bundled Wikipedia lead sections + the world's training captions + its corpus;
3. a tiny text-only BERT trained with masked language modelling (the VidLanKD baseline) and students of
   the same size distilled from the teacher (NST and hidden_cos; `--full`: every objective) at equal
   compute, each over several training seeds;
4. all compared: visual knowledge of the world's probe kinds (docs/visual-knowledge.md), held-out
   perplexity, grounding of their text in the teacher's video space (two routes), fine-tuning on a
   bundled task;
5. VideoQA on a world of its own with several events per video (`prepare world --events`, the same size and
   seed; the default world stays as it is): DualVGR teacher, distilled student, student alone, the gap
   between teacher and student and the share KD closes (`vlkd.quickstart.videoqa`);
then OUT/report.md (the story, with figures in OUT/figures/) and OUT/metrics.json (every number of the
report under stable keys, and the stages' wall times). It sits above the recipes: it runs them.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch

from vlkd.data.world.generate import ensure_world
from vlkd.errors import VlkdError
from vlkd.io import read_json, write_json_atomic, write_text_atomic
from vlkd.quickstart.reuse import check_reused_stores
from vlkd.quickstart.profile import PROFILES, QUICK, STUDENTS, Profile
from vlkd.quickstart.timing import StageClock
from vlkd.quickstart.videoqa import videoqa_figure, videoqa_section, videoqa_stage
from vlkd.quickstart.vidlankd import (
    TEACHER_DATA, WORLD_SEED, comparison_stage, student_stage, students_section, teacher_section, teacher_stage,
    text_stage, vidlankd_figures, visual_knowledge_stage, world_captions)

STAGE_LABELS = {
    "world": "generate the synthetic world", "teacher": "teacher: features, samples, training, retrieval",
    "text": "token store", "visual_knowledge": "visual-knowledge probe of every student run and the teacher",
    "comparison": "grounding and fine-tuning of every student",
    "videoqa": "VideoQA: its world, features, data, every model and seed",
}


PIPELINES = ("vidlankd", "videoqa")


def _pipeline(out: Path, profile: Profile, pipeline: str, extra: list[str], world: Path,
              threads: int | None = None) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
    """One method's stages (resumable), timed on its own clock; returns (its metrics, its stage times).
    `threads` caps torch's threads: two pipelines at once share the cores."""
    if threads is not None:
        torch.set_num_threads(threads)
    clock = StageClock(out, f"stage-seconds-{pipeline}")
    metrics: dict[str, Any] = {}
    if pipeline == "vidlankd":
        with clock.stage("teacher"):
            metrics["teacher"] = teacher_stage(out, world, profile, extra)
        with clock.stage("text"):
            store = text_stage(out, world_captions(world, out / TEACHER_DATA, out), world / "corpus.txt")
        runs: dict[str, list[Path]] = {name: [] for name in profile.students}
        for name in profile.students:
            with clock.stage(name):
                for seed in profile.student_seeds:
                    runs[name].append(student_stage(out, name, store, out / "teacher", profile, extra, seed))
        with clock.stage("visual_knowledge"):
            knowledge = visual_knowledge_stage(runs, out / "teacher", world)
        with clock.stage("comparison"):
            metrics["vidlankd"] = comparison_stage(out, runs, out / "teacher", profile, extra)
        metrics["vidlankd"]["visual_knowledge"] = knowledge
        metrics["vidlankd"]["store"] = {k: store.meta[k] for k in
                                        ("num_tokens", "num_blocks", "block_size", "vocab_size", "tokenizer")}
        metrics["vidlankd"]["figures"] = vidlankd_figures(out, runs, metrics["vidlankd"])
    else:
        with clock.stage("videoqa"):
            metrics["videoqa"] = videoqa_stage(out, world, profile, extra)
        metrics["videoqa"]["figure"] = videoqa_figure(out, metrics["videoqa"])
    return metrics, clock.as_dict()


def _stages(out: Path, profile: Profile, only: str | None, extra: list[str], world_videos: int,
            jobs: int) -> dict[str, Any]:
    """The world, then each pipeline: one after the other, or (jobs=2) both at once in two processes that
    split the cores (VideoQA's small models gain only 1.26x from a second thread, so the pair finishes
    sooner: 9m11s vs. 9m47s measured). Returns the metrics with every stage's times."""
    clock = StageClock(out)
    with clock.stage("world"):
        world = ensure_world(out / "world", world_videos, seed=WORLD_SEED)
    pipelines = [p for p in PIPELINES if only in (None, p)]
    if jobs > 1 and len(pipelines) > 1:
        threads = max(1, torch.get_num_threads() // len(pipelines))
        with ProcessPoolExecutor(len(pipelines), mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(_pipeline, out, profile, p, extra, world, threads) for p in pipelines]
            parts = [f.result() for f in futures]
    else:
        parts = [_pipeline(out, profile, p, extra, world) for p in pipelines]
    metrics: dict[str, Any] = {"profile": profile.name, "jobs": jobs if len(pipelines) > 1 else 1}
    seconds = clock.as_dict()
    pipeline_walls = []
    for part, times in parts:
        metrics |= part
        pipeline_walls.append(sum(times["wall"].values()))
        for kind in seconds:
            seconds[kind] |= times[kind]
    # pipelines run at once overlap: the total wall time is the world plus the longer of them
    wall = seconds["wall"].get("world", 0.0) + (max(pipeline_walls) if metrics["jobs"] > 1 else sum(pipeline_walls))
    seconds["total"] = {"wall": round(wall, 1), "cpu": round(sum(seconds["cpu"].values()), 1)}
    metrics["stage_seconds"] = seconds
    return metrics


STAGE_ORDER = ("world", "teacher", "text", *STUDENTS, "visual_knowledge", "comparison", "videoqa")


def _time_section(seconds: dict[str, dict[str, float]], jobs: int) -> list[str]:
    wall, cpu = seconds["wall"], seconds["cpu"]
    rows = [f"| {name} ({STAGE_LABELS.get(name, 'training: ' + STUDENTS[name][0] if name in STUDENTS else name)}) | "
            f"{wall[name]:.1f} | {cpu[name]:.1f} |"
            for name in sorted(wall, key=lambda n: STAGE_ORDER.index(n) if n in STAGE_ORDER else 99)]
    return ["## Stage times", "",
            "Seconds per stage of the run that did the work (a resumed stage keeps its first times; "
            "`OUT/stage-seconds*.json`). CPU is the stage's process and its finished children, user + system. "
            + ("The two pipelines ran at once (`--jobs 2`), each on half the cores: the total wall time is the "
               "world plus the longer pipeline. " if jobs > 1 else "")
            + "The wall time grows with whatever else the machine runs.", "",
            "| stage | wall seconds | CPU seconds |", "|---|---|---|", *rows,
            f"| total | {seconds['total']['wall']:.1f} | {seconds['total']['cpu']:.1f} |", ""]


def render_report(metrics: dict[str, Any]) -> str:
    """The story, from metrics.json's numbers only."""
    full = metrics["profile"] == "full"
    lines = [f"# vlkd quickstart{' --full' if full else ''}", "",
             "Offline, on the CPU, from bundled real data and a generated synthetic video world. Every number below "
             "is in `metrics.json` beside this file; every table row names the command that reproduces it "
             "(OUT is this directory).", ""]
    if "teacher" in metrics:
        lines += teacher_section(metrics["teacher"])
        lines += students_section(metrics["vidlankd"], metrics["vidlankd"]["store"], metrics["vidlankd"]["figures"])
    if "videoqa" in metrics:
        lines += videoqa_section(metrics["videoqa"], metrics["videoqa"]["figure"])
    lines += _time_section(metrics["stage_seconds"], metrics.get("jobs", 1))
    return "\n".join(lines) + "\n"


def run_quickstart(out: str | Path, only: str | None = None, overrides: list[str] | None = None,
                   world_videos: int | None = None, profile: str = "quick", jobs: int = 1) -> Path:
    """Run every available stage into `out`; write `out/report.md` and `out/metrics.json`.

    `profile` is quick (the default, <= 10 minutes on 2 cores) or full (`--full`); `overrides` (key=value)
    apply to every training stage and `world_videos` sizes the synthetic world, e.g. to shorten a test run.
    `jobs=2` runs the two pipelines at once, each on half the cores; the numbers then differ from `jobs=1`
    (reductions over fewer threads: last digits for VidLanKD, up to 2 points for VideoQA's small data).
    """
    out = Path(out)
    if only not in (None, "vidlankd", "videoqa"):
        raise VlkdError(f"--only must be vidlankd or videoqa, got {only!r}")
    if profile not in PROFILES:
        raise VlkdError(f"unknown quickstart profile {profile!r} (choose from {sorted(PROFILES)})")
    if jobs not in (1, 2):
        raise VlkdError(f"--jobs must be 1 or 2, got {jobs}")
    chosen = PROFILES[profile]
    check_reused_stores(out, [p for p in PIPELINES if only in (None, p)])
    metrics = _stages(out, chosen, only, list(overrides or []), world_videos or chosen.world_videos, jobs)
    write_json_atomic(out / "metrics.json", metrics)
    report = out / "report.md"
    write_text_atomic(report, render_report(read_json(out / "metrics.json")))  # exactly what the file holds
    return report


__all__ = ["QUICK", "run_quickstart", "render_report"]
