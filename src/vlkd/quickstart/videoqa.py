"""The quickstart's VideoQA stage: multimodal KD on DualVGR over a synthetic world, offline on a CPU.

its own world of scenes with several events (`prepare world --events`: questions on the order of events,
counting over time, relations, appearance) -> HCRN-layout features (MobileNetV2 on each clip's middle frame
at 224x224, which binds colour to shape, + optical-flow motion) -> `prepare videoqa` (bundled 50-d GloVe)
-> for each seed: a teacher (4 graph layers, trained longer), a student distilled from it (1 graph layer,
feature KD), the same student trained alone, and on the profile's ablation seeds the teacher with its
motion features replaced by a constant and (`--full`) the student with each KD term alone, and
distilled from a teacher trained one step (a control: feature KD without the teacher's knowledge)
-> test accuracy of the val-selected models, overall, per question type and for the questions one clip
answers vs. those needing several (the world's ground truth), and the teacher-student gap with the
share of it that KD closes, per seed.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from vlkd.data.videoqa.prepare import load_split, prepare_videoqa
from vlkd.data.world.generate import ensure_world
from vlkd.eval.videoqa import evaluate_videoqa
from vlkd.io import read_json
from vlkd.quickstart.profile import Profile
from vlkd.quickstart.vidlankd import cell, spread
from vlkd.recipes import load_config, run_training
from vlkd.report import BarPanel, plot_bars, summarize_run
from vlkd.rundir import RunDir
from vlkd.video.extract import extract_features

CLIPS, MOTION_SIZE = 4, 64  # 4 clips: one per event slot of the world (data/world/events.py)
# appearance: each clip's middle frame at 224x224 (the 112x112 frames upscaled): an object spans a few cells
# of MobileNetV2's feature map, so the pooled feature says which colour goes with which shape
# (benchmarks/appearance_probe.py); one frame at 224 costs less than the 16 frames at 64 it replaces
APPEARANCE_SIZE, APPEARANCE_FRAMES = 224, 1
KD_TERMS = {"appearance": "{loss: feature_kl, student: appearance, teacher: fused, name: kd_appearance}",
            "motion": "{loss: feature_kl, student: motion, teacher: fused, name: kd_motion}",
            "logits": "{loss: soft_kl, student: logits, teacher: logits, args: {temperature: 2.0}, name: kd_logits}"}


def _kd(*terms: str) -> str:
    return "kd=[" + ", ".join(KD_TERMS[t] for t in terms) + "]"



# name -> (label, role: teacher or student, overrides given a seed's teacher run)
MODELS = {
    "teacher": ("teacher (4 graph layers)", "teacher", lambda teacher: []),
    "student-kd": ("student (1 graph layer) + feature KD", "student",
                   lambda teacher: ["role=student", f"teacher={teacher}", "model.graph_layers=1"]),
    "student": ("student (1 graph layer), no KD", "student", lambda teacher: ["role=student", "model.graph_layers=1"]),
    "teacher-no-motion": ("teacher, motion replaced by a constant", "teacher", lambda teacher: ["data.drop_motion=true"]),
}
# --full: the KD terms' ablation, each on the student (1 graph layer) distilled from the seed's teacher, and a
# control: the default feature KD from a teacher trained for one step (UNTRAINED), which knows nothing
ABLATION = {
    "student-kd-appearance": ("student + feature KD on appearance only", "student",
                              lambda teacher: ["role=student", f"teacher={teacher}", "model.graph_layers=1",
                                               _kd("appearance")]),
    "student-kd-motion": ("student + feature KD on motion only", "student",
                          lambda teacher: ["role=student", f"teacher={teacher}", "model.graph_layers=1", _kd("motion")]),
    "student-kd-logits": ("student + logit KD only (T=2)", "student",
                          lambda teacher: ["role=student", f"teacher={teacher}", "model.graph_layers=1", _kd("logits")]),
    "student-kd-all": ("student + feature KD (both) + logit KD", "student",
                       lambda teacher: ["role=student", f"teacher={teacher}", "model.graph_layers=1",
                                        _kd("appearance", "motion", "logits")]),
    "student-kd-untrained": ("control: student + feature KD from a teacher trained one step", "student",
                             lambda teacher: ["role=student", f"teacher={teacher}", "model.graph_layers=1"]),
}
UNTRAINED = "student-kd-untrained"  # distilled from `_untrained_teacher`, not from the seed's teacher
ALL_MODELS = MODELS | ABLATION
VIDEOQA_DATA = "world-videoqa-data"  # under OUT (reuse.py checks it first)
VIDEOQA_WORLD = "world-videoqa"  # under OUT: the VideoQA pipeline's own world (--events)
GROUPS = ("one", "several")  # questions one clip's ground truth answers / that need several clips


def _group_accuracy(predictions: Path, kinds: dict[str, dict]) -> dict[str, float]:
    """Accuracy per question type and per clips group (one / several), from the world's ground truth."""
    rows = [json.loads(line) for line in predictions.read_text(encoding="utf-8").splitlines()]
    out = {}
    keys = {("clips", g) for g in GROUPS} | {("type", kinds[str(r["id"])]["type"]) for r in rows}
    for field, value in sorted(keys):
        picked = [r["correct"] for r in rows if kinds[str(r["id"])][field] == value]
        out[f"acc_{value}"] = sum(picked) / len(picked) if picked else float("nan")
    return out


