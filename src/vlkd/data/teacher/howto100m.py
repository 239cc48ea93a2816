"""HowTo100M teacher samples (docs/formats.md): caption windows paired with [2D || 3D] feature steps.

Input: `caption.json` ({video_id: {"start": [s...], "end": [s...], "text": [str...]}}, ASR segments in
seconds) and per-video feature files FEATURES/<2d>/<id>.npy (T2, D2) at 1 feature/s and
FEATURES/<3d>/<id>.npy (T3, D3) at 1.5 features/s.

A sample joins consecutive non-empty segments of one video until the text reaches `word_budget` words
(the reference: 126; the tokens are then truncated to `max_tokens`). Its window is [start of first, end
of last]; the 2D steps inside the window at 1/s give the step count, the 3D indices of the same window
are resampled onto that many steps, and each step is [2D || 3D]. Longer than `max_steps` (384):
subsampled uniformly. Videos with a missing or empty feature file are skipped and counted.

Output, per split (`train/`, `valid/`, split by video id hash so adding videos never moves others):

    tokens.bin     (S, max_tokens) uint16/uint32 ids without special tokens, zero-padded
    lengths.bin    (S,) int32 token counts
    steps.bin      (total_steps, D2 + D3) float16, every sample's steps back to back
    offsets.bin    (S, 2) int64 (first step, number of steps)
    videos.bin     (S,) int32 index into meta["videos"]
    meta.json      counts, shapes, feature width, tokenizer, vocabulary checksum, skip reasons
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import numpy as np
from vlkd.data.mapped import MappedArrays, read_meta
from vlkd.data.tokenizer import load_tokenizer, vocab_fingerprint
from vlkd.errors import VlkdError
from vlkd.io import read_json, write_json_atomic
from vlkd.preparation import SHARD_DATA, WriteOnce, progress_bar
from vlkd.shards import Shard, ShardSet, concat_files, file_identity

FORMAT_VERSION = 1
RATE_2D, RATE_3D = 1.0, 1.5
SPLITS = ("train", "valid")
_FILES = ("tokens.bin", "lengths.bin", "steps.bin", "offsets.bin", "videos.bin")
SHARD_COMMAND = "prepare howto100m"


@dataclass
class Segment:
    start: float
    end: float
    text: str


def read_captions(path: Path) -> dict[str, list[Segment]]:
    """Parse and validate caption.json; every problem names the file and the video."""
    raw = read_json(path)
    if not isinstance(raw, dict):
        raise VlkdError("caption.json must be a JSON object mapping video ids to segments", path)
    captions: dict[str, list[Segment]] = {}
    for vid, entry in raw.items():
        if not isinstance(entry, dict) or not all(k in entry for k in ("start", "end", "text")):
            raise VlkdError(f"video {vid!r}: expected an object with 'start', 'end' and 'text' lists", path)
        start, end, text = entry["start"], entry["end"], entry["text"]
        if not (isinstance(start, list) and isinstance(end, list) and isinstance(text, list)):
            raise VlkdError(f"video {vid!r}: 'start', 'end' and 'text' must be lists", path)
        if not len(start) == len(end) == len(text):
            raise VlkdError(f"video {vid!r}: start/end/text lengths differ ({len(start)}/{len(end)}/{len(text)})",
                            path)
        segments = []
        for i, (s, e, t) in enumerate(zip(start, end, text)):
            if not _is_number(s) or not _is_number(e) or not isinstance(t, str):
                raise VlkdError(f"video {vid!r}, segment {i}: start/end must be numbers and text a string", path)
            if not (_finite(s) and _finite(e)) or s < 0:
                raise VlkdError(f"video {vid!r}, segment {i}: times must be finite and not negative, got start {s} "
                                f"and end {e}", path)
            if e < s:
                raise VlkdError(f"video {vid!r}, segment {i}: end {e} is before start {s}", path)
            segments.append(Segment(float(s), float(e), t))
        captions[str(vid)] = segments
    return captions


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer beyond float range
        return False


def caption_windows(segments: list[Segment], word_budget: int) -> Iterator[tuple[float, float, str]]:
    """Join consecutive non-empty segments until `word_budget` words; yield (start, end, text)."""
    words: list[str] = []
    first: Segment | None = None
    last: Segment | None = None
    for seg in segments:
        seg_words = seg.text.split()
        if not seg_words:
            continue
        first = first or seg
        last = seg
        words += seg_words
        if len(words) >= word_budget:
            yield first.start, max(last.end, first.start), " ".join(words[:word_budget])
            words, first = [], None
    if words and first is not None and last is not None:
        yield first.start, max(last.end, first.start), " ".join(words)


def window_steps(feat_2d: np.ndarray, feat_3d: np.ndarray, start: float, end: float, max_steps: int) -> np.ndarray:
    """The [2D || 3D] steps of one time window: 2D at 1/s decides the count, 3D is resampled onto it."""
    t2, t3 = len(feat_2d), len(feat_3d)
    s2 = min(int(math.floor(start * RATE_2D)), t2 - 1)
    e2 = min(max(int(math.ceil(end * RATE_2D)), s2 + 1), t2)
    idx2 = np.arange(s2, e2)
    s3 = min(int(math.floor(start * RATE_3D)), t3 - 1)
    e3 = min(max(int(math.ceil(end * RATE_3D)), s3 + 1), t3)
    idx3 = np.rint(np.linspace(s3, e3 - 1, num=len(idx2))).astype(np.int64)
    if len(idx2) > max_steps:
        keep = np.rint(np.linspace(0, len(idx2) - 1, num=max_steps)).astype(np.int64)
        idx2, idx3 = idx2[keep], idx3[keep]
    return np.concatenate([feat_2d[idx2], feat_3d[idx3]], axis=1)


def split_of(video_id: str, valid_fraction: float) -> str:
    """Stable split by a hash of the id: independent of which other videos exist."""
    h = int.from_bytes(hashlib.sha1(video_id.encode()).digest()[:8], "big") / 2**64
    return "valid" if h < valid_fraction else "train"


def _load_features(path: Path) -> np.ndarray | str:
    """The feature array, or the reason the video is skipped."""
    if not path.is_file():
        return "missing feature file"
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        reason = (str(e).splitlines() or [type(e).__name__])[0][:120]
        raise VlkdError(f"unreadable .npy feature file ({reason})", path) from None
    if not isinstance(arr, np.ndarray):
        raise VlkdError("not a .npy array (an .npz archive?)", path)
    if arr.dtype.kind not in "fiu":
        raise VlkdError(f"feature array must hold numbers, got dtype {arr.dtype}", path)
    if arr.ndim != 2:
        raise VlkdError(f"feature array must be 2-D (steps, dim), got shape {arr.shape}", path)
    if arr.shape[0] == 0:
        return "empty feature file"
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        row = int(np.argwhere(~np.isfinite(arr))[0][0])
        raise VlkdError(f"feature array holds NaN or infinite values (first at step {row})", path)
    return arr


class _SplitWriter:
    def __init__(self, root: Path, max_tokens: int, token_dtype: np.dtype) -> None:
        root.mkdir(parents=True)
        self.root, self.max_tokens, self.token_dtype = root, max_tokens, token_dtype
        self.files: dict[str, BinaryIO] = {name: open(root / name, "wb") for name in _FILES}
        self.samples = self.steps = 0
        self.videos: list[str] = []

    def add_video(self, video_id: str) -> int:
        self.videos.append(video_id)
        return len(self.videos) - 1

    def add(self, ids: list[int], steps: np.ndarray, video: int) -> None:
        row = np.zeros(self.max_tokens, dtype=self.token_dtype)
        row[: len(ids)] = ids
        self.files["tokens.bin"].write(row.tobytes())
        self.files["lengths.bin"].write(np.int32(len(ids)).tobytes())
        self.files["steps.bin"].write(steps.astype("<f2").tobytes())
        self.files["offsets.bin"].write(np.array([self.steps, len(steps)], dtype="<i8").tobytes())
        self.files["videos.bin"].write(np.int32(video).tobytes())
        self.samples += 1
        self.steps += len(steps)

    def close(self) -> None:
        for f in self.files.values():
            f.flush()
            os.fsync(f.fileno())
            f.close()


def prepare_howto100m(
    captions: str | os.PathLike,
    features: str | os.PathLike,
    out_dir: str | os.PathLike,
    tokenizer: str = "bundled:minilm",
    *,
    feature_2d: str = "2d",
    feature_3d: str = "3d",
    word_budget: int = 126,
    max_tokens: int = 126,
    max_steps: int = 384,
    valid_fraction: float = 0.05,
    progress: bool = True,
    shard: Shard | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Build teacher samples from caption.json and feature files; returns the metadata. An existing output
    (or, with `shard`, shard directory) is refused unless `overwrite`. Write-once (`preparation.WriteOnce`),
    without resume: a big collection is split with `shard` instead.

    With `shard` K/N: only the K-th of N contiguous ranges of the sorted video ids, into OUT.shards/K-of-N/data
    (the same split files for those videos); `merge_howto100m_shards` concatenates them into OUT."""
    captions_path, features_dir, out_dir = Path(captions), Path(features), Path(out_dir)
    caps = read_captions(captions_path)
    for sub in (feature_2d, feature_3d):
        if not (features_dir / sub).is_dir():
            raise VlkdError(f"feature folder {sub!r} not found (set --feature-2d/--feature-3d)", features_dir / sub)
    tok = load_tokenizer(tokenizer)
    settings = {"tokenizer": tokenizer, "vocab_sha": vocab_fingerprint(tok), "word_budget": word_budget,
                "max_tokens": max_tokens, "max_steps": max_steps, "valid_fraction": valid_fraction}
    vids = sorted(caps)
    identity = {"captions": file_identity([captions_path])[0], "features": os.fspath(features_dir.resolve()),
                "feature_2d": feature_2d, "feature_3d": feature_3d, **settings}
    output = WriteOnce(SHARD_COMMAND, out_dir, overwrite=overwrite, shard=shard, identity=identity)
    lo, hi = (0, len(vids)) if shard is None else shard.span(len(vids))

    def build(tmp: Path) -> dict[str, Any]:
        part = _build(caps, vids[lo:hi], features_dir, feature_2d, feature_3d, tmp, tok, progress, **settings)
        if shard is not None:
            return {**part, "videos_total": len(caps)}
        meta = _meta([part], len(caps), captions_path, settings)
        write_json_atomic(tmp / "meta.json", meta)
        return meta

    return output.write(build)


