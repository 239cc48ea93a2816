"""Rendering and encoding of synthetic-world scenes: anti-aliased flat shapes on a plain background,
written as H.264 mp4 with PyAV (deterministic: one encoder thread, fixed settings)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

SHAPES = ("circle", "square", "triangle", "diamond", "cross")
COLORS = {
    "red": (220, 40, 40), "green": (40, 190, 60), "blue": (50, 90, 230), "yellow": (235, 215, 40),
    "purple": (150, 60, 200), "orange": (245, 140, 30), "white": (235, 235, 235), "cyan": (40, 210, 210),
}


@dataclass(frozen=True)
class Pose:
    """Where an object is at one instant: centre (x, y) in pixels and its radius."""

    x: float
    y: float
    r: float


def outside_distance(shape: str, dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    """Approximate signed distance (pixels) from the shape's edge; <= 0 inside."""
    ax, ay = np.abs(dx), np.abs(dy)
    if shape == "circle":
        return np.sqrt(dx * dx + dy * dy) - r
    if shape == "square":
        return np.maximum(ax, ay) - 0.85 * r
    if shape == "diamond":
        return (ax + ay - 1.2 * r) / np.sqrt(2.0)
    if shape == "cross":
        arm = r / 3.0
        return np.minimum(np.maximum(ax - r, ay - arm), np.maximum(ax - arm, ay - r))
    if shape == "triangle":  # apex up, base at y + 0.8 r
        base = dy - 0.8 * r
        side = (2.0 * ax - (dy + r)) / np.sqrt(5.0)
        return np.maximum(base, side)
    raise ValueError(f"unknown shape {shape!r}")


def render_frame(size: int, background: int, objects: list[tuple[str, str, Pose]]) -> np.ndarray:
    """One (size, size, 3) uint8 frame; objects drawn in order (later on top), 1-pixel soft edges."""
    image = np.full((size, size, 3), float(background), np.float32)
    grid = np.arange(size, dtype=np.float32) + 0.5
    for shape, color, pose in objects:
        x0, x1 = max(0, int(pose.x - 1.5 * pose.r) - 2), min(size, int(pose.x + 1.5 * pose.r) + 3)
        y0, y1 = max(0, int(pose.y - 1.5 * pose.r) - 2), min(size, int(pose.y + 1.5 * pose.r) + 3)
        if x0 >= x1 or y0 >= y1:
            continue
        dx = grid[None, x0:x1] - pose.x
        dy = grid[y0:y1, None] - pose.y
        alpha = np.clip(0.5 - outside_distance(shape, dx, dy, pose.r), 0.0, 1.0)[..., None]
        patch = image[y0:y1, x0:x1]
        patch += alpha * (np.asarray(COLORS[color], np.float32) - patch)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def encode_mp4(path: str | os.PathLike, frames: list[np.ndarray], fps: int) -> None:
    """Write RGB frames as an H.264 (yuv420p) mp4 with PyAV; deterministic settings."""
    height, width = frames[0].shape[:2]
    with av.open(os.fspath(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps),
                                      options={"preset": "veryfast", "crf": "18", "threads": "1"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.thread_count = 1
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