def gap_closed(teacher: list[float], kd: list[float], alone: list[float]) -> dict[str, Any]:
    """Per seed: the gap (teacher - student alone), KD's gain (student with KD - student alone) and the
    fraction of the gap KD closes (gain / gap; None where the gap is 0), each as mean ± std over seeds."""
    gaps = [t - s for t, s in zip(teacher, alone)]
    gains = [k - s for k, s in zip(kd, alone)]
    fractions = [g / d for g, d in zip(gains, gaps) if d != 0]
    pooled = ((spread(teacher)["std"] ** 2 + spread(alone)["std"] ** 2) / 2) ** 0.5
    gap = spread(gaps)
    return {"gap": gap, "kd_gain": spread(gains), "fraction_closed": spread(fractions) if fractions else None,
            "pooled_std": pooled, "gap_over_pooled_std": gap["mean"] / pooled if pooled > 0 else None}


def _train_and_score(name: str, seed: int, out: Path, base: list[str], teacher: Path,
                     kinds: dict[str, dict]) -> tuple[Path, dict[str, float]]:
    run = out / "videoqa" / f"{name}-seed{seed}"
    config = load_config("quickstart-videoqa", [f"output_dir={run}", f"seed={seed}", "resume=true",
                                                *base[ALL_MODELS[name][1]], *ALL_MODELS[name][2](teacher)])
    run_training(config)
    summarize_run(run)
    scores = evaluate_videoqa(run, "test")
    scores.update(_group_accuracy(RunDir(run).evaluation("test").with_suffix(".predictions.jsonl"), kinds))
    return run, scores


def _untrained_teacher(seed: int, out: Path, base: dict[str, list[str]]) -> Path:
    """The control's teacher: the seed's teacher configuration trained for one step."""
    run = out / "videoqa" / f"teacher-1step-seed{seed}"
    run_training(load_config("quickstart-videoqa", [f"output_dir={run}", f"seed={seed}", "resume=true",
                                                    *base["teacher"], "max_steps=1", "epochs=0"]))
    return run