def _build(caps: dict[str, list[Segment]], vids: list[str], features_dir: Path, feature_2d: str, feature_3d: str,
           out: Path, tok: Any, progress: bool, *, word_budget: int, max_tokens: int, max_steps: int,
           valid_fraction: float, **_: Any) -> dict[str, Any]:
    """Write the split files of videos `vids` (in order) and the tokenizer into `out`; returns the counts."""
    token_dtype = np.dtype("<u2") if len(tok) <= 1 << 16 else np.dtype("<u4")
    skipped: Counter[str] = Counter()
    mismatched = 0
    dims: tuple[int, int] | None = None
    writers = {split: _SplitWriter(out / split, max_tokens, token_dtype) for split in SPLITS}
    for vid in progress_bar(len(vids), "howto100m", "it", progress, iterable=vids):
        f2 = _load_features(features_dir / feature_2d / f"{vid}.npy")
        f3 = _load_features(features_dir / feature_3d / f"{vid}.npy")
        reason = f2 if isinstance(f2, str) else f3 if isinstance(f3, str) else None
        if reason:
            skipped[reason] += 1
            continue
        if dims is None:
            dims = (f2.shape[1], f3.shape[1])
        elif (f2.shape[1], f3.shape[1]) != dims:
            raise VlkdError(f"feature widths {f2.shape[1]}+{f3.shape[1]} differ from earlier videos' "
                            f"{dims[0]}+{dims[1]}", features_dir / feature_2d / f"{vid}.npy")
        if abs(len(f3) - RATE_3D / RATE_2D * len(f2)) > 2:
            mismatched += 1  # durations disagree; both are clipped to their own length
        windows = list(caption_windows(caps[vid], word_budget))
        if not windows:
            skipped["no caption text"] += 1
            continue
        texts = [text for _, _, text in windows]
        ids = tok(texts, add_special_tokens=False, truncation=True, max_length=max_tokens)["input_ids"]
        writer = writers[split_of(vid, valid_fraction)]
        video_index = writer.add_video(vid)
        for (start, end, _), sample_ids in zip(windows, ids):
            writer.add(sample_ids, window_steps(f2, f3, start, end, max_steps), video_index)
    for writer in writers.values():
        writer.close()
    tok.save_pretrained(out / "tokenizer")
    return {"dims": dims, "skipped": dict(skipped), "mismatched": mismatched,
            "token_dtype": "uint16" if token_dtype.itemsize == 2 else "uint32", "vocab_size": len(tok),
            "special_ids": {name: getattr(tok, f"{name}_token_id") for name in ("cls", "sep", "mask", "pad")},
            "splits": {split: {"samples": w.samples, "steps": w.steps, "videos": w.videos}
                       for split, w in writers.items()}}


