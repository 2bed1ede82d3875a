"""A moving test pattern, or a clip's frames looped, at a fixed size and rate."""

from __future__ import annotations

import os
import time
from pathlib import Path

import cv2
import numpy as np

from polypview.errors import VideoError
from polypview.frame import Frame
from polypview.sources.base import Clock, Sleep

CLIP_MEMORY_BYTES = 256 << 20  # a clip is held resized in memory, up to this


class SyntheticSource:
    """A moving test pattern (or a clip's frames, looped) at a fixed size and rate, in real time.

    The schedule is drift-free (each frame is due one period after the one before); a consumer
    more than a frame late skips ahead to the frame due now, counting the ones skipped in
    ``late_frames``. A frame is drawn when read (a copy and a few shapes): pre-rendering a cycle
    of 1080p frames would hold hundreds of MB.
    """

    live = True

    def __init__(
        self,
        width: int,
        height: int,
        fps: float,
        *,
        clip: str | os.PathLike[str] | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        if width < 16 or height < 16 or fps <= 0:
            raise VideoError(f"bad synthetic format: {width}x{height} at {fps} fps")
        self.width, self.height, self.fps = width, height, float(fps)
        source = f" ({Path(clip).name})" if clip else ""
        self.name = f"synthetic {width}x{height} @ {fps:g}{source}"
        self._clock, self._sleep = clock, sleep
        self._clip = _load_resized(clip, width, height) if clip is not None else []
        ramp = np.linspace(40, 160, width, dtype=np.float32)
        self._background = np.empty((height, width, 3), np.uint8)
        self._background[:] = np.stack([ramp, ramp[::-1], np.full_like(ramp, 60)], -1)
        self._next_due: float | None = None
        self._index = 0
        self._closed = False
        self.late_frames = 0

    def read(self) -> Frame | None:
        if self._closed:
            return None
        period = 1 / self.fps
        now = self._clock()
        if self._next_due is None:
            self._next_due = now
        elif now < self._next_due:
            self._sleep(self._next_due - now)
            now = self._clock()
        elif now - self._next_due > period:
            skipped = int((now - self._next_due) / period)
            self.late_frames += skipped
            self._index += skipped
            self._next_due += skipped * period
        index = self._index
        self._index += 1
        self._next_due += period
        return Frame(index, index * period, self._render(index), now)

    def _render(self, index: int) -> np.ndarray:
        if self._clip:
            return self._clip[index % len(self._clip)].copy()
        image = self._background.copy()
        cycle = max(2, round(2 * self.fps))  # the disc crosses and comes back every 2 s
        radius = max(4, self.height // 8)
        travel = self.width - 2 * radius
        x = radius + round(travel * abs((index % cycle) / cycle * 2 - 1))
        cv2.circle(image, (x, self.height // 2), radius, (230, 240, 255), -1, cv2.LINE_AA)
        scale = self.height / 400
        position = (radius // 2, radius)
        cv2.putText(image, str(index), position, cv2.FONT_HERSHEY_SIMPLEX, scale, (255,) * 3, 2)
        return image

    def close(self) -> None:
        self._closed = True


def _load_resized(clip: str | os.PathLike[str], width: int, height: int) -> list[np.ndarray]:
    limit = max(1, CLIP_MEMORY_BYTES // (width * height * 3))
    from polypview.video import VideoSource

    with VideoSource(clip) as video:
        return [
            cv2.resize(frame.image, (width, height), interpolation=cv2.INTER_AREA)
            for frame, _ in zip(video, range(limit), strict=False)
        ]
