"""`vlkd extract-features`: appearance and motion features of many videos, in HowTo100M's or HCRN's layout.

Decoding runs in DataLoader workers, one pass per video: every frame is decoded (H.264 needs it) but
only the sampled ones are converted to RGB, at the two sizes the backbones want. Workers hand the main
process bounded chunks (a batch of frames or clips), so memory does not grow with a video's length; the
main process runs the backbones in inference mode and writes each finished video atomically.

Layouts (docs/formats.md):
- howto100m: OUT/2d/<id>.npy (T2, D2) appearance at `rate_2d` frames/s (short side resized + centre
  crop); OUT/3d/<id>.npy (T3, D3) motion on 16-frame clips of frames resampled to `fps_3d` (24/s ->
  1.5 clips/s; an incomplete last clip is dropped, a video shorter than one clip is edge-padded).
- hcrn: OUT/appearance_feat.h5 (`resnet_features` (V, N, 16, D2), `ids` (V,)) and OUT/motion_feat.h5
  (`resnext_features` (V, N, D3), `ids`), N clips of 16 frames centred at linspace(0, T, N+2)[1:-1],
  edge-padded, frames stretched to the backbone's square size (as HCRN did); `appearance_frames` < 16 keeps
  that many evenly spread frames of each clip for appearance (`resnet_features` (V, N, F, D2)). Per-video results go to
  OUT/.parts/ first; the HDF5 files are assembled (atomically, input order) once every video is done.

Resume: a re-run skips finished videos (their files exist) and produces the same bytes as one
uninterrupted run (each video's chunks and batches depend on that video only). A video that cannot be
read is listed in OUT/failed.txt (`path<TAB>reason`) and retried on the next run. A resumable preparation
(`vlkd.preparation.Resumable`): SIGTERM or SIGUSR1 finishes the video in hand and stops (exit code 75);
one process at a time per OUT (a lock).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

import h5py
import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from vlkd.data.videoqa.prepare import read_mapping
from vlkd.errors import VlkdError
from vlkd.io import atomic_path, write_json_atomic, write_text_atomic
from vlkd.preempt import ignore_stop_signals
from vlkd.preparation import Resumable
from vlkd.shards import Shard, ShardSet, digest, link_or_copy
from vlkd.video.backbones import FeatureModel, load_backbone
from vlkd.video.decode import Frame, FrameSize, iter_frames, probe
from vlkd.video.sampling import RateSampler, clip_indices, gather_frames

VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".gif", ".mpg", ".mpeg", ".flv", ".wmv"}
CLIP_LEN = 16
SHARD_COMMAND = "extract-features"


@dataclass(frozen=True)
class Plan:
    """Everything that determines the output bytes (saved as OUT/meta.json and checked on resume)."""

    layout: str
    appearance: str
    motion: str
    appearance_size: int
    motion_size: int
    num_clips: int = 8
    rate_2d: float = 1.0
    fps_3d: float = 24.0
    frame_batch: int = 32
    clip_batch: int = 4
    appearance_frames: int = CLIP_LEN  # hcrn: appearance frames per clip, evenly spread over it


def plan_meta(plan: Plan) -> dict:
    """The plan as meta.json records it: `appearance_frames` only when not the default, so an output written
    before the option existed still resumes (and keeps its bytes)."""
    fields = asdict(plan)
    if plan.appearance_frames == CLIP_LEN:
        del fields["appearance_frames"]
    return fields


def appearance_offsets(frames: int) -> list[int]:
    """Which of a clip's CLIP_LEN frames give appearance features: the centres of `frames` equal parts
    (all of them for CLIP_LEN; the middle one for 1)."""
    return [CLIP_LEN * (2 * j + 1) // (2 * frames) for j in range(frames)]


def default_workers(device: str) -> int:
    """Decoding processes when the user names none: on a CPU with two cores or fewer, none (decode in the main
    process: a decoding worker only takes cores from the backbones there; measured 1.13x faster on 2 cores,
    median of 4 paired runs on the bundled clips); elsewhere one, so decoding overlaps the backbones."""
    return 0 if device == "cpu" and (os.cpu_count() or 1) <= 2 else 1


def list_videos(videos: str | os.PathLike) -> list[Path]:
    """A directory (its video files, sorted) or a text file listing one path per line."""
    path = Path(videos)
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
        if not found:
            raise VlkdError(f"no video files ({', '.join(sorted(VIDEO_SUFFIXES))}) in the directory", path)
        return found
    if not path.is_file():
        raise VlkdError("no such directory or list file", path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise VlkdError("video list is not UTF-8 text", path) from None
    entries = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not entries:
        raise VlkdError("video list is empty", path)
    return [p if p.is_absolute() else path.parent / p for p in map(Path, entries)]


def video_ids(paths: list[Path]) -> list[str]:
    ids = [p.stem for p in paths]
    seen: dict[str, Path] = {}
    for vid, p in zip(ids, paths):
        if vid in seen:
            raise VlkdError(f"two videos have the id {vid!r} ({seen[vid]} and {p})", p)
        seen[vid] = p
    return ids


def _mapped_ids(ids: list[str], paths: list[Path], mapping: Path) -> list[str]:
    table = read_mapping(mapping)
    missing = [p for vid, p in zip(ids, paths) if vid not in table]
    if missing:
        raise VlkdError(f"{len(missing)} video(s) are not in the mapping, e.g. {missing[0].name}", mapping)
    return [f"vid{table[vid]}" for vid in ids]


# ---------------------------------------------------------------- decoding side (DataLoader workers)

def _chunks_hcrn(path: Path, plan: Plan) -> Iterator[tuple[str, np.ndarray]]:
    info = probe(path)
    idx = clip_indices(info.num_frames, plan.num_clips, CLIP_LEN)
    app, mot = FrameSize(plan.appearance_size, "stretch"), FrameSize(plan.motion_size, "stretch")
    app_idx = idx[:, appearance_offsets(plan.appearance_frames)].reshape(-1)  # (N*F,) clip by clip
    wanted, app_frames = set(app_idx.tolist()), {}

    def frames() -> Iterator[Frame]:  # resized to the appearance size only where an appearance frame is taken
        for frame in iter_frames(path, raw=True):
            if frame.index in wanted:
                app_frames[frame.index] = app.apply(frame.image)
            yield frame

    got, seen = gather_frames(frames(), idx, mot.apply)
    if got is None:
        raise VlkdError(f"truncated: decoded {seen} of {info.num_frames} frames", path)
    yield "app", np.stack([app_frames[int(i)] for i in app_idx])  # (N*F, H, W, 3)
    yield "mot", got  # (N, 16, h, w, 3)


def _chunks_howto100m(path: Path, plan: Plan) -> Iterator[tuple[str, np.ndarray]]:
    info = probe(path)
    app, mot = FrameSize(plan.appearance_size, "crop"), FrameSize(plan.motion_size, "crop")
    s2d, s3d = RateSampler(info.duration, plan.rate_2d), RateSampler(info.duration, plan.fps_3d)
    frames2d: list[np.ndarray] = []
    frames3d: list[np.ndarray] = []
    clips: list[np.ndarray] = []
    seen = 0

    def take(picked2d: list, picked3d: list) -> Iterator[tuple[str, np.ndarray]]:
        for _, f in picked2d:
            frames2d.append(app.apply(f.image))
            if len(frames2d) == plan.frame_batch:
                yield "app", np.stack(frames2d)
                frames2d.clear()
        for _, f in picked3d:
            frames3d.append(mot.apply(f.image))
            if len(frames3d) == CLIP_LEN:
                clips.append(np.stack(frames3d))
                frames3d.clear()
                if len(clips) == plan.clip_batch:
                    yield "mot", np.stack(clips)
                    clips.clear()

    for frame in iter_frames(path, raw=True):
        seen = frame.index + 1
        yield from take(s2d.push(frame), s3d.push(frame))
    if seen < info.num_frames:
        raise VlkdError(f"truncated: decoded {seen} of {info.num_frames} frames", path)
    yield from take(s2d.finish(), s3d.finish())
    if frames3d and s3d.k < CLIP_LEN:  # shorter than one clip: edge-pad it
        frames3d += [frames3d[-1]] * (CLIP_LEN - len(frames3d))
        clips.append(np.stack(frames3d))
    if frames2d:
        yield "app", np.stack(frames2d)
    if clips:
        yield "mot", np.stack(clips)


class VideoChunks(IterableDataset):
    """Yields (video index, kind, payload): kind "app"/"mot" with uint8 arrays, then "done" or "fail"."""

    def __init__(self, paths: list[Path], todo: list[int], plan: Plan) -> None:
        self.paths, self.todo, self.plan = paths, todo, plan

    def __iter__(self) -> Iterator[tuple[int, str, Any]]:
        info = get_worker_info()
        mine = self.todo if info is None else self.todo[info.id::info.num_workers]
        chunks = _chunks_hcrn if self.plan.layout == "hcrn" else _chunks_howto100m
        for i in mine:
            try:
                for kind, array in chunks(self.paths[i], self.plan):
                    yield i, kind, torch.from_numpy(array)
                yield i, "done", None
            except VlkdError as e:
                yield i, "fail", e.problem
            except Exception as e:  # an unforeseen decoder problem fails this video, not the run
                yield i, "fail", f"{type(e).__name__}: {e}".splitlines()[0]


# ---------------------------------------------------------------- model side (main process)

@torch.inference_mode()
def run_model(model: FeatureModel, pixels: torch.Tensor, batch: int, device: str) -> np.ndarray:
    outs = [model(pixels[i:i + batch].to(device, non_blocking=True)).float().cpu()
            for i in range(0, len(pixels), batch)]
    return torch.cat(outs).numpy()


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array.astype(np.float32))


def hcrn_ids(ids: list[str]) -> np.ndarray:
    """HCRN's integer ids (the trailing number of each name: video12 -> 12) when they are unique,
    else the names themselves as strings."""
    numeric = [re.search(r"(\d+)$", v) for v in ids]
    if all(numeric) and len({int(m.group(1)) for m in numeric}) == len(ids):
        return np.array([int(m.group(1)) for m in numeric], dtype=np.int64)
    return np.array(ids, dtype=h5py.string_dtype())


def _stored_ids(path: Path) -> list[int | str]:
    """The video ids of an HCRN file written by an earlier run (to resume), or a one-line error."""
    try:
        with h5py.File(path, "r") as f:
            ids = f.get("ids")
            if not isinstance(ids, h5py.Dataset) or ids.ndim != 1 or ids.dtype.kind not in "iuSO":
                raise VlkdError("has no 1-D 'ids' dataset of integers or strings: remove it to extract again", path)
            return [v.decode() if isinstance(v, bytes) else int(v) for v in ids[()]]
    except OSError as e:
        raise VlkdError(f"not a readable HDF5 file ({' '.join(str(e).split())[:160]}): remove it to extract again",
                        path) from None


class Writer:
    """Where finished videos go, and how to tell that a video is finished."""

    FILES = (("appearance_feat.h5", "app", "resnet_features"), ("motion_feat.h5", "mot", "resnext_features"))

    def __init__(self, out: Path, plan: Plan, ids: list[str]) -> None:
        self.out, self.plan = out, plan
        self.parts = out / ".parts"
        self.rows: dict[str, dict[str, int]] = {}  # HCRN: per finished HDF5 file, its videos -> row
        if plan.layout == "hcrn" and all((out / name).is_file() for name, _, _ in self.FILES):
            by_key: dict[int | str, str] = {vid: vid for vid in ids}  # stored ids may be names or numbers
            by_key.update({int(m.group(1)): vid for vid in ids if (m := re.search(r"(\d+)$", vid))})
            for name, _, _ in self.FILES:
                stored = _stored_ids(out / name)
                self.rows[name] = {by_key[k]: row for row, k in enumerate(stored) if k in by_key}
        self.in_h5 = set.intersection(*(set(r) for r in self.rows.values())) if self.rows else set()

    def finished(self, vid: str) -> bool:
        if self.plan.layout == "howto100m":
            return (self.out / "2d" / f"{vid}.npy").is_file() and (self.out / "3d" / f"{vid}.npy").is_file()
        return vid in self.in_h5 or (self.parts / f"{vid}.npz").is_file()

    def write(self, vid: str, app: np.ndarray, mot: np.ndarray) -> None:
        if self.plan.layout == "howto100m":
            _save_npy(self.out / "3d" / f"{vid}.npy", mot)
            _save_npy(self.out / "2d" / f"{vid}.npy", app)
            return
        app = app.reshape(self.plan.num_clips, self.plan.appearance_frames, -1)
        with atomic_path(self.parts / f"{vid}.npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, app=app.astype(np.float32), mot=mot.astype(np.float32))

    def _row(self, vid: str, key: str, old: h5py.File | None, name: str, dataset: str) -> np.ndarray:
        part = self.parts / f"{vid}.npz"
        if part.is_file():
            return np.load(part)[key]
        return old[dataset][self.rows[name][vid]]  # type: ignore[index]

    def assemble(self, ids: list[str]) -> None:
        """HCRN layout: the two HDF5 files (rows in input order) from the parts and the previous files;
        then drop the parts. Nothing to do when no part is waiting."""
        if self.plan.layout != "hcrn" or not self.parts.exists():
            return
        for name, key, dataset in self.FILES:
            previous = self.out / name
            old = h5py.File(previous, "r") if self.rows else None
            try:
                first = self._row(ids[0], key, old, name, dataset)
                with atomic_path(previous) as tmp:
                    with h5py.File(tmp, "w") as f:
                        data = f.create_dataset(dataset, (len(ids), *first.shape), dtype=np.float32,
                                                track_times=False)
                        for row, vid in enumerate(ids):
                            data[row] = self._row(vid, key, old, name, dataset)
                        f.create_dataset("ids", data=hcrn_ids(ids), track_times=False)
            finally:
                if old is not None:
                    old.close()
        for part in self.parts.iterdir():
            part.unlink()
        self.parts.rmdir()


def extract_features(videos: str | os.PathLike, out: str | os.PathLike, layout: str = "howto100m",
                     appearance: str = "mobilenet_v2", motion: str = "flow", weights: str | None = None,
                     motion_weights: str | None = None, num_clips: int = 8, appearance_size: int | None = None,
                     motion_size: int | None = None, workers: int | None = None, device: str | None = None,
                     progress: bool = True, mapping: str | os.PathLike | None = None,
                     shard: Shard | None = None, overwrite: bool = False,
                     appearance_frames: int = CLIP_LEN) -> dict:
    """Extract features of every video into `out`; returns counts {"done", "skipped", "failed"}.

    `mapping` (MSVD's youtube_mapping.txt, lines `NAME vidN`) renames each video NAME.ext to vidN, so the
    HCRN ids are the N the questions use (a YouTube clip name's trailing number is its end second).
    With `shard` K/N: only the K-th of N contiguous ranges of the videos (in listing order), into
    OUT.shards/K-of-N/ (resumable the same way; HCRN parts are kept for the merge); `merge_feature_shards`
    then writes OUT. An output made with other settings, or a directory that is no extraction's, is refused
    unless `overwrite` (which starts it again). `appearance_frames` (hcrn only): appearance frames per clip,
    evenly spread (fewer frames at a larger `appearance_size` cost less and resolve small objects better).
    `workers`: decoding processes, 0 decodes in this process; None: `default_workers(device)`."""
    if layout not in ("howto100m", "hcrn"):
        raise VlkdError(f"unknown layout {layout!r} (howto100m or hcrn)")
    if num_clips < 1:
        raise VlkdError(f"--num-clips must be at least 1 (got {num_clips})")
    if not 1 <= appearance_frames <= CLIP_LEN:
        raise VlkdError(f"--appearance-frames must be in 1..{CLIP_LEN} (got {appearance_frames})")
    if layout != "hcrn" and appearance_frames != CLIP_LEN:
        raise VlkdError("--appearance-frames is for --layout hcrn (howto100m samples appearance at --rate-2d)")
    out = Path(out)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    workers = default_workers(device) if workers is None else workers
    paths = list_videos(videos)
    ids = video_ids(paths)
    if mapping is not None:
        ids = _mapped_ids(ids, paths, Path(mapping))
    app_model = load_backbone(appearance, weights, device)
    mot_model = load_backbone(motion, motion_weights, device)
    if app_model.spec.kind != "2d":
        raise VlkdError(f"--appearance must be a 2D backbone; {appearance} is {app_model.spec.kind}")
    if mot_model.spec.kind != "3d":
        raise VlkdError(f"--motion must be a 3D backbone or flow; {motion} is {mot_model.spec.kind}")
    plan = Plan(layout, appearance, motion, appearance_size or app_model.spec.size,
                motion_size or mot_model.spec.size, num_clips, appearance_frames=appearance_frames)
    meta = {"plan": plan_meta(plan),
            "appearance": {"dim": app_model.spec.dim, "weights": str(app_model.weights or "random"),
                           "normalisation": app_model.spec.normalisation(), **app_model.describe()},
            "motion": {"dim": mot_model.spec.dim, "weights": str(mot_model.weights or "none"),
                       "normalisation": mot_model.spec.normalisation(), "notes": mot_model.spec.notes}}
    if mapping is not None:  # only then: an output written before --mapping existed still resumes
        meta["mapping"] = str(mapping)
    lo, hi = (0, len(ids)) if shard is None else shard.span(len(ids))
    identity = {"videos": os.fspath(Path(videos).resolve()), "count": len(ids),
                "listing": digest([ids, [os.fspath(p) for p in paths]]), "meta": meta}
    run = Resumable(SHARD_COMMAND, out, overwrite=overwrite, shard=shard, identity=identity)
    if run.finished is not None:
        return run.finished["counts"]
    with run:
        return _extract(run, paths, ids, meta, plan, app_model, mot_model, device, workers, progress, videos, lo, hi)


def _finished_videos(loader: DataLoader, app_model: FeatureModel, mot_model: FeatureModel, plan: Plan,
                     device: str) -> Iterator[tuple[int, str, Any]]:
    """Run the models on the decoded chunks as they come; yield (video index, "done", {"app", "mot"} features)
    or (video index, "fail", reason) once a video is through."""
    pending: dict[int, dict[str, list[np.ndarray]]] = {}
    for i, kind, payload in loader:
        if kind == "app":
            pending.setdefault(i, {"app": [], "mot": []})["app"].append(
                run_model(app_model, payload, plan.frame_batch, device))
        elif kind == "mot":
            pending.setdefault(i, {"app": [], "mot": []})["mot"].append(
                run_model(mot_model, payload, plan.clip_batch, device))
        else:
            parts = pending.pop(i, {"app": [], "mot": []})
            yield i, kind, payload if kind == "fail" else parts


def _extract(run: Resumable, paths: list[Path], ids: list[str], meta: dict, plan: Plan, app_model: FeatureModel,
             mot_model: FeatureModel, device: str, workers: int, progress: bool, videos: str | os.PathLike, lo: int,
             hi: int) -> dict:
    """The extraction proper of videos lo..hi-1, under OUT's (or the shard directory's) lock and with stop
    signals caught."""
    out = run.dir
    if run.claim(("meta.json",), lambda old: old == json.loads(json.dumps(meta)),  # plan, backbones, weights
                 " (made with different settings or weights)") is None:
        write_json_atomic(out / "meta.json", meta)
    writer = Writer(out, plan, ids)
    todo = [i for i in range(lo, hi) if not writer.finished(ids[i])]
    failures: dict[int, str] = {}
    loader = DataLoader(VideoChunks(paths, todo, plan), batch_size=None, num_workers=min(workers, len(todo)),
                        prefetch_factor=4 if workers > 0 and todo else None, worker_init_fn=ignore_stop_signals)
    with torch.no_grad():
        for i, kind, result in run.each(_finished_videos(loader, app_model, mot_model, plan, device), total=hi - lo,
                                        done=hi - lo - len(todo), unit="video", progress=progress):
            if kind == "fail":
                failures[i] = result
            else:
                writer.write(ids[i], np.concatenate(result["app"]), np.concatenate(result["mot"]))
    lines = [f"{paths[i]}\t{failures[i]}\n" for i in sorted(failures)]
    if lines:
        write_text_atomic(out / "failed.txt", "".join(lines))
    elif (out / "failed.txt").exists():
        (out / "failed.txt").unlink()
    counts = {"videos": hi - lo, "extracted": len(todo) - len(failures), "skipped": hi - lo - len(todo),
              "failed": len(failures)}
    good = [ids[i] for i in range(lo, hi) if i not in failures]
    if run.shard is not None:  # the merge checks that some video was read, and assembles HCRN files
        run.complete({"counts": counts, "good": good, "videos": os.fspath(videos)})
        return counts
    if not good:
        raise VlkdError(f"no video could be read (reasons in {out / 'failed.txt'})", videos)
    writer.assemble(good)
    return counts


def merge_feature_shards(shards: ShardSet, directory: Path) -> dict:
    """Write into `directory` what one unsharded `extract_features` run writes, from its shards: the per-video
    files (hard-linked, howto100m layout) or the HCRN files assembled from the shards' parts, in listing
    order, with meta.json and failed.txt."""
    results = shards.results
    good = [vid for r in results for vid in r["good"]]
    failed = "".join((d / "failed.txt").read_text(encoding="utf-8") for d in shards.dirs
                     if (d / "failed.txt").is_file())
    if not good:
        raise VlkdError("no video could be read (reasons in the shards' failed.txt)", results[0]["videos"])
    plan = Plan(**shards.inputs["meta"]["plan"])
    link_or_copy(shards.dirs[0] / "meta.json", directory / "meta.json")
    subdirs = ("2d", "3d") if plan.layout == "howto100m" else (".parts",)
    for sub in subdirs:
        (directory / sub).mkdir()
        for d in shards.dirs:
            if (d / sub).is_dir():
                for f in sorted((d / sub).iterdir()):
                    if not f.name.startswith("."):
                        link_or_copy(f, directory / sub / f.name)
    Writer(directory, plan, good).assemble(good)
    if failed:
        write_text_atomic(directory / "failed.txt", failed)
    return {"videos": sum(r["counts"]["videos"] for r in results), "failed": failed.count("\n")}

