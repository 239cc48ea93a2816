"""Benchmark `vlkd extract-features`: throughput against a naive extractor, and peak memory vs video length.

- throughput: video frames per second of wall time to extract HCRN-layout features (8 clips x 16
  frames; MobileNetV2 appearance at 224x224 with the bundled weights, optical-flow motion at 112x112)
  from the four bundled real clips (1280x720, 640x272, 2x 176x144; 622 frames). "ours" is
  `extract_features` with its default settings (`default_workers`: no decoding worker on a CPU with
  2 cores or fewer, one elsewhere). The reference is the naive way, as HCRN's
  preprocess script: decode every frame to an RGB array in memory, then for each clip resize its frames
  and run the CNN on that clip with autograd on (model.eval(), no inference mode). Same backbones, same
  clip indices, same frame sizes. Timing is paired (benchmarks/paired_timing.py): each round runs both
  sides once on all four clips, the order reversed every other round; the figure is the median of the
  per-round ratios, with quartiles and extremes.
- over its own limit: the same extraction's time over the sum of what it cannot avoid, timed as two more
  sides of the same rounds: the decode of exactly the frames it needs (PyAV, every frame up to the last
  needed one, as H.264 requires; only the needed ones converted to RGB at 224x224 and 112x112) and the
  CNNs on those frames alone (inference mode, the extractor's batches: 32 frames, 4 clips; frames decoded
  beforehand). Ratio = extraction / (decode + CNN) per round, target <= 1.15; the naive ratio of the same
  rounds is beside it. Where the extractor decodes in a worker while the main process runs the CNNs (more
  than 2 cores, or a GPU), it can come in under 1.
- peak memory: peak RSS (VmHWM) of a child process extracting (HowTo100M layout, decoding in-process) a
  400 s video against a 40 s one (320x240, 8 fps, generated here; 40 s already fills every batch, so any
  growth would come from the length); streaming means ~equal. (`--quick`: a 2x longer video, 80 s.)

Prints one JSON line per figure (README.md, Benchmarks); progress notes go to stderr. Full run: 9.4 min of
CPU time (37 min of wall time on a 2-core machine under heavy load, 2026-12-06); `--quick` is a smoke run.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
import torchvision.transforms.functional as TF

from vlkd.data.bundled import bundled_path
from vlkd.video.backbones import load_backbone
from vlkd.video.decode import probe
from vlkd.video.extract import extract_features
from vlkd.video.sampling import clip_indices

from paired_timing import line, parse_args, ratios, rounds  # noqa: E402  (this directory is on the path)

NUM_CLIPS = 8
ROUNDS, QUICK_ROUNDS = 3, 1
SHORT_S = 40  # long enough to fill every batch (32 frames at 1/s, 4 clips): memory is then batch-bound


def log(msg: str) -> None:
    print(f"[extract] {msg}", file=sys.stderr, flush=True)


def naive_extract(paths: list[Path]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Decode everything to memory, then clip by clip, with autograd on."""
    appearance, motion = load_backbone("mobilenet_v2"), load_backbone("flow")
    results = []
    for path in paths:
        with av.open(str(path)) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        video = torch.from_numpy(np.stack(frames))  # (T, H, W, 3), the whole video
        app_feats, mot_feats = [], []
        for clip in clip_indices(len(frames), NUM_CLIPS):
            chw = video[clip].permute(0, 3, 1, 2)
            big = TF.resize(chw, [224, 224], antialias=True).permute(0, 2, 3, 1)
            small = TF.resize(chw, [112, 112], antialias=True).permute(0, 2, 3, 1)
            app_feats.append(appearance(big).detach().numpy())
            mot_feats.append(motion(small[None]).detach().numpy())
        results.append((np.stack(app_feats), np.concatenate(mot_feats)))
    return results


