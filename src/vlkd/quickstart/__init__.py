"""`vlkd quickstart`: the embedded default, offline on a CPU, from bundled real data (README.md).

Stages (each resumable: re-running continues where a kill stopped it):
1. token store from the bundled Wikipedia lead sections (bert-base-uncased vocabulary);
2. a tiny text-only BERT trained with masked language modelling (the VidLanKD baseline);
3. that model fine-tuned on `rt-polarity` (bundled Rotten Tomatoes snippets, `vlkd prepare bundled`);
4. the video-language teacher on a generated synthetic world: world -> features -> samples -> training,
   with held-out caption -> video retrieval and its grounding grid (`vlkd.quickstart.vidlankd`);
5. VideoQA on the same world: DualVGR teacher, distilled student, student alone, motion ablation
   (`vlkd.quickstart.videoqa`);
then OUT/report.md with every stage's numbers and curves. It sits above the recipes: it runs them.
"""

from __future__ import annotations

from pathlib import Path

from vlkd.errors import VlkdError
from vlkd.io import write_text_atomic
from vlkd.quickstart.vidlankd import WORLD_SEED, WORLD_VIDEOS, finetune_stage, teacher_stage, text_stage
from vlkd.quickstart.videoqa import videoqa_stage


def run_quickstart(out: str | Path, only: str | None = None, overrides: list[str] | None = None,
                   world_videos: int = WORLD_VIDEOS) -> Path:
    """Run every available stage into `out` and write `out/report.md`.

    `overrides` (key=value) apply to every training stage and `world_videos` sizes the synthetic world,
    e.g. to shorten the run in tests.
    """
    out = Path(out)
    if only not in (None, "vidlankd", "videoqa"):
        raise VlkdError(f"--only must be vidlankd or videoqa, got {only!r}")
    extra = list(overrides or [])
    lines = ["# vlkd quickstart", "", "Offline, on the CPU, from bundled real data.", ""]
    if only in (None, "vidlankd"):
        run_dir, text_lines = text_stage(out, extra)
        lines += [*text_lines, *finetune_stage(out, run_dir / "final", extra), *teacher_stage(out, extra, world_videos)]
    if only in (None, "videoqa"):
        lines += videoqa_stage(out, extra, world_videos, world_seed=WORLD_SEED)
    report = out / "report.md"
    write_text_atomic(report, "\n".join(lines) + "\n")
    return report