def _meta(parts: list[dict[str, Any]], videos_total: int, captions_path: Path, settings: dict[str, Any],
          where: list[Path] | None = None) -> dict[str, Any]:
    """meta.json of the videos of `parts` (results of `_build`, in video order): one run's, or its shards'."""
    dims = None
    for i, part in enumerate(parts):
        if part["dims"] is not None:
            if dims is None:
                dims = tuple(part["dims"])
            elif tuple(part["dims"]) != dims:
                raise VlkdError(f"feature widths {part['dims'][0]}+{part['dims'][1]} differ from earlier shards' "
                                f"{dims[0]}+{dims[1]}", where[i] if where else captions_path)
    skipped: Counter[str] = Counter()
    for part in parts:
        skipped.update(part["skipped"])
    splits = {split: {"samples": sum(p["splits"][split]["samples"] for p in parts),
                      "steps": sum(p["splits"][split]["steps"] for p in parts),
                      "videos": [v for p in parts for v in p["splits"][split]["videos"]]} for split in SPLITS}
    if dims is None or splits["train"]["samples"] == 0:
        raise VlkdError(f"no usable training samples ({sum(skipped.values())} videos skipped: "
                        f"{dict(skipped)})", captions_path)
    first = parts[0]
    return {
        "format_version": FORMAT_VERSION,
        "feature_dim": dims[0] + dims[1],
        "feature_2d_dim": dims[0],
        "feature_3d_dim": dims[1],
        "max_tokens": settings["max_tokens"],
        "max_steps": settings["max_steps"],
        "word_budget": settings["word_budget"],
        "token_dtype": first["token_dtype"],
        "tokenizer": settings["tokenizer"],
        "vocab_size": first["vocab_size"],
        "vocab_sha": settings["vocab_sha"],
        "special_ids": first["special_ids"],
        "videos_total": videos_total,
        "videos_kept": sum(len(s["videos"]) for s in splits.values()),
        "videos_skipped": dict(sorted(skipped.items())),
        "videos_length_mismatch": sum(p["mismatched"] for p in parts),
        "splits": splits,
    }


