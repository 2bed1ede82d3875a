"""A video file or a folder of images, played in real time or read frame by frame.

Played in real time, a file keeps its schedule and hands a late consumer every frame, in order:
the pipeline drops what it must.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time

from polypview.frame import Frame
from polypview.sources.base import Clock, Sleep

SPEEDS = (0.25, 4.0)  # the playback speeds a file may be set to


class FileSource:
    """A video file or image folder, paced at its own rate (``realtime``) or read in lockstep.

    In real time a frame is released when ``start_wall + (pts - start_pts) / speed`` is reached;
    a late consumer still gets every frame, in order, at once, and the schedule keeps its clock.
    Controls may be called from any thread while one other thread reads. ``sleep`` defaults to a
    wait that pause, seek, speed and close cut short. With ``loop``, indices keep increasing.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        realtime: bool = True,
        speed: float = 1.0,
        loop: bool = False,
        clock: Clock = time.monotonic,
        sleep: Sleep | None = None,
    ) -> None:
        from polypview.video import VideoSource  # PyAV: loaded only where a file is read

        self._video = VideoSource(path)
        self.name = self._video.path.name
        self.width, self.height, self.fps = self._video.width, self._video.height, self._video.fps
        self.realtime = self.live = realtime
        self.loop = loop
        self._clock = clock
        self._woken = threading.Event()  # set by every control, so a pacing wait ends early
        self._sleep = sleep if sleep is not None else self._woken.wait
        self._changed = threading.Condition()  # guards everything below and the video itself
        self._speed = self._checked(speed)
        self._paused = self._closed = False
        self._steps = 0  # frames granted by step() while paused
        self._pending: Frame | None = None  # fetched, not yet due
        self._anchor: tuple[float, float] | None = None  # (clock, pts) the schedule runs from
        self._position = 0.0
        self._index_offset = 0  # added to indices after each loop
        self._last: Frame | None = None  # the last frame fetched from the file

    @property
    def duration(self) -> float | None:
        return self._video.duration

    @property
    def position(self) -> float:
        """``pts`` of the last frame read (after a seek: where it went, until a frame is read)."""
        return self._position

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def speed(self) -> float:
        return self._speed

    @speed.setter
    def speed(self, speed: float) -> None:
        with self._changed:
            speed = self._checked(speed)
            if self._anchor is not None:  # re-anchor where playback is now, so it keeps its place
                wall, pts = self._anchor
                now = self._clock()
                self._anchor = (now, pts + (now - wall) * self._speed)
            self._speed = speed
            self._notify()

    def pause(self) -> None:
        with self._changed:
            self._paused = True
            self._notify()

    def resume(self) -> None:
        with self._changed:
            self._paused, self._steps, self._anchor = False, 0, None
            self._notify()

    def step(self) -> None:
        """Release exactly the next frame (pausing first if playing)."""
        with self._changed:
            self._paused = True
            self._steps += 1
            self._notify()

    def seek(self, seconds: float) -> None:
        """Make the next frame read the first at or after ``seconds``."""
        with self._changed:
            self._video.seek(seconds)
            self._pending, self._anchor, self._position = None, None, max(0.0, seconds)
            self._notify()

    def read(self) -> Frame | None:
        """The next frame when it is due; blocks while paused; None at the end or once closed."""
        while True:
            with self._changed:
                self._changed.wait_for(lambda: not self._paused or self._steps or self._closed)
                if self._closed:
                    return None
                stepping = self._paused
                if self._pending is None:
                    self._pending = self._fetch()
                    if self._pending is None:
                        return None
                wait = self._wait_for(self._pending) if self.realtime and not stepping else 0.0
                if wait <= 0:
                    frame, self._pending = self._pending, None
                    self._steps -= stepping
                    self._position = frame.pts
                    return dataclasses.replace(frame, capture_time=self._clock())
                self._woken.clear()
            self._sleep(wait)

    def close(self) -> None:
        """Stop reading; a read blocked in a pause or a wait returns None."""
        with self._changed:
            self._closed = True
            self._notify()
            self._video.close()

    def _fetch(self) -> Frame | None:
        frame = next(self._video, None)
        if frame is None and self.loop and self._last is not None:
            loop_length = self._last.pts + 1 / self.fps
            self._index_offset += self._last.index + 1
            if self._anchor is not None:  # the next loop's first frame is due one frame later
                self._anchor = (self._anchor[0], self._anchor[1] - loop_length)
            self._video.seek(0)
            frame = next(self._video, None)
        if frame is None:
            return None
        self._last = frame
        return dataclasses.replace(frame, index=frame.index + self._index_offset)

    def _wait_for(self, frame: Frame) -> float:
        now = self._clock()
        if self._anchor is None:
            self._anchor = (now, frame.pts)
        wall, pts = self._anchor
        return wall + (frame.pts - pts) / self._speed - now

    def _notify(self) -> None:
        self._changed.notify_all()
        self._woken.set()

    @staticmethod
    def _checked(speed: float) -> float:
        if not SPEEDS[0] <= speed <= SPEEDS[1]:
            raise ValueError(f"speed must be {SPEEDS[0]}x to {SPEEDS[1]}x, got {speed}")
        return float(speed)
