"""A network stream (rtsp, http, udp), decoded on a thread of its own."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import numpy as np

from polypview.errors import VideoError
from polypview.frame import Frame
from polypview.sources.base import FALLBACK_FPS, Clock

if TYPE_CHECKING:
    import av

STREAM_SCHEMES = ("rtsp", "rtsps", "http", "https", "udp")


class StreamSource:
    """A network stream (rtsp, http, udp) decoded on its own thread into a one-frame slot.

    ``read`` takes the newest frame: frames it did not take are counted in ``dropped_frames``.
    No frame for ``timeout_s`` raises VideoError. ``read`` belongs to one thread; ``close`` may
    come from another and waits for the decode thread (at most ``timeout_s`` on a stalled link).
    """

    live = True

    def __init__(self, url: str, *, timeout_s: float = 5.0, clock: Clock = time.monotonic) -> None:
        import av  # PyAV: loaded only where a stream or file is read

        self.url, self.timeout_s, self._clock = url, timeout_s, clock
        options = {"rtsp_transport": "tcp"} if url.startswith("rtsp") else {}
        try:
            self._container = av.open(url, options=options, timeout=timeout_s)
        except av.FFmpegError as exc:
            raise VideoError(f"cannot open stream {url}: {exc.strerror}") from exc
        if not self._container.streams.video:
            self._container.close()
            raise VideoError(f"cannot open stream {url}: it has no video")
        stream = self._container.streams.video[0]
        self.width, self.height = stream.codec_context.width, stream.codec_context.height
        self.fps = float(stream.average_rate or stream.guessed_rate or FALLBACK_FPS)
        self.name = f"stream {url}"
        self.dropped_frames = 0
        self._slot = threading.Condition()
        self._latest: tuple[int, av.VideoFrame, float] | None = None
        self._finished = False
        self._error: VideoError | None = None
        self._first_time: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._decode, name="stream", daemon=True)
        self._thread.start()

    def _decode(self) -> None:
        import av

        error = None
        last_frame_time = self._clock()
        try:
            for index, picture in enumerate(self._container.decode(video=0)):
                if self._stop.is_set():
                    break
                last_frame_time = self._clock()
                with self._slot:
                    self.dropped_frames += self._latest is not None
                    self._latest = (index, picture, last_frame_time)
                    self._slot.notify_all()
        except av.FFmpegError as exc:  # a stall ends as whatever FFmpeg makes of a cut-off read
            stalled = self._clock() - last_frame_time >= self.timeout_s
            error = (
                self._stalled() if stalled else VideoError(f"{self.name} failed: {exc.strerror}")
            )
        finally:
            self._container.close()
            with self._slot:
                self._finished, self._error = True, error
                self._slot.notify_all()

    def _stalled(self) -> VideoError:
        return VideoError(f"{self.name} stalled: no frame for {self.timeout_s:g}s")

    def read(self) -> Frame | None:
        with self._slot:
            if not self._slot.wait_for(lambda: self._latest or self._finished, self.timeout_s):
                raise self._stalled()
            if self._latest is None:
                if self._error is not None:
                    raise self._error
                return None
            (index, picture, capture_time), self._latest = self._latest, None
        seconds = picture.time if picture.time is not None else capture_time
        if self._first_time is None:
            self._first_time = seconds
        image = np.ascontiguousarray(picture.to_ndarray(format="bgr24"))
        return Frame(index, seconds - self._first_time, image, capture_time)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        with self._slot:
            self._latest = None
