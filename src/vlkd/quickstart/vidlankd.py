"""The quickstart's VidLanKD stages: the video-language teacher on the synthetic world, a token store of
Wikipedia + the world's training captions, the MLM baseline and the distilled students at equal compute,
and their comparison (perplexity, grounding by both routes, fine-tuning over seeds). Each stage resumes
where a kill stopped it and returns its numbers; `teacher_section` / `students_section` render them."""

from __future__ import annotations

import math
from pathlib import Path
from statistics import mean, stdev
from typing import Any

from vlkd.data.bundled import bundled_path
from vlkd.data.tasks.bundled import prepare_bundled
from vlkd.data.teacher.howto100m import prepare_howto100m
from vlkd.data.text.store import build_token_store
from vlkd.data.tokenizer import BUNDLED_TOKENIZER
from vlkd.data.world.kinds import KINDS, PROPERTIES
from vlkd.eval.grounding import evaluate_retrieval
from vlkd.eval.text_grounding import chance_levels, evaluate_text_grounding
from vlkd.eval.visual_knowledge import evaluate_visual_knowledge
from vlkd.io import read_json, write_text_atomic
from vlkd.quickstart.profile import STUDENTS, Profile
from vlkd.recipes import load_config, run_training
from vlkd.recipes.finetune import finetune_command
from vlkd.report import BarPanel, plot_bars, plot_curves, plot_runs, summarize_run
from vlkd.rundir import RunDir, read_metrics
from vlkd.video.extract import extract_features

WORLD_SEED = 0
TEACHER_DATA, TEXT_STORE = "world-teacher-data", "text-tokens"  # under OUT (reuse.py checks them first)
# one epoch at lr 1e-3 in fp32: same numbers on every CPU; lr 1e-4 (GLUE's) leaves the tiny model at the
# majority class, and so do 120-240 steps of batch 16 (measured)
FINETUNE = ["epochs=1", "lr=1e-3", "precision=fp32"]
_RETRIEVAL = ("r1", "r5", "r10", "median_rank")


def spread(values: list[float]) -> dict[str, Any]:
    """mean, std (0 for one value) and the values themselves."""
    return {"mean": mean(values), "std": stdev(values) if len(values) > 1 else 0.0, "values": values}


def cell(s: dict[str, Any], digits: int = 1) -> str:
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}" if len(s["values"]) > 1 else f"{s['mean']:.{digits}f}"


def _first_eval(run_dir: Path) -> dict[str, float]:
    for record in read_metrics(RunDir(run_dir).metrics):
        if record.get("step") == 0 and "valid_r5" in record:
            return {k: record[f"valid_{k}"] for k in _RETRIEVAL}
    return {}


def world_captions(world: Path, data: Path, out: Path) -> Path:
    """The teacher's training captions as plain text (one segment a line): the held-out videos' captions
    stay out of the student's corpus, so grounding is measured on captions no text model has read."""
    path = out / "world-train-captions.txt"
    if not path.is_file():
        train = set(read_json(data / "meta.json")["splits"]["train"]["videos"])
        captions = read_json(world / "caption.json")
        lines = [text for vid in sorted(train) for text in captions[vid]["text"]]
        write_text_atomic(path, "\n".join(lines) + "\n")
    return path


def teacher_data_stage(out: Path, world: Path, profile: Profile) -> None:
    """World features -> the teacher's samples, with a held-out gallery (resumable: finished videos and a
    finished store are kept)."""
    features = out / "world-features"
    extract_features(world / "videos", features, layout="howto100m")
    data = out / TEACHER_DATA
    if not (data / "meta.json").is_file():
        prepare_howto100m(world / "caption.json", features, data, valid_fraction=profile.held_out_fraction,
                          progress=False)


