"""The quickstart's VideoQA stage: multimodal KD on DualVGR over the synthetic world, offline on a CPU.

world -> HCRN-layout features (MobileNetV2 frames + optical-flow motion) -> `prepare videoqa` (bundled
50-d GloVe) -> for each seed: a teacher (4 graph layers), a student distilled from it (1 graph layer,
feature KD), a student trained alone -> test accuracy of the val-selected models, overall, per question
type, and on the questions that need motion vs. appearance (from the world's ground truth); plus the
teacher trained with its motion features replaced by a constant (the motion ablation).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from statistics import mean, stdev

from vlkd.data.videoqa.prepare import load_split, prepare_videoqa
from vlkd.data.world.generate import ensure_world
from vlkd.eval.videoqa import evaluate_videoqa
from vlkd.io import read_json
from vlkd.recipes import load_config, run_training
from vlkd.video.extract import extract_features

SEEDS = (0, 1, 2)
CLIPS, FRAME_SIZE = 4, 64  # small, so features and 10 trainings fit in a few CPU minutes
MODELS = {  # name -> (description, overrides given a seed's teacher run)
    "teacher": ("teacher (4 graph layers)", lambda teacher: []),
    "student-kd": ("student (1 graph layer) + feature KD", lambda teacher: ["role=student", f"teacher={teacher}",
                                                                           "model.graph_layers=1"]),
    "student": ("student (1 graph layer), no KD", lambda teacher: ["role=student", "model.graph_layers=1"]),
    "teacher-no-motion": ("teacher, motion features replaced by a constant", lambda teacher: ["data.drop_motion=true"]),
}


def _needs_accuracy(predictions: Path, kinds: dict[str, dict]) -> dict[str, float]:
    """Accuracy on the questions that need motion / only appearance (the world's ground truth)."""
    rows = [json.loads(line) for line in predictions.read_text(encoding="utf-8").splitlines()]
    out = {}
    for need in ("appearance", "motion"):
        picked = [r["correct"] for r in rows if kinds[str(r["id"])]["needs"] == need]
        out[f"acc_{need}"] = sum(picked) / len(picked) if picked else float("nan")
    return out


def _train_and_score(name: str, seed: int, out: Path, base: list[str], teacher: Path,
                     kinds: dict[str, dict]) -> tuple[Path, dict[str, float]]:
    run = out / "videoqa" / f"{name}-seed{seed}"
    config = load_config("quickstart-videoqa", [f"output_dir={run}", f"seed={seed}", "resume=true", *base,
                                                *MODELS[name][1](teacher)])
    run_training(config)
    scores = evaluate_videoqa(run, "test")
    scores.update(_needs_accuracy(run / "eval-test.predictions.jsonl", kinds))
    return run, scores


def _cell(values: list[float]) -> str:
    values = [100 * v for v in values]
    return f"{mean(values):.1f} ± {stdev(values):.1f}" if len(values) > 1 else f"{values[0]:.1f}"


def videoqa_stage(out: Path, overrides: list[str], num_videos: int, world_seed: int = 0,
                  seeds: tuple[int, ...] = SEEDS) -> list[str]:
    """Run the stage into `out` (resumable); returns the report lines."""
    world = ensure_world(out / "world", num_videos, seed=world_seed)
    features = out / "world-hcrn"
    extract_features(world / "videos", features, layout="hcrn", num_clips=CLIPS, appearance_size=FRAME_SIZE,
                     motion_size=FRAME_SIZE)  # resumes: finished videos are skipped
    data = out / "world-videoqa-data"
    if not (data / "meta.json").is_file():
        prepare_videoqa("msrvtt-qa", world, "bundled:glove-50d", data, features=features, progress=False)
    meta = read_json(data / "meta.json")
    kinds = read_json(world / "world.json")["question_kinds"]
    base = [f"data.path={data}", f"data.features={features}", f"model.num_clips={CLIPS}", *overrides]

    scores: dict[str, list[dict[str, float]]] = {name: [] for name in MODELS}
    for seed in seeds:
        teacher, first = _train_and_score("teacher", seed, out, base, Path(), kinds)
        scores["teacher"].append(first)
        for name in ("student-kd", "student") + (("teacher-no-motion",) if seed == seeds[0] else ()):
            scores[name].append(_train_and_score(name, seed, out, base, teacher, kinds)[1])

    train_answers = Counter(q["answer"] for q in load_split(data, "train"))
    test = load_split(data, "test")
    top = train_answers.most_common(1)[0][0]
    majority = sum(q["answer"] == top for q in test) / len(test)
    types = sorted({key[4:] for s in scores["teacher"] for key in s if key.startswith("acc_")} - {"appearance", "motion"})
    header = ["model", "test accuracy", "appearance questions", "motion questions", *types]
    lines = [
        "## 5. VideoQA: multimodal knowledge distillation (DualVGR) on the synthetic world", "",
        f"- data: the world's MSVD-QA-style questions, {meta['splits']['train']['questions']:,} train / "
        f"{meta['splits']['val']['questions']:,} val / {len(test):,} test (split by video), {meta['num_answers'] - 2} "
        f"answers; features in HCRN's layout, {CLIPS} clips x 16 frames per video: MobileNetV2 frames "
        f"({FRAME_SIZE}x{FRAME_SIZE}) and optical-flow motion; bundled 50-d GloVe",
        f"- each model: `vlkd train quickstart-videoqa` (module dim {load_config('quickstart-videoqa', base).model.module_dim}), "
        "the checkpoint with the best **val** accuracy, scored once on **test**; "
        f"{len(seeds)} seeds, mean ± std (the motion ablation: seed {seeds[0]} only)",
        f"- baseline: always answering the most frequent train answer (`{top}`) scores {100 * majority:.1f}% on test", "",
        "| " + " | ".join(header) + " |", "|" + "---|" * len(header),
    ]
    for name, (label, _) in MODELS.items():
        cells = [_cell([s["accuracy"] for s in scores[name]]),
                 *(_cell([s[f"acc_{key}"] for s in scores[name]]) for key in ("appearance", "motion", *types))]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "Per-type columns are the question's first word; 'appearance' / 'motion' questions are those the "
              "world marks as answerable from one frame / needing motion. Run directories: "
              f"`{out / 'videoqa'}` (each has `eval-test.json` and `eval-test.predictions.jsonl`).", ""]
    return lines
