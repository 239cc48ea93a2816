"""`vlkd quickstart`: the embedded default, offline on a CPU, from bundled real data (README.md).

Stages (each resumable: re-running continues where a kill stopped it):
1. the video-language teacher on a generated synthetic world: world -> features -> samples -> training,
   with held-out caption -> video retrieval and its grounding grid (`vlkd.quickstart.vidlankd`);
2. a token store from the bundled Wikipedia lead sections + the world's training captions;
3. a tiny text-only BERT trained with masked language modelling (the VidLanKD baseline) and a student of
   the same size distilled from the teacher (MLM + NST) at equal compute;
4. both compared: held-out perplexity, grounding of their text in the teacher's video space (two routes),
   rt-polarity fine-tuning (bundled Rotten Tomatoes snippets) over 3 seeds;
5. VideoQA on the same world: DualVGR teacher, distilled student, student alone, motion ablation
   (`vlkd.quickstart.videoqa`);
then OUT/report.md with every stage's numbers and curves. It sits above the recipes: it runs them.
"""

from __future__ import annotations

from pathlib import Path

from vlkd.errors import VlkdError
from vlkd.io import write_text_atomic
from vlkd.quickstart.vidlankd import (
    WORLD_SEED, WORLD_VIDEOS, comparison_stage, distill_stage, teacher_stage, text_stage, world_captions)
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
        teacher_lines = teacher_stage(out, extra, world_videos)
        data = out / "world-teacher-data"
        store, mlm_run, text_lines = text_stage(out, extra, world_captions(out / "world", data, out))
        distill_run = distill_stage(out, extra, store, out / "teacher")
        lines += [*teacher_lines, *text_lines, *comparison_stage(out, extra, {"mlm": mlm_run, "distill": distill_run},
                                                                 out / "teacher", data)]
    if only in (None, "videoqa"):
        lines += videoqa_stage(out, extra, world_videos, world_seed=WORLD_SEED)
    report = out / "report.md"
    write_text_atomic(report, "\n".join(lines) + "\n")
    return report
