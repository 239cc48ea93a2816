"""The quickstart's VidLanKD stages: the video-language teacher on the synthetic world, a token store of
Wikipedia + the world's training captions, the MLM baseline and the distilled student at equal compute,
and their comparison (perplexity, grounding by both routes, rt-polarity over seeds). Each stage resumes
where a kill stopped it."""

from __future__ import annotations

from pathlib import Path
from statistics import mean, stdev

from vlkd.data.bundled import bundled_path
from vlkd.data.teacher.howto100m import prepare_howto100m
from vlkd.data.tasks.bundled import RT_POLARITY, prepare_bundled
from vlkd.data.text.store import TokenStore, build_token_store
from vlkd.data.tokenizer import BUNDLED_TOKENIZER
from vlkd.data.world.generate import ensure_world
from vlkd.eval.grounding import evaluate_retrieval
from vlkd.eval.text_grounding import evaluate_text_grounding
from vlkd.io import read_json, write_text_atomic
from vlkd.recipes import load_config, run_training
from vlkd.recipes.finetune import finetune_command
from vlkd.report import summarize_run
from vlkd.rundir import load_run_config, read_metrics
from vlkd.video.extract import extract_features

WORLD_VIDEOS, WORLD_SEED = 160, 0
SEEDS = (0, 1, 2)
LABELS = {"mlm": "text-only BERT (MLM)", "distill": "distilled student (MLM + NST)"}


def _first_record(run_dir: Path, key: str) -> float | None:
    records = [r for r in read_metrics(run_dir / "metrics.jsonl") if r.get("step") == 0 and key in r]
    return records[0][key] if records else None


def _embedded_report(run_dir: Path, out: Path) -> str:
    """A run's own report, one heading level down, with the plot path relative to OUT/report.md."""
    return (summarize_run(run_dir).replace("\n## ", "\n#### ").replace("# Run report", "### Run report")
            .replace("(curves.png)", f"({(run_dir / 'curves.png').relative_to(out)})"))


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


def text_stage(out: Path, overrides: list[str], captions: Path) -> tuple[TokenStore, Path, list[str]]:
    """Token store (Wikipedia + the world's training captions) + the MLM baseline; returns (store, run, lines)."""
    path = out / "text-tokens"
    if not (path / "meta.json").is_file():
        build_token_store([bundled_path("wikipedia"), captions], BUNDLED_TOKENIZER, path)
    store = TokenStore(path)
    config = load_config("quickstart-mlm", [f"output_dir={out / 'mlm'}", f"data.train={store.path}", "resume=true",
                                             *overrides])
    run_dir = run_training(config)
    meta = store.meta
    lines = [
        "## 2. Token store: bundled English Wikipedia lead sections + the world's training captions", "",
        f"- {meta['num_tokens']:,} tokens in {meta['num_blocks']:,} blocks of {meta['block_size']} "
        f"(vocabulary {meta['vocab_size']:,}, tokenizer `{meta['tokenizer']}`); sources: "
        + ", ".join(f"`{Path(s['path']).name}` ({s['lines_kept']:,} lines)" for s in meta["sources"]), "",
    ]
    return store, run_dir, lines


def distill_stage(out: Path, overrides: list[str], store: TokenStore, teacher: Path) -> Path:
    """The student distilled from the teacher (NST), at the baseline's steps, batch, seed and data order."""
    config = load_config("quickstart-distill", [f"output_dir={out / 'distill'}", f"data.train={store.path}",
                                                 f"teacher={teacher}", "resume=true", *overrides])
    return run_training(config)


def _mean_std(values: list[float]) -> str:
    return f"{mean(values):.1f} ± {stdev(values):.1f}" if len(values) > 1 else f"{values[0]:.1f}"