def teacher_stage(out: Path, world: Path, profile: Profile, overrides: list[str]) -> dict[str, Any]:
    """Teacher training on the prepared samples -> held-out retrieval and its grid; returns its numbers."""
    data = out / TEACHER_DATA
    meta = read_json(data / "meta.json")
    config = load_config("quickstart-teacher", [f"output_dir={out / 'teacher'}", f"data.path={data}",
                                                 f"video.feature_dim={meta['feature_dim']}", "resume=true",
                                                 *profile.overrides()["teacher"], *overrides])
    run_dir = run_training(config)
    scores = evaluate_retrieval(run_dir, data, "valid", world / "videos", num_queries=4, top=5,
                                out=RunDir(run_dir).retrieval)
    summarize_run(run_dir)
    plot_curves(read_metrics(RunDir(run_dir).metrics), out / "figures" / "teacher-curves.png",
                "video-language teacher: losses, held-out perplexity and caption -> video retrieval")
    gallery = int(scores["gallery_size"])
    return {
        "world_videos": len(read_json(world / "caption.json")),
        "train_videos": len(meta["splits"]["train"]["videos"]),
        "held_out_videos": len(meta["splits"]["valid"]["videos"]),
        "feature_dim": meta["feature_dim"],
        "text_tower": f"{config.model.num_layers}L/{config.model.hidden_size}H",
        "video_tower": f"{config.video.num_layers}L/{config.video.hidden_size}H",
        "objective": " + ".join(t.loss for t in config.matching) + " + mlm",
        "steps": read_json(RunDir(run_dir).results)["step"], "batch_size": config.batch_size,
        "retrieval": {**{k: scores[k] for k in _RETRIEVAL}, "gallery": gallery, **chance_levels(gallery)},
        "retrieval_at_start": _first_eval(run_dir),
    }


def text_stage(out: Path, world: Path) -> None:
    """The student corpus (every student reads it, the text-only one too): the bundled Wikipedia lead
    sections + the world's training captions + its non-visual corpus about the kinds."""
    path = out / TEXT_STORE
    if not (path / "meta.json").is_file():
        captions = world_captions(world, out / TEACHER_DATA, out)
        build_token_store([bundled_path("wikipedia"), captions, world / "corpus.txt"], BUNDLED_TOKENIZER, path,
                          progress=False)


def run_name(name: str, seed: int) -> str:
    """A student's run directory under OUT: one per training seed."""
    return f"{name}-seed{seed}"


def student_stage(out: Path, name: str, teacher: Path, profile: Profile, overrides: list[str], seed: int) -> Path:
    """One student (or the baseline) at the shared steps, batch and data (the token store under OUT); `seed`
    sets its initialisation, masks and data order (every student of one seed shares them)."""
    _, preset, extra = STUDENTS[name]
    config = load_config(preset, [f"output_dir={out / run_name(name, seed)}", f"data.train={out / TEXT_STORE}",
                                  "resume=true", f"seed={seed}", *([f"teacher={teacher}"] if name != "mlm" else []),
                                  *extra, *profile.overrides()["text"], *overrides])
    run_dir = run_training(config)
    summarize_run(run_dir)
    return run_dir


def _majority_share(dev_tsv: Path) -> float:
    labels = [line.rsplit("\t", 1)[-1] for line in dev_tsv.read_text(encoding="utf-8").splitlines()[1:]]
    return max(labels.count(v) for v in set(labels)) / len(labels)


