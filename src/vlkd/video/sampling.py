"""The two frame-sampling schemes of the published feature layouts (docs/formats.md).

- fixed rate: one frame every 1/rate seconds (HowTo100M: 2D at 1/s; 3D at 24/s grouped into 16-frame
  clips, i.e. 1.5 clips/s). The frame taken for time t is the one on screen at t (the last frame whose
  timestamp is <= t), so variable-frame-rate videos are sampled by time, not by index.
- centred clips: N clips of 16 consecutive frames centred at `linspace(0, T, N+2)[1:-1]` of the T frames
  (HCRN/DualVGR), indices outside [0, T) clamped, i.e. the first/last frame repeated.

Both work on a stream of decoded frames and keep only what they return, so memory does not grow with
the video's length.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from vlkd.video.decode import Frame


def sample_times(duration: float, rate: float) -> np.ndarray:
    """Times k / rate for every k with k / rate < duration (at least one sample)."""
    count = max(1, math.ceil(duration * rate - 1e-6))
    return np.arange(count, dtype=np.float64) / rate


class RateSampler:
    """Push frames in order; get back (t, frame on screen at t) for t in `sample_times(duration, rate)`.

    A frame can come back several times (rate above the video's) or never (rate below). `finish()`
    serves the times after the last frame with that frame.
    """

    def __init__(self, duration: float, rate: float) -> None:
        self.times = sample_times(duration, rate)
        self.k = 0
        self.previous: Frame | None = None

    def push(self, frame: Frame) -> list[tuple[float, Frame]]:
        out = []
        while self.k < len(self.times) and self.times[self.k] + 1e-6 < frame.time:
            out.append((float(self.times[self.k]), self.previous if self.previous is not None else frame))
            self.k += 1
        self.previous = frame
        return out

    def finish(self) -> list[tuple[float, Frame]]:
        out = []
        while self.previous is not None and self.k < len(self.times):
            out.append((float(self.times[self.k]), self.previous))
            self.k += 1
        return out

    @property
    def done(self) -> bool:
        return self.k >= len(self.times)


def sample_at_rate(frames: Iterable[Frame], duration: float, rate: float) -> Iterator[tuple[float, Frame]]:
    """Streaming `RateSampler` over an iterable of frames (stops reading once every time is served)."""
    sampler = RateSampler(duration, rate)
    for frame in frames:
        yield from sampler.push(frame)
        if sampler.done:
            return
    yield from sampler.finish()


def clip_indices(num_frames: int, num_clips: int, clip_len: int = 16) -> np.ndarray:
    """(num_clips, clip_len) frame indices: clips centred at linspace(0, T, N+2)[1:-1], edge-padded."""
    if num_frames < 1 or num_clips < 1 or clip_len < 1:
        raise ValueError("num_frames, num_clips and clip_len must be positive")
    centres = np.linspace(0, num_frames, num_clips + 2)[1:-1].astype(np.int64)
    offsets = np.arange(clip_len) - clip_len // 2
    return np.clip(centres[:, None] + offsets[None, :], 0, num_frames - 1)


def gather_frames(frames: Iterable[Frame], indices: np.ndarray,
                  transform: Callable[[Any], Any] | None = None) -> tuple[Any, int]:
    """Pick the frames at `indices` (any shape) from a stream, keeping only those.

    Returns (array of shape indices.shape + image shape, number of frames read); the stream is read
    up to the largest needed index only. `transform` maps a kept frame's image (e.g. a raw av frame)
    to an array, or to a tuple of arrays (then a tuple of stacked arrays comes back). When the stream
    ends before a needed index, the first element is None.
    """
    wanted = set(int(i) for i in np.unique(indices))
    last_needed = int(indices.max())
    kept: dict[int, Any] = {}
    seen = 0
    for frame in frames:
        seen = frame.index + 1
        if frame.index in wanted:
            kept[frame.index] = transform(frame.image) if transform else frame.image
        if frame.index >= last_needed:
            break
    if len(kept) < len(wanted):
        return None, seen
    flat = [kept[int(i)] for i in indices.reshape(-1)]

    def stack(items: list[np.ndarray]) -> np.ndarray:
        return np.stack(items).reshape(*indices.shape, *items[0].shape)

    if isinstance(flat[0], tuple):
        return tuple(stack([f[j] for f in flat]) for j in range(len(flat[0]))), seen
    return stack(flat), seen
