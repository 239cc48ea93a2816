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
5. VideoQA on a world of its own with several events per video (`prepare world --events`, the profile's
   size, the same seed; the default world stays as it is): DualVGR teacher, distilled student, student alone, the gap
   between teacher and student and the share KD closes (`vlkd.quickstart.videoqa`);
then OUT/report.md (the story, with figures in OUT/figures/) and OUT/metrics.json (every number of the
report under stable keys, and the stages' wall times). It sits above the recipes: it runs them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vlkd.data.text.store import TokenStore
from vlkd.data.world.generate import ensure_world
from vlkd.errors import VlkdError
from vlkd.io import read_json, write_json_atomic, write_text_atomic
from vlkd.quickstart.reuse import check_reused_stores
from vlkd.quickstart.profile import PROFILES, QUICK, STUDENTS, Profile
from vlkd.quickstart.schedule import Task, run_tasks
from vlkd.quickstart.timing import StageClock
from vlkd.quickstart.videoqa import videoqa_figure, videoqa_section, videoqa_stage
from vlkd.quickstart.vidlankd import (
    TEXT_STORE, WORLD_SEED, bundled_stage, comparison_summary, run_name, student_comparison, student_finetune,
    student_runs, student_stage,
    students_section, teacher_data_stage, teacher_section, teacher_stage, text_stage, vidlankd_figures,
    visual_knowledge_stage)

STAGE_LABELS = {
    "world": "generate the synthetic world", "teacher_data": "teacher: features and samples",
    "teacher": "teacher: training, retrieval", "text": "token store",
    "visual_knowledge": "visual-knowledge probe of every student run and the teacher",
    "bundled": "prepare the bundled fine-tuning task",
    "finetune": "fine-tuning of every student", "comparison": "perplexity and grounding of every student",
    "videoqa": "VideoQA: its world, features, data, every model and seed",
}
PIPELINES = ("vidlankd", "videoqa")


def _tasks(out: Path, profile: Profile, pipelines: list[str], extra: list[str], world: Path | None,
           videoqa_videos: int) -> list[Task]:
    """Every stage as a task, in priority order: the long VideoQA stage and the teacher's chain first."""
    tasks = []
    if "videoqa" in pipelines:
        tasks.append(Task("videoqa", videoqa_stage, (out, videoqa_videos, WORLD_SEED, profile, extra)))
    if "vidlankd" in pipelines:
        teacher = out / "teacher"
        tasks += [Task("teacher_data", teacher_data_stage, (out, world, profile)),
                  Task("text", text_stage, (out, world), after=("teacher_data",)),
                  Task("teacher", teacher_stage, (out, world, profile, extra), after=("teacher_data",)),
                  Task("bundled", bundled_stage, (out, profile))]
        # longest first (a worker left with one long task at the end idles the other): every student run, then
        # the fine-tunings (each after its student's first run), then the short evaluations
        tasks += [Task(run_name(name, seed), student_stage, (out, name, teacher, profile, extra, seed),
                       after=("text",) if name == "mlm" else ("text", "teacher"), stage=name)
                  for seed in profile.student_seeds for name in profile.students]
        first = {name: run_name(name, profile.student_seeds[0]) for name in profile.students}
        tasks += [Task(f"finetune-{name}", student_finetune, (out, name, profile, extra),
                       after=("bundled", first[name]), stage="finetune") for name in profile.students]
        tasks += [Task(f"comparison-{name}", student_comparison, (out, name, teacher, profile),
                       after=("teacher", *(run_name(name, s) for s in profile.student_seeds)), stage="comparison")
                  for name in profile.students]
        runs = student_runs(out, profile)
        tasks.append(Task("visual_knowledge", visual_knowledge_stage, (runs, teacher, world),
                          after=("teacher", *(run.name for seed_runs in runs.values() for run in seed_runs))))
    return tasks


def _stages(out: Path, profile: Profile, only: str | None, extra: list[str], world_videos: int | None,
            jobs: int) -> dict[str, Any]:
    """VidLanKD's world, then every other stage as tasks on `jobs` workers (schedule.py). Returns the metrics
    with every stage's times: per row of the stage table, the sum over its tasks. `world_videos` (a test's
    small run) sizes both pipelines' worlds; None: the profile's sizes."""
    clock = StageClock(out)
    pipelines = [p for p in PIPELINES if only in (None, p)]
    world = None
    if "vidlankd" in pipelines:
        with clock.stage("world"):
            world = ensure_world(out / "world", world_videos or profile.world_videos, seed=WORLD_SEED)
    tasks = _tasks(out, profile, pipelines, extra, world, world_videos or profile.videoqa_world_videos)
    with clock.stage("tasks"):
        results = run_tasks(tasks, jobs, lambda task, result, wall, cpu: clock.record(task.name, wall, cpu))
    metrics: dict[str, Any] = {"profile": profile.name, "jobs": jobs}
    if "vidlankd" in pipelines:
        runs = student_runs(out, profile)
        metrics["teacher"] = results["teacher"]
        vidlankd = comparison_summary(out, {name: {**results[f"comparison-{name}"], "finetune": results[f"finetune-{name}"]}
                                            for name in profile.students}, profile, extra)
        vidlankd["visual_knowledge"] = results["visual_knowledge"]
        store = TokenStore(out / TEXT_STORE)
        vidlankd["store"] = {k: store.meta[k] for k in ("num_tokens", "num_blocks", "block_size", "vocab_size",
                                                        "tokenizer")}
        vidlankd["figures"] = vidlankd_figures(out, runs, vidlankd)
        metrics["vidlankd"] = vidlankd
    if "videoqa" in pipelines:
        metrics["videoqa"] = results["videoqa"]
        metrics["videoqa"]["figure"] = videoqa_figure(out, metrics["videoqa"])
    first = ["world"] if world is not None else []
    seconds: dict[str, dict[str, float]] = {"wall": {n: clock.wall[n] for n in first},
                                            "cpu": {n: clock.cpu[n] for n in first}}
    for task in tasks:
        for kind, times in (("wall", clock.wall), ("cpu", clock.cpu)):
            seconds[kind][task.row] = round(seconds[kind].get(task.row, 0.0) + times[task.name], 1)
    seconds["total"] = {"wall": round(sum(clock.wall[n] for n in first) + clock.wall["tasks"], 1),
                        "cpu": round(sum(seconds["cpu"].values()), 1)}
    metrics["stage_seconds"] = seconds
    return metrics


STAGE_ORDER = ("world", "teacher_data", "teacher", "text", *STUDENTS, "visual_knowledge", "bundled", "finetune",
               "comparison", "videoqa")


def _time_section(seconds: dict[str, dict[str, float]], jobs: int) -> list[str]:
    wall, cpu = seconds["wall"], seconds["cpu"]
    rows = [f"| {name} ({STAGE_LABELS.get(name, 'training: ' + STUDENTS[name][0] if name in STUDENTS else name)}) | "
            f"{wall[name]:.1f} | {cpu[name]:.1f} |"
            for name in sorted(wall, key=lambda n: STAGE_ORDER.index(n) if n in STAGE_ORDER else 99)]
    return ["## Stage times", "",
            "Seconds per stage of the run that did the work, summed over its tasks (a student's seeds, every "
            "student's comparison); a resumed task keeps its first times (`OUT/stage-seconds.json`). CPU is the "
            "task's process and its finished children, user + system. "
            + (f"The tasks ran on {jobs} worker processes at once, each on its share of the cores, so the "
               "stages' wall times add up to more than the total, the world plus the span of every task. "
               if jobs > 1 else "")
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
    apply to every training stage and `world_videos` sizes both synthetic worlds, e.g. to shorten a test run.
    `jobs=2` runs the stages on two worker processes, each on half the cores, every stage as soon as what it
    needs is done (schedule.py); the numbers then differ from `jobs=1` (reductions over fewer threads: last
    digits for VidLanKD, up to 2 points for VideoQA's small data).
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
    metrics = _stages(out, chosen, only, list(overrides or []), world_videos, jobs)
    write_json_atomic(out / "metrics.json", metrics)
    report = out / "report.md"
    write_text_atomic(report, render_report(read_json(out / "metrics.json")))  # exactly what the file holds
    return report


__all__ = ["QUICK", "run_quickstart", "render_report"]