def visual_knowledge_stage(runs: dict[str, list[Path]], teacher: Path, world: Path) -> dict[str, Any]:
    """The probe (`vlkd evaluate visual-knowledge --benchmark world --protocol probe`) on every student run
    and the teacher's text tower: accuracy (%) per property on the probe kinds, per student mean ± std over
    its training seeds, beside chance (the probe kinds' majority class) and the same probe fitted to shuffled
    labels (`shuffled`: what an uninformed probe on these vectors scores; below the majority class where the
    train kinds' labels are distributed otherwise than the probe kinds')."""
    data = world / "visual_knowledge"

    def accuracy(model: Path) -> dict[str, Any]:
        return evaluate_visual_knowledge(str(model), "world", data, protocol="probe", seed=0)["parts"]

    parts = accuracy(teacher)
    return {
        "properties": list(PROPERTIES),
        "items": {p: parts[p]["items"] for p in PROPERTIES}, "classes": {p: parts[p]["classes"] for p in PROPERTIES},
        "chance": {p: 100 * parts[p]["chance"] for p in PROPERTIES},
        "teacher": {p: 100 * parts[p]["accuracy"] for p in PROPERTIES},
        "students": {name: {"label": STUDENTS[name][0],
                            **{key: {p: spread([100 * r[p][key] for r in scored]) for p in PROPERTIES}
                               for key in ("accuracy", "shuffled")}}
                     for name, scored in ((name, [accuracy(r) for r in seeds]) for name, seeds in runs.items())},
        "train_kinds": sum(k.split == "train" for k in KINDS), "probe_kinds": sum(k.split == "probe" for k in KINDS),
    }


def bundled_stage(out: Path, profile: Profile) -> None:
    """The bundled fine-tuning tasks under OUT/bundled."""
    tasks = out / "bundled"
    if not all((tasks / t / "meta.json").is_file() for t in profile.finetune_tasks):
        prepare_bundled(tasks, overwrite=True)


def student_finetune(out: Path, name: str, profile: Profile, overrides: list[str]) -> dict[str, Any]:
    """One student's fine-tuning accuracy (%) per task over the fine-tuning seeds, from its first training
    seed's run."""
    run_dir = out / run_name(name, profile.student_seeds[0])
    seeds = ",".join(map(str, profile.finetune_seeds))
    finetuned = {}
    for task in profile.finetune_tasks:
        result = finetune_command(task, str(out / "bundled" / task), str(RunDir(run_dir).final),
                                  str(out / f"finetune-{task}-{run_dir.name}"),
                                  ["resume=true", *FINETUNE, f"seeds=[{seeds}]",
                                   *overrides])
        finetuned[task] = spread([100 * result["per_seed"][str(s)]["accuracy"] for s in profile.finetune_seeds])
    return finetuned


def student_runs(out: Path, profile: Profile) -> dict[str, list[Path]]:
    """Every student's run directory per training seed (a run's name is its task's name)."""
    return {name: [out / run_name(name, seed) for seed in profile.student_seeds] for name in profile.students}


def student_comparison(out: Path, name: str, teacher: Path, profile: Profile) -> dict[str, Any]:
    """One student: held-out perplexity (over its training seeds) and grounding by both routes (its first
    training seed's run)."""
    seed_runs = student_runs(out, profile)[name]
    run_dir = seed_runs[0]
    grounding = evaluate_text_grounding(run_dir, teacher, out / TEACHER_DATA, out=RunDir(run_dir).grounding)
    return {
        "label": STUDENTS[name][0], "steps": read_json(RunDir(run_dir).results)["step"],
        "valid_perplexity": spread([read_json(RunDir(r).results)["valid_perplexity"] for r in seed_runs]),
        "grounding_head": {k: grounding["head"][k] for k in _RETRIEVAL} if grounding["head"] else None,
        "grounding_head_absent": grounding.get("head_absent"),
        "grounding_probe": {k: grounding["probe"][k] for k in _RETRIEVAL},
    }


def comparison_summary(out: Path, students: dict[str, Any], profile: Profile, overrides: list[str]) -> dict[str, Any]:
    """Every student's comparison with what they share: the grounding gallery and its chance levels, the
    training batch and rate, the fine-tuning tasks' majority class, the seeds."""
    first = out / run_name(next(iter(students)), profile.student_seeds[0])
    gallery_size = read_json(RunDir(first).grounding.with_suffix(".json"))["gallery"]
    config = load_config("quickstart-mlm", [f"output_dir={out / 'mlm'}", *profile.overrides()["text"], *overrides])
    return {
        "students": students, "gallery": gallery_size, **chance_levels(gallery_size),
        "batch_size": config.batch_size, "lr": config.lr,
        "finetune_majority": {t: 100 * _majority_share(out / "bundled" / t / "dev.tsv") for t in profile.finetune_tasks},
        "finetune_seeds": list(profile.finetune_seeds),
        "student_seeds": list(profile.student_seeds),
    }