def videoqa_stage(out: Path, videos: int, seed: int, profile: Profile, overrides: list[str]) -> dict[str, Any]:
    """Run the stage into `out` (resumable); returns its numbers (accuracies in %). Its world (`videos`,
    `seed`) is generated with --events."""
    world = ensure_world(out / VIDEOQA_WORLD, videos, seed=seed, events=True)
    features = out / "world-hcrn"
    extract_features(world / "videos", features, layout="hcrn", num_clips=CLIPS, appearance_size=APPEARANCE_SIZE,
                     appearance_frames=APPEARANCE_FRAMES, motion_size=MOTION_SIZE,
                     progress=False)  # resumes: finished videos are skipped
    data = out / VIDEOQA_DATA
    if not (data / "meta.json").is_file():
        prepare_videoqa("msrvtt-qa", world, "bundled:glove-50d", data, features=features, progress=False)
    meta = read_json(data / "meta.json")
    kinds = read_json(world / "world.json")["question_kinds"]
    shared = [f"data.path={data}", f"data.features={features}", f"model.num_clips={CLIPS}"]
    base = {"teacher": [*shared, f"epochs={profile.videoqa_teacher_epochs}", *overrides],
            "student": [*shared, f"epochs={profile.videoqa_student_epochs}", *overrides]}

    ablations = ("teacher-no-motion", *(ABLATION if profile.videoqa_kd_ablation else ()))
    scores: dict[str, list[dict[str, float]]] = {name: [] for name in ("teacher", "student-kd", "student", *ablations)}
    for seed in profile.videoqa_seeds:
        teacher, first = _train_and_score("teacher", seed, out, base, Path(), kinds)
        scores["teacher"].append(first)
        for name in ("student-kd", "student") + (ablations if seed in profile.videoqa_ablation_seeds else ()):
            source = _untrained_teacher(seed, out, base) if name == UNTRAINED else teacher
            scores[name].append(_train_and_score(name, seed, out, base, source, kinds)[1])
    scores = {name: runs for name, runs in scores.items() if runs}

    train_answers = Counter(q["answer"] for q in load_split(data, "train"))
    test = load_split(data, "test")
    top = train_answers.most_common(1)[0][0]
    types = sorted({q["type"] for q in kinds.values()})
    columns = ["accuracy", *(f"acc_{k}" for k in (*GROUPS, *types))]
    teacher_config = load_config("quickstart-videoqa", base["teacher"])
    return {
        "videos": videos,
        "questions": {split: meta["splits"][split]["questions"] for split in ("train", "val")} | {"test": len(test)},
        "answers": meta["num_answers"] - 2, "clips": CLIPS, "appearance_size": APPEARANCE_SIZE,
        "appearance_frames": APPEARANCE_FRAMES, "motion_size": MOTION_SIZE,
        "module_dim": teacher_config.model.module_dim, "seeds": list(profile.videoqa_seeds),
        "ablation_seeds": [s for s in profile.videoqa_seeds if s in profile.videoqa_ablation_seeds],
        "teacher_epochs": profile.videoqa_teacher_epochs, "student_epochs": profile.videoqa_student_epochs,
        "majority_answer": top, "majority_pct": 100 * sum(q["answer"] == top for q in test) / len(test),
        "question_types": types,
        "models": {name: {"label": ALL_MODELS[name][0],
                          **{c: spread([100 * s[c] for s in scores[name]]) for c in columns}} for name in scores},
        "gap": {c: gap_closed(*([100 * s[c] for s in scores[n]] for n in ("teacher", "student-kd", "student")))
                for c in columns},
        "kd_ablation": {name: {c: gap_closed(*([100 * s[c] for s in scores[n]] for n in ("teacher", name, "student")))
                               for c in columns} for name in scores if name in ABLATION},
    }


def _only(values: list[float], m: dict[str, Any]) -> str:
    return f" (seeds {', '.join(map(str, m['ablation_seeds']))})" if len(values) < len(m["seeds"]) else ""


def _columns(m: dict[str, Any]) -> tuple[list[str], list[str]]:
    """metrics keys and their names: all, one clip, several clips, then each question type."""
    keys = [*GROUPS, *m["question_types"]]
    return ["accuracy", *(f"acc_{k}" for k in keys)], ["all", "one clip", "several clips", *m["question_types"]]


def videoqa_figure(out: Path, m: dict[str, Any]) -> str:
    columns, names = _columns(m)
    panel = BarPanel(f"test accuracy, mean ± std over {len(m['seeds'])} seeds", "accuracy (%)", names,
                     {m["models"][n]["label"] + _only(m["models"][n]["accuracy"]["values"], m):
                      [(m["models"][n][c]["mean"], m["models"][n][c]["std"]) for c in columns]
                      for n in ALL_MODELS if n in m["models"]}, ylim=(0, 100),
                     lines={f"majority answer ({m['majority_answer']})": m["majority_pct"]})
    plot_bars([panel], out / "figures" / "videoqa-bars.png", "VideoQA (DualVGR) per question type")
    return "figures/videoqa-bars.png"


def _gap_cell(g: dict[str, Any]) -> str:
    fraction = g["fraction_closed"]
    ratio = g["gap_over_pooled_std"]
    return (f"{cell(g['gap'])} ({'n/a' if ratio is None else f'{ratio:.1f}'} pooled std); KD +{cell(g['kd_gain'])}; "
            f"closed {'n/a' if fraction is None else cell(fraction, 2)}").replace("+-", "-")