def merge_howto100m_shards(shards: ShardSet, directory: Path) -> dict[str, Any]:
    """Concatenate the shards' splits into `directory`, as one unsharded `prepare_howto100m` writes; returns
    its meta. Offsets and video indices of later shards are shifted past the earlier shards' rows."""
    inputs, parts = shards.inputs, shards.results
    settings = {k: inputs[k] for k in ("tokenizer", "vocab_sha", "word_budget", "max_tokens", "max_steps",
                                       "valid_fraction")}
    meta = _meta(parts, parts[0]["videos_total"], Path(inputs["captions"][0]), settings, shards.dirs)
    for split in SPLITS:
        (directory / split).mkdir(parents=True)
        for name in ("tokens.bin", "lengths.bin", "steps.bin"):
            concat_files([d / SHARD_DATA / split / name for d in shards.dirs], directory / split / name)
        steps = videos = 0
        with open(directory / split / "offsets.bin", "wb") as offsets, \
                open(directory / split / "videos.bin", "wb") as index:
            for d, part in zip(shards.dirs, parts):
                off = np.fromfile(d / SHARD_DATA / split / "offsets.bin", dtype="<i8").reshape(-1, 2)
                off[:, 0] += steps
                offsets.write(off.tobytes())
                index.write((np.fromfile(d / SHARD_DATA / split / "videos.bin", dtype="<i4") + videos)
                            .astype("<i4").tobytes())
                steps += part["splits"][split]["steps"]
                videos += len(part["splits"][split]["videos"])
    shutil.copytree(shards.dirs[0] / SHARD_DATA / "tokenizer", directory / "tokenizer")
    write_json_atomic(directory / "meta.json", meta)
    TeacherSamples(directory, "train")  # every file of the size meta.json says
    return meta


class TeacherSamples:
    """One split of a prepared HowTo100M directory, memory-mapped (`MappedArrays`): item i -> dict of numpy
    arrays."""

    def __init__(self, root: str | os.PathLike, split: str) -> None:
        self.root = Path(root)
        self.meta = read_meta(self.root / "meta.json", "HowTo100M teacher samples", FORMAT_VERSION)
        if split not in (self.meta.get("splits") or {}):
            raise VlkdError(f"not a prepared HowTo100M directory with split {split!r}", self.root / "meta.json")
        info = self.meta["splits"][split]
        self.num_samples, self.num_steps = info["samples"], info["steps"]
        self.videos: list[str] = info["videos"]
        self.feature_dim: int = self.meta["feature_dim"]
        self.max_tokens: int = self.meta["max_tokens"]
        token_dtype = "<u2" if self.meta["token_dtype"] == "uint16" else "<u4"
        self._arrays = MappedArrays(self.root / split, {
            "tokens.bin": (token_dtype, (self.num_samples, self.max_tokens)),
            "lengths.bin": ("<i4", (self.num_samples,)),
            "steps.bin": ("<f2", (self.num_steps, self.feature_dim)),
            "offsets.bin": ("<i8", (self.num_samples, 2)),
            "videos.bin": ("<i4", (self.num_samples,)),
        }, "re-run prepare")

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        a = self._arrays
        length = int(a["lengths.bin"][i])
        first, count = (int(x) for x in a["offsets.bin"][i])
        return {"tokens": a["tokens.bin"][i, :length].astype(np.int64),
                "steps": np.asarray(a["steps.bin"][first:first + count], dtype=np.float32),
                "video": int(a["videos.bin"][i])}