def vidlankd_figures(out: Path, runs: dict[str, list[Path]], metrics: dict[str, Any]) -> dict[str, str]:
    """The visual-knowledge bars (the headline), the bar chart (grounding R@5 by both routes; fine-tuning
    accuracy) and the perplexity curves (first training seed)."""
    figures = out / "figures"
    vk = metrics["visual_knowledge"]
    props = vk["properties"]
    series = {"chance (majority class)": [(vk["chance"][p], 0.0) for p in props],
              **{s["label"]: [(s["accuracy"][p]["mean"], s["accuracy"][p]["std"]) for p in props]
                 for s in (vk["students"][n] for n in STUDENTS if n in vk["students"])},
              "teacher's text tower": [(vk["teacher"][p], 0.0) for p in props]}
    plot_bars([BarPanel(f"probe kinds ({vk['probe_kinds']}), students: mean ± std over "
                        f"{len(metrics['student_seeds'])} training seeds", "probe accuracy (%)", props, series,
                        ylim=(0, 102))],
              figures / "vidlankd-visual-knowledge.png", "visual knowledge of kinds no text describes")
    students = metrics["students"]
    n = metrics["gallery"]

    def r5(r: dict[str, float] | None) -> tuple[float, float]:
        """R@5 and its binomial standard error over the n held-out queries (head route absent: no bar)."""
        return (float("nan"), 0.0) if r is None else (r["r5"], math.sqrt(r["r5"] * (1 - r["r5"]) / n))

    routes = BarPanel(f"grounding of {n} held-out captions (± binomial s.e.)", "R@5 (0-1)",
                      ["head route (KD head only)", "probe route"],
                      {s["label"]: [r5(s["grounding_head"]), r5(s["grounding_probe"])] for s in students.values()},
                      ylim=(0, 1.02), lines={"chance": metrics["r5_chance"]})
    tasks = sorted(metrics["finetune_majority"])
    finetune = BarPanel(f"fine-tuning, mean ± std over {len(metrics['finetune_seeds'])} seeds", "dev accuracy (%)",
                        tasks, {s["label"]: [(s["finetune"][t]["mean"], s["finetune"][t]["std"]) for t in tasks]
                                for s in students.values()}, ylim=(0, 100),
                        lines={f"majority class ({t})": metrics["finetune_majority"][t] for t in tasks})
    plot_bars([routes, finetune], figures / "vidlankd-bars.png", "VidLanKD: students at equal compute")
    plot_runs({students[n]["label"]: read_metrics(RunDir(r[0]).metrics) for n, r in runs.items()}, "valid_perplexity",
              figures / "vidlankd-perplexity.png", "students' held-out MLM perplexity", "perplexity", log=True)
    return {"visual_knowledge": "figures/vidlankd-visual-knowledge.png", "bars": "figures/vidlankd-bars.png",
            "perplexity": "figures/vidlankd-perplexity.png"}


def _ranks(r: dict[str, float] | None, digits: int = 3, absent: str | None = None) -> str:
    return f"absent: {absent or 'no KD head'}" if r is None else f"{r['r5']:.{digits}f} (R@1 {r['r1']:.{digits}f}, median rank {r['median_rank']:g})"


