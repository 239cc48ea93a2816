"""`vlkd extract-features`: 2D appearance and 3D motion features of videos."""

from __future__ import annotations

import argparse

from vlkd.cli.common import SHARD_HELP, RegistryChoices, add_overwrite, integer, shard_done


def backbone_names(kind: str) -> list[str]:
    """The feature backbones (`SPECS`) of one kind, 2d or 3d, for --appearance and --motion."""
    from vlkd.video.backbones import SPECS

    return [name for name, spec in SPECS.items() if spec.kind == kind]


def cmd_extract_features(args: argparse.Namespace) -> int:
    from vlkd.shards import parse_shard
    from vlkd.video.extract import extract_features

    shard = parse_shard(args.shard)
    counts = extract_features(args.videos, args.out, layout=args.layout, appearance=args.appearance,
                              motion=args.motion, weights=args.weights, motion_weights=args.motion_weights,
                              num_clips=args.num_clips, appearance_size=args.appearance_size,
                              motion_size=args.motion_size, workers=args.workers, device=args.device,
                              mapping=args.mapping, shard=shard, overwrite=args.overwrite,
                              appearance_frames=args.appearance_frames)
    if shard is not None:
        failed = f", {counts['failed']} failed" if counts["failed"] else ""
        print(f"shard {shard}: {counts['extracted']} extracted, {counts['skipped']} already done{failed}")
        return shard_done(args.out, shard)
    failed = f", {counts['failed']} failed (see {args.out}/failed.txt)" if counts["failed"] else ""
    print(f"{args.out}: {counts['extracted']} extracted, {counts['skipped']} already done{failed}")
    return 0


def add(sub: argparse._SubParsersAction) -> None:
    """Add `vlkd extract-features`."""
    p = sub.add_parser("extract-features", help="2D appearance + 3D motion features of videos (HowTo100M or HCRN layout)",
                       description="Extract features of every video in DIR (or listed in a text file, one path per line). "
                                   "--layout howto100m: OUT/2d/<id>.npy at 1 frame/s and OUT/3d/<id>.npy on 16-frame clips "
                                   "at 24 fps (1.5/s). --layout hcrn: OUT/appearance_feat.h5 (resnet_features (V,N,F,D), F=--appearance-frames, "
                                   "ids) and OUT/motion_feat.h5 (resnext_features (V,N,D), ids). Re-running resumes; "
                                   "unreadable videos are listed in OUT/failed.txt. Offline defaults: MobileNetV2 (bundled "
                                   "ImageNet weights) and weight-free optical-flow motion features. --appearance "
                                   "clip|siglip|dinov2 --weights DIR: a local transformers vision tower with its image "
                                   "processor.")
    p.add_argument("--videos", required=True, help="directory of videos, or a text file listing video paths")
    p.add_argument("--layout", required=True, choices=["howto100m", "hcrn"], help="output layout")
    p.add_argument("--out", required=True, help="output directory (re-running with it resumes)")
    p.add_argument("--appearance", default="mobilenet_v2", choices=RegistryChoices(lambda: backbone_names("2d")),
                   metavar="NAME", help="2D backbone (default mobilenet_v2): %(choices)s")
    p.add_argument("--motion", default="flow", choices=RegistryChoices(lambda: backbone_names("3d")),
                   metavar="NAME", help="3D backbone (default flow: no weights; resnext101: Kinetics, HCRN's): "
                                        "%(choices)s")
    p.add_argument("--weights", default=None, help="appearance weights file (default: torchvision cache, "
                                                   "or the bundled file for mobilenet_v2); for clip, siglip and "
                                                   "dinov2 a local transformers model directory with its image "
                                                   "processor (required)")
    p.add_argument("--motion-weights", default=None, help="motion weights file (e.g. resnext-101-kinetics.pth)")
    p.add_argument("--num-clips", type=integer(ge=1), default=8, help="hcrn: clips per video (MSVD-QA 8, MSRVTT-QA 16)")
    p.add_argument("--mapping", help="MSVD's youtube_mapping.txt (NAME vidN): name each video's features vidN, "
                                     "so the HCRN ids are the N of the questions")
    p.add_argument("--appearance-size", type=integer(ge=1), default=None, help="appearance frame size (default: backbone's)")
    p.add_argument("--appearance-frames", type=integer(ge=1), default=16,
                   help="hcrn: appearance frames per clip, evenly spread (default 16: every frame; fewer at a larger "
                        "--appearance-size resolve small objects for less compute)")
    p.add_argument("--motion-size", type=integer(ge=1), default=None, help="motion frame size (default: backbone's)")
    p.add_argument("--workers", type=integer(ge=0), default=None,
                   help="decoding processes; 0 decodes in the main process (default: 0 on a CPU with 2 cores or "
                        "fewer, else 1)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    add_overwrite(p)
    p.add_argument("--shard", metavar="K/N", help=SHARD_HELP)
    p.set_defaults(func=cmd_extract_features, out_kind="dir")