def videoqa_section(m: dict[str, Any], figure: str) -> list[str]:
    q = m["questions"]
    columns, names = _columns(m)
    header = ["model", "epochs", *names, "reproduce"]
    lines = [
        "## 5. VideoQA: multimodal knowledge distillation (DualVGR) on the synthetic world", "",
        f"- data: a world of its own, {m['videos']} videos with several events each (`vlkd prepare world --events "
        f"--videos {m['videos']}`: objects that "
        f"move, stop and move again), MSVD-QA-style questions, {q['train']:,} train / {q['val']:,} val / "
        f"{q['test']:,} test (split by video), {m['answers']} answers; each question is marked by its type and by "
        "whether one clip's ground truth answers it or only several clips together (order of events, counting over "
        f"time); features in HCRN's layout, {m['clips']} clips per video, one per event slot: MobileNetV2 on each "
        f"clip's middle frame ({m['appearance_size']}x{m['appearance_size']}, `--appearance-frames "
        f"{m['appearance_frames']}`: binds colour to shape, benchmarks/appearance_probe.py) and optical-flow motion "
        f"({m['motion_size']}x{m['motion_size']}); bundled 50-d GloVe",
        f"- each model: `vlkd train quickstart-videoqa` (module dim {m['module_dim']}), the checkpoint with the best "
        f"**val** accuracy, scored once on **test**; seeds {', '.join(map(str, m['seeds']))}, mean ± std"
        + (f" (ablations: seeds {', '.join(map(str, m['ablation_seeds']))})" if m["ablation_seeds"] else "")
        + f"; the teachers train {m['teacher_epochs']} epochs, the students {m['student_epochs']}",
        f"- baseline: always answering the most frequent train answer (`{m['majority_answer']}`) scores "
        f"{m['majority_pct']:.1f}% on test", "",
        "| " + " | ".join(header) + " |", "|" + "---|" * len(header),
    ]
    for name in [n for n in ALL_MODELS if n in m["models"]]:  # metrics.json sorts its keys: use the fixed order
        model = m["models"][name]
        role = ALL_MODELS[name][1]
        epochs = m["teacher_epochs"] if role == "teacher" else m["student_epochs"]
        seeds = ",".join(map(str, m["seeds"] if len(model["accuracy"]["values"]) == len(m["seeds"])
                             else m["ablation_seeds"]))
        cells = [cell(model[c]) for c in columns]
        source = "teacher-1step" if name == UNTRAINED else "teacher"
        extra = "".join(f" '{o}'" if " " in o else f" {o}" for o in ALL_MODELS[name][2](f"OUT/videoqa/{source}-seedS"))
        train = (f"`vlkd train quickstart-videoqa data.path=OUT/world-videoqa-data data.features=OUT/world-hcrn "
                 f"model.num_clips={m['clips']} epochs={{}} seed=S{{}} output_dir=OUT/videoqa/{{}}-seedS`")
        first = (train.format(0, " max_steps=1", "teacher-1step") + ", then " if name == UNTRAINED else "")
        lines.append(f"| {model['label']} | {epochs} | " + " | ".join(cells) +
                     f" | {first}{train.format(epochs, extra, name)}"
                     f" for S in {seeds}; `vlkd evaluate videoqa --run OUT/videoqa/{name}-seedS --split test` |")
    lines += ["", f"![VideoQA per question type]({figure})", "",
              "'one clip' / 'several clips': the questions one clip's ground truth answers (colour, shape, "
              "count_objects, relation at the end) / that need clips taken together (first, last, next, count_moves, "
              "first_direction); the other columns are the world's question types.", "",
              "**The teacher-student gap and the share of it KD closes** (points of test accuracy; per seed: gap = "
              "teacher - student alone, KD gain = student with KD - student alone, closed = gain / gap; mean ± std "
              "over seeds; the gap also in pooled standard deviations of the two models' accuracies over seeds):", "",
              "| questions | gap; KD gain; fraction closed |", "|---|---|"]
    lines += [f"| {n} | {_gap_cell(m['gap'][c])} |" for c, n in zip(columns, names)]
    if m.get("kd_ablation"):
        lines += ["", "**KD-term ablation** (each student distilled from its seed's teacher, the control from a "
                  "teacher trained for one step, which knows nothing: what feature KD gives without the teacher's "
                  "knowledge; same columns as the gap "
                  "table: the gain over the student alone and the fraction of the gap it closes, all questions / "
                  "several clips):", "", "| KD terms | all questions | several clips |", "|---|---|---|"]
        for name in [n for n in ABLATION if n in m["kd_ablation"]]:
            a = m["kd_ablation"][name]
            lines.append(f"| {ALL_MODELS[name][0]} | {_gap_cell(a['accuracy'])} | {_gap_cell(a['acc_several'])} |")
    lines.append("")
    return lines