def teacher_section(m: dict[str, Any]) -> list[str]:
    r, start = m["retrieval"], m["retrieval_at_start"]
    return [
        "## 1. The video-language teacher on a synthetic world", "",
        f"- world: {m['world_videos']} generated videos (`vlkd prepare world --videos {m['world_videos']} --seed "
        f"{WORLD_SEED}`), HowTo100M-format captions; features: MobileNetV2 (bundled ImageNet weights) at 1/s and "
        f"weight-free optical-flow motion at 1.5/s, {m['feature_dim']}-d steps; {m['train_videos']} videos train "
        f"the teacher, {m['held_out_videos']} are held out",
        f"- teacher: text tower {m['text_tower']} + video tower {m['video_tower']}, `{m['objective']}`, "
        f"{m['steps']} steps of batch {m['batch_size']}", "",
        f"Held-out caption -> video retrieval against a gallery of all {r['gallery']} held-out videos "
        "(`vlkd evaluate retrieval`; chance is a random ranking):", "",
        "| | R@1 | R@5 | R@10 | median rank | reproduce |", "|---|---|---|---|---|---|",
        f"| trained teacher | {r['r1']:.3f} | {r['r5']:.3f} | {r['r10']:.3f} | {r['median_rank']:g} | "
        f"`vlkd train quickstart-teacher data.path=OUT/world-teacher-data output_dir=OUT/teacher`, then "
        f"`vlkd evaluate retrieval --run OUT/teacher --data OUT/world-teacher-data` |",
        *([f"| before training (step 0) | {start['r1']:.3f} | {start['r5']:.3f} | {start['r10']:.3f} | "
           f"{start['median_rank']:g} | the first line of `OUT/teacher/metrics.jsonl` |"] if start else []),
        f"| chance | {r['r1_chance']:.3f} | {r['r5_chance']:.3f} | {r['r10_chance']:.3f} | "
        f"{r['median_rank_chance']:g} | a random ranking of {r['gallery']} videos |", "",
        "Training curves (each loss on its own axis, perplexity on a log scale, R@1/5/10 on a 0-1 axis):", "",
        "![teacher curves](figures/teacher-curves.png)", "",
        "Grounding: the middle frames of the top-5 videos for 4 held-out captions, the true one in green:", "",
        "![grounding](teacher/retrieval.png)", "",
    ]


def _train_command(name: str, seed: int) -> str:
    preset, extra = STUDENTS[name][1], " ".join(STUDENTS[name][2])
    return (f"vlkd train {preset} data.train=OUT/text-tokens{'' if name == 'mlm' else ' teacher=OUT/teacher'}"
            f"{' ' + extra if extra else ''} seed={seed} output_dir=OUT/{run_name(name, seed)}")


def visual_knowledge_section(m: dict[str, Any], figures: dict[str, str]) -> list[str]:
    vk, seeds = m["visual_knowledge"], m["student_seeds"]
    props = vk["properties"]
    evaluate = "`vlkd evaluate visual-knowledge --benchmark world --data OUT/world/visual_knowledge --protocol probe --model"
    rows = ["| chance (majority class of the probe kinds) | " + " | ".join(f"{vk['chance'][p]:.1f}" for p in props) + " | |"]
    if "mlm" in vk["students"]:
        rows.append("| the probe fitted to shuffled labels, on the text-only student's vectors | " +
                    " | ".join(cell(vk["students"]["mlm"]["shuffled"][p]) for p in props) + " | the same probe's `shuffled` |")
    for name in [n for n in STUDENTS if n in vk["students"]]:
        s = vk["students"][name]
        rows.append(f"| {s['label']} | " + " | ".join(cell(s["accuracy"][p]) for p in props) +
                    f" | `{_train_command(name, seeds[0])}` (seeds {', '.join(map(str, seeds))}); {evaluate} "
                    f"OUT/{run_name(name, seeds[0])}` |")
    rows.append("| teacher's text tower (it saw the videos) | " + " | ".join(f"{vk['teacher'][p]:.1f}" for p in props) +
                f" | {evaluate} OUT/teacher` |")
    return [
        "## 3. Visual knowledge of the probe kinds", "",
        f"The world's {vk['train_kinds'] + vk['probe_kinds']} kinds are made-up nouns with a fixed colour, shape, size "
        f"and motion that the videos show; captions state a property only now and then, and never for the "
        f"{vk['probe_kinds']} probe kinds (docs/visual-knowledge.md). Every student reads the same text (Wikipedia, the "
        "training captions, the world's non-visual corpus about the kinds); only the teacher saw the videos. Probe: a "
        "logistic regression on the frozen model's last-layer vector of the kind's name, trained on the "
        f"{vk['train_kinds']} train kinds, scored on the {vk['probe_kinds']} probe kinds (accuracy %, students mean ± "
        f"std over training seeds {', '.join(map(str, seeds))}):", "",
        "| model | " + " | ".join(props) + " | reproduce |", "|" + "---|" * (len(props) + 2), *rows, "",
        f"![visual knowledge]({figures['visual_knowledge']})", "",
    ]


