"""A test video of random textures (seeded per frame), written with PyAV."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def write_noise_video(path: Path, width: int, height: int, frames: int, options: dict[str, str] | None = None) -> Path:
    """`frames` frames at 24 fps of H.264 noise, frame i drawn from seed i."""
    with av.open(str(path), "w", options=options or {}) as out:
        stream = out.add_stream("libx264", rate=Fraction(24))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            image = np.random.default_rng(i).integers(0, 255, (height, width, 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path