def comparison_stage(out: Path, overrides: list[str], runs: dict[str, Path], teacher: Path, data: Path) -> list[str]:
    """Baseline vs. distilled student: held-out perplexity, grounding by both routes, rt-polarity over seeds."""
    tasks = out / "bundled"
    if not (tasks / RT_POLARITY.name / "meta.json").is_file():
        prepare_bundled(tasks)
    rt = tasks / RT_POLARITY.name
    rows, grounding, first_config = [], {}, None
    for name, run_dir in runs.items():
        results = read_json(run_dir / "results.json")
        grounding[name] = evaluate_text_grounding(run_dir, teacher, data, out=run_dir / "grounding")
        # One epoch of rt-polarity per seed at lr 1e-3: the GLUE default 1e-4 leaves a tiny model at the
        # majority class (61.7% dev), and so did 150 steps at 1e-3 for the baseline (all 3 seeds, measured).
        downstream = finetune_command(RT_POLARITY.name, str(rt), str(run_dir / "final"),
                                      str(out / f"finetune-{name}"),
                                      ["resume=true", "epochs=1", "lr=1e-3", f"seeds={','.join(map(str, SEEDS))}",
                                       *overrides])
        first_config = first_config or load_run_config(out / f"finetune-{name}" / f"seed-{SEEDS[0]}")
        accuracies = [100 * downstream["per_seed"][str(seed)]["accuracy"] for seed in SEEDS]
        g = grounding[name]
        head = f"{g['head']['r5']:.3f}" if g.get("head") else "n/a (no KD head)"
        rows.append(f"| {LABELS[name]} | {results['step']} | {results.get('valid_perplexity', float('nan')):.1f} | "
                    f"{head} | {g['probe']['r5']:.3f} | {_mean_std(accuracies)} |")
    gallery = next(iter(grounding.values()))["gallery"]
    return [
        "## 4. Baseline vs. distilled student (equal compute)", "",
        f"Both students: `quickstart-mlm` sizes, the same steps, batch, seed, blocks and masks; the distilled one adds "
        f"NST against the teacher's text tower (its KD head maps student tokens to the teacher's width). Grounding: "
        f"held-out caption -> clip retrieval against all {gallery} held-out clips (`vlkd evaluate grounding`; R@5 "
        f"chance {min(5 / gallery, 1):.3f}): the *head* route scores the KD head's tokens by the teacher's similarity, "
        f"the *probe* route a ridge regression from mean-pooled hidden states to the teacher's video embeddings "
        f"(fitted on the training captions). rt-polarity: dev accuracy in %, mean ± std over seeds "
        f"{', '.join(map(str, SEEDS))}, one epoch of batch {first_config['batch_size']} at lr {first_config['lr']:g} "
        f"each (majority class "
        f"{100 * _majority_share(rt / 'dev.tsv'):.1f}%).", "",
        "| model | steps | held-out perplexity | grounding R@5, head | grounding R@5, probe | rt-polarity dev acc. |",
        "|---|---|---|---|---|---|",
        *rows, "",
        "Reproduce a row: `vlkd train quickstart-mlm|quickstart-distill data.train=OUT/text-tokens teacher=OUT/teacher "
        "output_dir=...`, then `vlkd evaluate grounding --model RUN --teacher OUT/teacher --data OUT/world-teacher-data` "
        "and `vlkd finetune --task rt-polarity --data-dir OUT/bundled/rt-polarity --model RUN/final --out ... "
        "epochs=1 lr=1e-3 seeds=0,1,2`.", "",
        *[_embedded_report(run_dir, out) for run_dir in runs.values()],
    ]


def _majority_share(dev_tsv: Path) -> float:
    labels = [line.rsplit("\t", 1)[-1] for line in dev_tsv.read_text(encoding="utf-8").splitlines()[1:]]
    return max(labels.count(v) for v in set(labels)) / len(labels)


def teacher_stage(out: Path, overrides: list[str], num_videos: int = WORLD_VIDEOS) -> list[str]:
    """Synthetic world -> features -> teacher samples -> teacher training -> retrieval; returns report lines."""
    world = ensure_world(out / "world", num_videos, seed=WORLD_SEED)
    features = out / "world-features"
    extract_features(world / "videos", features, layout="howto100m")  # resumes: finished videos are skipped
    data = out / "world-teacher-data"
    if not (data / "meta.json").is_file():
        prepare_howto100m(world / "caption.json", features, data, valid_fraction=0.25)
    meta = read_json(data / "meta.json")
    config = load_config("quickstart-teacher", [f"output_dir={out / 'teacher'}", f"data.path={data}",
                                                 f"video.feature_dim={meta['feature_dim']}", "resume=true",
                                                 *overrides])
    run_dir = run_training(config)
    scores = evaluate_retrieval(run_dir, data, "valid", world / "videos", num_queries=4, top=5,
                                out=run_dir / "retrieval")
    start = _first_record(run_dir, "valid_r5")
    grid = Path(scores["grid"]).relative_to(out)
    held_out = meta["splits"]["valid"]
    return [
        "## 1. The video-language teacher on a synthetic world", "",
        f"- world: {num_videos} generated videos (`vlkd prepare world --videos {num_videos} --seed {WORLD_SEED}`), "
        "HowTo100M-format captions; features: MobileNetV2 (bundled ImageNet weights) at 1/s and weight-free "
        f"optical-flow motion at 1.5/s, {meta['feature_dim']}-d steps",
        f"- teacher: text tower {config.model.num_layers}L/{config.model.hidden_size}H + video tower "
        f"{config.video.num_layers}L/{config.video.hidden_size}H, `{' + '.join(t.loss for t in config.matching)}` + MLM, "
        f"{read_json(run_dir / 'results.json')['step']} steps of batch {config.batch_size}",
        f"- held-out caption -> video retrieval over {len(held_out['videos'])} videos: "
        f"R@1 **{scores['r1']:.3f}**, R@5 **{scores['r5']:.3f}**, R@10 {scores['r10']:.3f}, median rank "
        f"{scores['median_rank']:g} (R@5 before training: {'n/a' if start is None else f'{start:.3f}'}; "
        f"chance {min(5 / len(held_out['videos']), 1):.3f})",
        "- grounding: the middle frames of the top-5 videos for 4 held-out captions, the true one in green:", "",
        f"![grounding]({grid})", "",
        _embedded_report(run_dir, out),
    ]
