"""Benchmark: do the offline motion features encode direction of motion, and does appearance not?

Generates a synthetic world (default 300 videos), extracts features with the offline defaults in the
HowTo100M layout (`vlkd extract-features`: MobileNetV2 with the bundled ImageNet weights at 1 frame/s,
224x224; optical-flow motion features on 16-frame clips at 24 fps), averages each stream over time,
and fits a logistic-regression probe (standardised features) to the actor's direction of motion
(left/right/up/down) on the videos whose actor moves. Held-out accuracy is 5-fold stratified
cross-validation (every video held out once). Chance is 0.25.

Prints one JSON line per figure (README.md, Benchmarks): "reference" is chance; the motion line's target is
a lower bound (>= 0.9), the appearance line's an upper bound (<= 0.40, "near chance"). Nothing is timed
here (accuracy figures), so there is no paired timing; each line carries the machine it ran on.
`--quick`: 60 videos (a smoke run; accuracy is then noisy).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from vlkd.data.world.generate import DIRECTIONS, build_world
from vlkd.video.extract import extract_features

from paired_timing import machine  # noqa: E402  (this directory is on the path)

CHANCE = 0.25


def log(msg: str) -> None:
    print(f"[motion_probe] {msg}", file=sys.stderr, flush=True)


def probe_accuracy(x: np.ndarray, y: np.ndarray, seed: int) -> float:
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000))
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    return float(cross_val_score(probe, x, y, cv=folds).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="decoding processes")
    parser.add_argument("--quick", action="store_true", help="smoke run: 60 videos")
    args = parser.parse_args()
    if args.quick:
        args.videos = min(args.videos, 60)
    log(f"machine: {json.dumps(machine())}")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.time()
        world = build_world(Path(tmp) / "world", args.videos, seed=args.seed, progress=False)
        log(f"world of {args.videos} videos in {time.time() - start:.1f}s")
        start = time.time()
        out = Path(tmp) / "features"
        extract_features(Path(tmp) / "world" / "videos", out, layout="howto100m", workers=args.workers,
                         device="cpu", progress=False)
        log(f"features in {time.time() - start:.1f}s")
        xs_app, xs_mot, labels = [], [], []
        for scene in world["scenes"]:
            actor = scene["objects"][0]
            if actor["action"] not in DIRECTIONS:
                continue
            vid = f"video{scene['video_id']}"
            xs_app.append(np.load(out / "2d" / f"{vid}.npy").mean(0))
            xs_mot.append(np.load(out / "3d" / f"{vid}.npy").mean(0))
            labels.append(actor["action"])
    y = np.array(labels)
    log(f"{len(y)} videos with a moving actor: " + ", ".join(f"{d} {int((y == d).sum())}" for d in DIRECTIONS))
    motion = probe_accuracy(np.stack(xs_mot), y, args.seed)
    appearance = probe_accuracy(np.stack(xs_app), y, args.seed)
    for name, acc, target in (("motion_probe_direction_flow_features", motion, 0.9),
                              ("motion_probe_direction_time_averaged_appearance", appearance, 0.40)):
        print(json.dumps({"benchmark": name, "ours": round(acc, 4), "reference": CHANCE, "unit": "accuracy",
                          "ratio": round(acc / CHANCE, 3), "target": target, "videos": args.videos,
                          "timing": "not timed: accuracy", **machine()}), flush=True)


if __name__ == "__main__":
    main()