def students_section(m: dict[str, Any], store: dict[str, Any], figures: dict[str, str]) -> list[str]:
    students, tasks = m["students"], sorted(m["finetune_majority"])
    seeds = ", ".join(map(str, m["finetune_seeds"]))
    first = m["student_seeds"][0]
    header = ["model", "steps", "held-out perplexity", "grounding R@5, head", "grounding R@5, probe",
              *[f"{t} dev acc. (%)" for t in tasks], "reproduce"]
    rows = []
    for name in [n for n in STUDENTS if n in students]:  # metrics.json sorts its keys: use the fixed order
        s = students[name]
        run = run_name(name, first)
        rows.append(f"| {s['label']} | {s['steps']} | {cell(s['valid_perplexity'])} | {_ranks(s['grounding_head'], absent=s.get('grounding_head_absent'))} | "
                    f"{_ranks(s['grounding_probe'])} | " + " | ".join(cell(s["finetune"][t]) for t in tasks) +
                    f" | `{_train_command(name, first)}`; `vlkd evaluate grounding --model "
                    f"OUT/{run} --teacher OUT/teacher --data OUT/world-teacher-data`; `vlkd finetune --task TASK "
                    f"--data-dir OUT/bundled/TASK --model OUT/{run}/final --out OUT/finetune-TASK-{run} "
                    f"{' '.join(FINETUNE)} seeds={','.join(map(str, m['finetune_seeds']))}` |")
    return [
        "## 2. Token store: bundled English Wikipedia lead sections + the world's training captions and corpus", "",
        f"- {store['num_tokens']:,} tokens in {store['num_blocks']:,} blocks of {store['block_size']} (vocabulary "
        f"{store['vocab_size']:,}, tokenizer `{store['tokenizer']}`)", "",
        *visual_knowledge_section(m, figures),
        "## 4. Perplexity, grounding and fine-tuning (equal compute)", "",
        "Every student: `quickstart-mlm` sizes, the same steps, batch, blocks and masks per seed; a distilled one "
        "adds its objective against the teacher's text tower. Perplexity: mean ± std over the training seeds. "
        f"Grounding and fine-tuning: the seed-{first} run. Grounding: held-out caption -> clip retrieval against "
        f"all {m['gallery']} held-out clips (`vlkd evaluate grounding`; R@5 chance {m['r5_chance']:.3f}): the *head* "
        "route scores the KD head's tokens by the teacher's similarity, the *probe* route a ridge regression from "
        "mean-pooled hidden states to the teacher's video embeddings (fitted on the training captions). "
        f"Fine-tuning: dev accuracy in %, mean ± std over seeds {seeds}, one epoch at lr 1e-3 each "
        "(majority class " + ", ".join(f"{t} {v:.1f}%" for t, v in m["finetune_majority"].items()) + ").", "",
        "| " + " | ".join(header) + " |", "|" + "---|" * len(header), *rows, "",
        f"![students: grounding and fine-tuning]({figures['bars']})", "",
        f"![students' held-out perplexity]({figures['perplexity']})", "",
    ]