def needed_frames(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Decode exactly what the extractor needs: the frames up to the last sampled one, converting only the
    sampled ones (HCRN's stretch to the backbones' squares, as the extractor's bilinear reformat)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        indices = clip_indices(probe(path).num_frames, NUM_CLIPS)  # the extractor's count and indices
        wanted, last = set(indices.ravel().tolist()), int(indices.max())
        big, small = {}, {}
        for k, frame in enumerate(container.decode(stream)):
            if k in wanted:
                big[k] = frame.reformat(width=224, height=224, format="rgb24", interpolation="BILINEAR").to_ndarray()
                small[k] = frame.reformat(width=112, height=112, format="rgb24", interpolation="BILINEAR").to_ndarray()
            if k >= last:
                break
    return np.stack([big[int(k)] for k in indices.ravel()]), np.stack([small[int(k)] for k in indices.ravel()])


@torch.inference_mode()
def cnn_only(appearance: torch.nn.Module, motion: torch.nn.Module, big: np.ndarray, small: np.ndarray) -> None:
    """The backbones on one video's needed frames, in the extractor's batches (32 frames, 4 clips)."""
    frames = torch.from_numpy(big)
    clips = torch.from_numpy(small).reshape(NUM_CLIPS, 16, *small.shape[1:])
    for i in range(0, len(frames), 32):
        appearance(frames[i:i + 32])
    for i in range(0, len(clips), 4):
        motion(clips[i:i + 4])


def count_frames(paths: list[Path]) -> int:
    total = 0
    for path in paths:
        with av.open(str(path)) as container:
            total += container.streams.video[0].frames
    return total


def make_video(path: Path, seconds: int, fps: int = 8, width: int = 320, height: int = 240) -> None:
    """A moving gradient with a moving box: cheap to render, real motion."""
    ys, xs = np.mgrid[0:height, 0:width]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(fps), options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for k in range(seconds * fps):
            img = np.empty((height, width, 3), np.uint8)
            img[..., 0] = (xs + 2 * k) % 256
            img[..., 1] = (ys + k) % 256
            img[..., 2] = 80
            x0 = (5 * k) % (width - 40)
            img[100:140, x0:x0 + 40] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def child_peak_rss(video: Path, out: Path) -> float:
    """Peak RSS (MiB) of a fresh process extracting `video`: its own VmHWM, read at its end (ru_maxrss
    from wait4 would include the parent's size at fork time, which survives exec on Linux)."""
    code = ("import sys; from vlkd.video.extract import extract_features; "
            "extract_features(sys.argv[1], sys.argv[2], layout='howto100m', workers=0, device='cpu', progress=False); "
            "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])")
    listing = out.with_suffix(".txt")
    listing.write_text(f"{video}\n")
    done = subprocess.run([sys.executable, "-c", code, str(listing), str(out)], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"child failed on {video}: {done.stderr.strip().splitlines()[-1:]}")
    return int(done.stdout.split()[-1]) / 1024


def main() -> None:
    args = parse_args(__doc__, ROUNDS, QUICK_ROUNDS)
    torch.set_num_threads(os.cpu_count() or 1)
    paths = sorted(bundled_path("videos").glob("*.mp4"))
    frames = count_frames(paths)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        listing = tmp / "videos.txt"
        listing.write_text("".join(f"{p}\n" for p in paths))
        naive = {}

        def ours(i: int) -> None:
            shutil.rmtree(tmp / "ours", ignore_errors=True)
            extract_features(listing, tmp / "ours", layout="hcrn", num_clips=NUM_CLIPS, device="cpu",
                             progress=False)

        def reference(i: int) -> None:
            naive["features"] = naive_extract(paths)

        appearance, motion = load_backbone("mobilenet_v2"), load_backbone("flow")
        decoded = [needed_frames(p) for p in paths]  # the CNN side's input, decoded once

        def decode(i: int) -> None:
            for path in paths:
                needed_frames(path)

        def cnn(i: int) -> None:
            for big, small in decoded:
                cnn_only(appearance, motion, big, small)

        naive_extract(paths[-1:])  # warm-up (weights, allocator), both sides share it
        cnn(0)
        times = rounds({"ours": ours, "reference": reference, "decode": decode, "cnn": cnn}, args.rounds)
        log(f"seconds per round: ours {times['ours']}, naive {times['reference']}, decode needed frames "
            f"{times['decode']}, CNN on them {times['cnn']}")
        import h5py

        with h5py.File(tmp / "ours" / "appearance_feat.h5") as f:
            ours_app = f["resnet_features"][()]
        diff = max(float(np.abs(ours_app[i] - naive["features"][i][0]).max()) for i in range(len(paths)))
        log(f"max |ours - naive| appearance feature difference: {diff:.3g} (resize kernels differ)")
        median = statistics.median
        line("extract_frames_per_s_hcrn", frames / median(times["ours"]), frames / median(times["reference"]),
             "frames/s", ratios(times["ours"], times["reference"]), 1.5)
        limit = [d + c for d, c in zip(times["decode"], times["cnn"])]
        line("extract_over_own_limit_hcrn", median(times["ours"]), median(limit), "s (ours: extraction, "
             "reference: decode of the needed frames + CNN on them)", ratios(limit, times["ours"]), 1.15,
             decode_s=round(median(times["decode"]), 2), cnn_s=round(median(times["cnn"]), 2),
             naive_ratio=round(median(ratios(times["ours"], times["reference"])), 3),
             target_kind="at most")

        long_s = (2 if args.quick else 10) * SHORT_S
        make_video(tmp / "short.mp4", SHORT_S)
        make_video(tmp / "long.mp4", long_s)
        short_mib = child_peak_rss(tmp / "short.mp4", tmp / "f_short")
        long_mib = child_peak_rss(tmp / "long.mp4", tmp / "f_long")
        log(f"peak RSS: {short_mib:.1f} MiB ({SHORT_S} s) vs {long_mib:.1f} MiB ({long_s} s)")
        line(f"extract_peak_memory_{long_s // SHORT_S}x_longer_video", long_mib, short_mib, "MiB",
             [long_mib / short_mib], 1.2, timing="not timed: one child process per video length")


if __name__ == "__main__":
    main()
