"""The quickstart's VideoQA stage: multimodal KD on DualVGR over the synthetic world, offline on a CPU.

world -> HCRN-layout features (MobileNetV2 frames + optical-flow motion) -> `prepare videoqa` (bundled
50-d GloVe) -> for each seed: a teacher (4 graph layers, trained longer), a student distilled from it
(1 graph layer, feature KD), the same student trained alone, and the teacher with its motion features
replaced by a constant (the motion ablation) -> test accuracy of the val-selected models, overall, per
question type, and on the questions that need motion vs. appearance (from the world's ground truth).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from vlkd.data.videoqa.prepare import load_split, prepare_videoqa
from vlkd.eval.videoqa import evaluate_videoqa
from vlkd.io import read_json
from vlkd.quickstart.profile import Profile
from vlkd.quickstart.vidlankd import cell, spread
from vlkd.recipes import load_config, run_training
from vlkd.report import BarPanel, plot_bars, summarize_run
from vlkd.rundir import RunDir
from vlkd.video.extract import extract_features

CLIPS, FRAME_SIZE = 4, 64  # small, so features and a dozen trainings fit in a few CPU minutes
# name -> (label, role: teacher or student, overrides given a seed's teacher run)
MODELS = {
    "teacher": ("teacher (4 graph layers)", "teacher", lambda teacher: []),
    "student-kd": ("student (1 graph layer) + feature KD", "student",
                   lambda teacher: ["role=student", f"teacher={teacher}", "model.graph_layers=1"]),
    "student": ("student (1 graph layer), no KD", "student", lambda teacher: ["role=student", "model.graph_layers=1"]),
    "teacher-no-motion": ("teacher, motion replaced by a constant", "teacher", lambda teacher: ["data.drop_motion=true"]),
}
VIDEOQA_DATA = "world-videoqa-data"  # under OUT (reuse.py checks it first)
NEEDS = ("appearance", "motion")


def _needs_accuracy(predictions: Path, kinds: dict[str, dict]) -> dict[str, float]:
    """Accuracy on the questions that need motion / only appearance (the world's ground truth)."""
    rows = [json.loads(line) for line in predictions.read_text(encoding="utf-8").splitlines()]
    out = {}
    for need in NEEDS:
        picked = [r["correct"] for r in rows if kinds[str(r["id"])]["needs"] == need]
        out[f"acc_{need}"] = sum(picked) / len(picked) if picked else float("nan")
    return out


def _train_and_score(name: str, seed: int, out: Path, base: list[str], teacher: Path,
                     kinds: dict[str, dict]) -> tuple[Path, dict[str, float]]:
    run = out / "videoqa" / f"{name}-seed{seed}"
    config = load_config("quickstart-videoqa", [f"output_dir={run}", f"seed={seed}", "resume=true", *base[MODELS[name][1]],
                                                *MODELS[name][2](teacher)])
    run_training(config)
    summarize_run(run)
    scores = evaluate_videoqa(run, "test")
    scores.update(_needs_accuracy(RunDir(run).evaluation("test").with_suffix(".predictions.jsonl"), kinds))
    return run, scores


def videoqa_stage(out: Path, world: Path, profile: Profile, overrides: list[str]) -> dict[str, Any]:
    """Run the stage into `out` (resumable); returns its numbers (accuracies in %)."""
    features = out / "world-hcrn"
    extract_features(world / "videos", features, layout="hcrn", num_clips=CLIPS, appearance_size=FRAME_SIZE,
                     motion_size=FRAME_SIZE)  # resumes: finished videos are skipped
    data = out / VIDEOQA_DATA
    if not (data / "meta.json").is_file():
        prepare_videoqa("msrvtt-qa", world, "bundled:glove-50d", data, features=features, progress=False)
    meta = read_json(data / "meta.json")
    kinds = read_json(world / "world.json")["question_kinds"]
    shared = [f"data.path={data}", f"data.features={features}", f"model.num_clips={CLIPS}"]
    base = {"teacher": [*shared, f"epochs={profile.videoqa_teacher_epochs}", *overrides],
            "student": [*shared, f"epochs={profile.videoqa_student_epochs}", *overrides]}

    scores: dict[str, list[dict[str, float]]] = {name: [] for name in MODELS}
    for seed in profile.videoqa_seeds:
        teacher, first = _train_and_score("teacher", seed, out, base, Path(), kinds)
        scores["teacher"].append(first)
        for name in ("student-kd", "student") + (("teacher-no-motion",) if seed in profile.videoqa_ablation_seeds else ()):
            scores[name].append(_train_and_score(name, seed, out, base, teacher, kinds)[1])

    train_answers = Counter(q["answer"] for q in load_split(data, "train"))
    test = load_split(data, "test")
    top = train_answers.most_common(1)[0][0]
    types = sorted({key[4:] for s in scores["teacher"] for key in s if key.startswith("acc_")} - set(NEEDS))
    columns = ["accuracy", *(f"acc_{k}" for k in (*NEEDS, *types))]
    teacher_config = load_config("quickstart-videoqa", base["teacher"])
    return {
        "questions": {split: meta["splits"][split]["questions"] for split in ("train", "val")} | {"test": len(test)},
        "answers": meta["num_answers"] - 2, "clips": CLIPS, "frame_size": FRAME_SIZE,
        "module_dim": teacher_config.model.module_dim, "seeds": list(profile.videoqa_seeds),
        "ablation_seeds": [s for s in profile.videoqa_seeds if s in profile.videoqa_ablation_seeds],
        "teacher_epochs": profile.videoqa_teacher_epochs, "student_epochs": profile.videoqa_student_epochs,
        "majority_answer": top, "majority_pct": 100 * sum(q["answer"] == top for q in test) / len(test),
        "question_types": types,
        "models": {name: {"label": MODELS[name][0],
                          **{c: spread([100 * s[c] for s in scores[name]]) for c in columns}} for name in MODELS},
    }


def _only(values: list[float], m: dict[str, Any]) -> str:
    return f" (seed {m['ablation_seeds'][0]} only)" if len(values) == 1 and len(m["seeds"]) > 1 else ""


def videoqa_figure(out: Path, m: dict[str, Any]) -> str:
    columns = ["accuracy", *(f"acc_{k}" for k in (*NEEDS, *m["question_types"]))]
    names = ["all", *NEEDS, *m["question_types"]]
    panel = BarPanel(f"test accuracy, mean ± std over {len(m['seeds'])} seeds", "accuracy (%)", names,
                     {m["models"][n]["label"] + _only(m["models"][n]["accuracy"]["values"], m): [(m["models"][n][c]["mean"], m["models"][n][c]["std"]) for c in columns]
                      for n in MODELS if n in m["models"]}, ylim=(0, 100),
                     lines={f"majority answer ({m['majority_answer']})": m["majority_pct"]})
    plot_bars([panel], out / "figures" / "videoqa-bars.png", "VideoQA (DualVGR) per question type")
    return "figures/videoqa-bars.png"


def videoqa_section(m: dict[str, Any], figure: str) -> list[str]:
    q, types = m["questions"], m["question_types"]
    header = ["model", "epochs", "test accuracy", "appearance questions", "motion questions", *types, "reproduce"]
    lines = [
        "## 4. VideoQA: multimodal knowledge distillation (DualVGR) on the synthetic world", "",
        f"- data: the world's MSVD-QA-style questions, {q['train']:,} train / {q['val']:,} val / {q['test']:,} test "
        f"(split by video), {m['answers']} answers; features in HCRN's layout, {m['clips']} clips x 16 frames per "
        f"video: MobileNetV2 frames ({m['frame_size']}x{m['frame_size']}) and optical-flow motion; bundled 50-d GloVe",
        f"- each model: `vlkd train quickstart-videoqa` (module dim {m['module_dim']}), the checkpoint with the best "
        f"**val** accuracy, scored once on **test**; seeds {', '.join(map(str, m['seeds']))}, mean ± std (the "
        f"motion ablation: seeds {', '.join(map(str, m['ablation_seeds']))}); the teachers train "
        f"{m['teacher_epochs']} epochs, the students {m['student_epochs']} (a teacher needs more: at the students' "
        "epochs the 4-layer teacher ended below its own distilled student)",
        f"- baseline: always answering the most frequent train answer (`{m['majority_answer']}`) scores "
        f"{m['majority_pct']:.1f}% on test", "",
        "| " + " | ".join(header) + " |", "|" + "---|" * len(header),
    ]
    for name in [n for n in MODELS if n in m["models"]]:  # metrics.json sorts its keys: use the fixed order
        model = m["models"][name]
        role = MODELS[name][1]
        epochs = m["teacher_epochs"] if role == "teacher" else m["student_epochs"]
        seeds = ",".join(map(str, m["ablation_seeds"] if name == "teacher-no-motion" else m["seeds"]))
        cells = [cell(model[c]) for c in ("accuracy", *(f"acc_{k}" for k in (*NEEDS, *types)))]
        extra = "".join(f" {o}" for o in MODELS[name][2]("OUT/videoqa/teacher-seedS"))
        lines.append(f"| {model['label']} | {epochs} | " + " | ".join(cells) +
                     f" | `vlkd train quickstart-videoqa data.path=OUT/world-videoqa-data data.features=OUT/world-hcrn "
                     f"model.num_clips={m['clips']} epochs={epochs} seed=S{extra} output_dir=OUT/videoqa/{name}-seedS`"
                     f" for S in {seeds}; `vlkd evaluate videoqa --run OUT/videoqa/{name}-seedS --split test` |")
    lines += ["", f"![VideoQA per question type]({figure})", "",
              "Per-type columns are the question's first word; 'appearance' / 'motion' questions are those the world "
              "marks as answerable from one frame / needing motion.", ""]
    return lines
