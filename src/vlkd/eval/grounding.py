"""`vlkd evaluate retrieval`: a trained teacher's caption -> video retrieval on prepared held-out data,
and the paper's grounding picture: for a few captions, the middle frames of the top-ranked videos."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

from vlkd.data.teacher.collate import TeacherCollator  # noqa: E402
from vlkd.data.teacher.howto100m import TeacherSamples  # noqa: E402
from vlkd.errors import VlkdError  # noqa: E402
from vlkd.eval.retrieval import encode_split, retrieval_metrics  # noqa: E402
from vlkd.io import atomic_path, write_json_atomic  # noqa: E402
from vlkd.models.teacher import load_teacher  # noqa: E402
from vlkd.rundir import RunDir  # noqa: E402
from vlkd.video.decode import FrameSize, iter_frames, probe  # noqa: E402


def middle_frame(video: Path, size: int = 112) -> np.ndarray:
    """The frame at the middle of the video, resized and centre-cropped to size x size."""
    target = probe(video).num_frames // 2
    for frame in iter_frames(video, FrameSize(size)):
        if frame.index >= target:
            return frame.image
    raise VlkdError("video ended before its middle frame", video)


def find_video(videos_dir: Path, video_id: str) -> Path:
    matches = sorted(videos_dir.glob(f"{video_id}.*"))
    if not matches:
        raise VlkdError(f"no video file for id {video_id!r}", videos_dir)
    return matches[0]


def grid(captions: list[str], frames: list[list[np.ndarray]], truth: list[list[bool]], path: Path) -> None:
    """Rows: captions; columns: top-ranked videos' middle frames, the true video outlined in green."""
    rows, cols = len(frames), len(frames[0])
    fig, axes = plt.subplots(rows, cols, figsize=(2.0 * cols, 2.3 * rows), squeeze=False)
    for r in range(rows):
        for c in range(cols):
            ax = axes[r][c]
            ax.imshow(frames[r][c])
            ax.set_xticks([]), ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_color("limegreen" if truth[r][c] else "lightgray")
                spine.set_linewidth(4 if truth[r][c] else 1)
            ax.set_title(f"#{c + 1}", fontsize=8)
        axes[r][0].set_ylabel("\n".join(textwrap.wrap(captions[r], 28)[:4]), fontsize=7, rotation=0,
                              ha="right", va="center", labelpad=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)


def evaluate_retrieval(run_dir: str | Path, data_dir: str | Path, split: str = "valid",
                       videos_dir: str | Path | None = None, num_queries: int = 4, top: int = 5,
                       out: str | Path | None = None) -> dict[str, Any]:
    """Score retrieval on `split`; with `videos_dir`, also write the grounding grid PNG."""
    run_dir, data_dir = Path(run_dir), Path(data_dir)
    teacher = load_teacher(RunDir(run_dir).final)
    samples = TeacherSamples(data_dir, split)
    if len(samples) < 2:
        raise VlkdError(f"split {split!r} has {len(samples)} samples; need at least 2", data_dir)
    if samples.feature_dim != teacher.video.cfg.feature_dim:
        raise VlkdError(f"feature width {samples.feature_dim} differs from the teacher's "
                        f"{teacher.video.cfg.feature_dim}", data_dir / "meta.json")
    meta = samples.meta
    collate = TeacherCollator(meta["special_ids"], meta["vocab_size"], 0.0)
    items = list(range(len(samples)))
    queries, gallery = encode_split(teacher, samples, collate, items, torch.device("cpu"))
    result: dict[str, Any] = {"split": split, **retrieval_metrics(queries, gallery)}
    out = Path(out) if out else RunDir(run_dir).retrieval
    if videos_dir is not None:
        draw_grounding_grid(samples, data_dir, Path(videos_dir), queries @ gallery.T, num_queries, top,
                            out.with_suffix(".png"))
        result["grid"] = str(out.with_suffix(".png"))
    write_json_atomic(out.with_suffix(".json"), result)
    return result


def draw_grounding_grid(samples: TeacherSamples, data_dir: Path, videos_dir: Path, scores: np.ndarray,
                        num_queries: int, top: int, path: Path) -> None:
    """The paper's grounding picture from caption x gallery `scores` (gallery row i is caption i's clip):
    the first `num_queries` captions, each with the middle frames of its `top` best-scored videos."""
    tok = AutoTokenizer.from_pretrained(data_dir / "tokenizer")
    captions, frames, truth = [], [], []
    for q in range(min(num_queries, len(samples))):
        ranked = np.argsort(-scores[q], kind="stable")[:top]
        captions.append(tok.decode(samples[q]["tokens"]))
        ids = [samples.videos[samples[int(g)]["video"]] for g in ranked]
        frames.append([middle_frame(find_video(videos_dir, vid)) for vid in ids])
        truth.append([int(g) == q for g in ranked])
    grid(captions, frames, truth, path)
