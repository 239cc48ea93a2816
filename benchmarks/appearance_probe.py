"""Benchmark: do the appearance features bind colour to shape?

Generates a synthetic world (default 600 videos: about 200 training videos per probe) and extracts its appearance features in the HCRN layout
twice with `vlkd extract-features`: the old quickstart setting (MobileNetV2 on all 16 frames of each clip at
64x64) and the new one (`--appearance-size 224 --appearance-frames 1`: each clip's middle frame at 224x224,
the world's 112x112 frames upscaled, so an object spans a few cells of the CNN's feature map). Each video's
feature is the mean over its clips and frames. Two linear probes per feature set, each a logistic regression
on standardised features (C picked by inner cross-validation), scored by 5-fold stratified cross-validation:

- "colour of the shape": for each shape, over the videos with exactly one object of that shape, predict its
  colour (8 colours, chance about 0.125); the figure is the accuracy pooled over the shapes;
- "shape of the colour": for each colour, over the videos with exactly one object of that colour, predict
  its shape (5 shapes).

Objects are drawn independently of each other, so neither is answerable from which colours and shapes occur
(there are 1-3 objects): the feature must say which colour goes with which shape. Prints one JSON line per
figure; the target for the new features is >= 0.9 (measured: 0.924 / 0.923 at 600 videos, 0.815 / 0.871 at
240, where each probe trains on about 80 videos; the old features 0.636 / 0.639 and 0.489 / 0.535). `--quick`: 80 videos (a smoke run).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch
from sklearn.linear_model import LogisticRegressionCV
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from vlkd.data.world.generate import build_world
from vlkd.video.extract import extract_features

from paired_timing import machine  # noqa: E402  (this directory is on the path)

SETTINGS = {"old_64px_16_frames": {"appearance_size": 64, "appearance_frames": 16},
            "new_224px_1_frame": {"appearance_size": 224, "appearance_frames": 1}}
PROBES = {"colour_of_shape": ("shape", "color"), "shape_of_colour": ("color", "shape")}


def log(msg: str) -> None:
    print(f"[appearance_probe] {msg}", file=sys.stderr, flush=True)


def probe_accuracy(features: np.ndarray, scenes: list[dict], given: str, target: str, seed: int) -> float:
    """Accuracy pooled over the values of `given`: one probe per value, predicting `target` of the single
    object with that value, on the videos that have exactly one such object."""
    correct = total = 0
    for value in sorted({o[given] for s in scenes for o in s["objects"]}):
        rows, labels = [], []
        for i, scene in enumerate(scenes):
            match = [o for o in scene["objects"] if o[given] == value]
            if len(match) == 1:
                rows.append(i)
                labels.append(match[0][target])
        y = np.array(labels)
        keep = np.isin(y, [c for c in set(labels) if labels.count(c) >= 5])  # 5 folds need 5 of a class
        x, y = features[np.array(rows)[keep]], y[keep]
        if len(set(y)) < 2:
            continue
        probe = make_pipeline(StandardScaler(), LogisticRegressionCV(Cs=[0.01, 0.1, 1.0], cv=3, max_iter=3000))
        folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
        acc = cross_val_score(probe, x, y, cv=folds).mean()
        correct += acc * len(y)
        total += len(y)
    return correct / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="smoke run: 80 videos")
    args = parser.parse_args()
    if args.quick:
        args.videos = min(args.videos, 80)
    torch.set_num_threads(1)
    log(f"machine: {json.dumps(machine())}")
    with tempfile.TemporaryDirectory() as tmp:
        world = build_world(Path(tmp) / "world", args.videos, seed=args.seed, workers=1, progress=False)
        features = {}
        for name, setting in SETTINGS.items():
            start = time.time()
            out = Path(tmp) / name
            extract_features(Path(tmp) / "world" / "videos", out, layout="hcrn", num_clips=4, motion_size=64,
                             device="cpu", progress=False, **setting)
            with h5py.File(out / "appearance_feat.h5", "r") as f:  # rows in file-name order: video0, video1, video10
                rows = {int(vid): row for row, vid in enumerate(f["ids"][()])}
                every = f["resnet_features"][()].mean(axis=(1, 2))
            features[name] = every[[rows[s["video_id"]] for s in world["scenes"]]]
            log(f"{name}: features in {time.time() - start:.1f}s (one thread, motion included)")
    for probe, (given, target) in PROBES.items():
        for name in SETTINGS:
            acc = probe_accuracy(features[name], world["scenes"], given, target, args.seed)
            print(json.dumps({"benchmark": f"appearance_probe_{probe}_{name}", "ours": round(acc, 4),
                              "unit": "accuracy", "target": 0.9 if name.startswith("new") else None,
                              "videos": args.videos, "timing": "not timed: accuracy", **machine()}), flush=True)


if __name__ == "__main__":
    main()
