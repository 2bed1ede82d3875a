"""Record what the endoscopist saw, on a thread of its own, so the live view never waits for it.

``Recorder.submit`` only puts the result in a bounded queue (about ``queue_seconds`` of video);
when encoding falls behind that far, frames are dropped and counted rather than the video held
back. The queue holds references, not copies: at 1080p each queued result keeps ~6 MB (twice that
with the raw video) alive, so 2 s at 30 fps may hold ~360-720 MB while the recorder is behind.

Each frame is shown at its capture time relative to the first recorded one, so the recording runs
in real time, gaps included. Beside the video, ``<stem>.detections.jsonl`` logs every recorded
frame, one JSON object per line, written through line by line: like the fragmented MP4, it keeps
everything up to a crash. Given ``about`` (the model, its checksum, the backend, the filter), the
log starts with one ``{"about": ...}`` line, so a report made from it later can say what saw the
video. Each frame's ``polyp`` is the model's frame-level decision before the persistence filter
(whether the mask shown has any pixel), so a report can count the flashes the filter kept quiet.
"""

from __future__ import annotations

import functools
import json
import os
import queue
import shutil
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol, Self

import av
import numpy as np

from polypview.errors import OutputError, PolypviewError
from polypview.video import ClipWriter

if TYPE_CHECKING:
    from polypview.pipeline import Result

MB = 1_000_000
DEFAULT_FREE_SPACE = 500 * MB  # about an hour of 1080p at ultrafast's typical 1 Mbit/s
MIN_STEP_S = 0.001  # frames captured closer together than this are spaced this far apart
STOP_TIMEOUT_S = 10.0
HARDWARE_ENCODER = "h264_nvenc"
SOFTWARE_ENCODER = "libx264"
# The fastest settings of each encoder: recording must keep up with live video on a busy machine.
ENCODER_OPTIONS: dict[str, dict[str, Any]] = {
    HARDWARE_ENCODER: {"preset": "p1", "tune": "ull"},
    SOFTWARE_ENCODER: {"preset": "ultrafast", "tune": "zerolatency"},
}
_STOP = object()  # queued by stop() after the last result


class FrameWriter(Protocol):
    """What the recorder writes through: ``ClipWriter``, or a stand-in in tests."""

    def write(self, image: np.ndarray, pts: float | None = None) -> None: ...

    def close(self) -> None: ...


WriterFactory = Callable[..., FrameWriter]


@dataclass(frozen=True, slots=True)
class RecordingSummary:
    path: Path
    frames_written: int
    dropped: int  # frames submitted but not recorded: the queue was full, or recording had failed
    seconds: float  # the recording's playing time
    detections_log: Path
    error: str | None = None  # the one line that ended the recording early


def check_free_space(folder: str | os.PathLike[str], needed_bytes: int = DEFAULT_FREE_SPACE) -> int:
    """The free bytes in ``folder``; OutputError when fewer than ``needed_bytes``."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError as exc:
        raise OutputError(f"cannot check free disk space in {folder}: {exc.strerror}") from exc
    if free < needed_bytes:
        raise OutputError(
            f"not enough free disk space in {folder}: {free // MB} MB free, "
            f"need {-(-needed_bytes // MB)} MB"
        )
    return free


@functools.cache
def choose_codec() -> str:
    """NVENC where this FFmpeg has it and a GPU opens it (no CPU spent encoding), else x264."""
    try:
        context = av.CodecContext.create(HARDWARE_ENCODER, "w")
    except av.codec.codec.UnknownCodecError:
        return SOFTWARE_ENCODER
    context.width, context.height, context.pix_fmt = 256, 256, "yuv420p"
    context.time_base = Fraction(1, 25)
    context.options = ENCODER_OPTIONS[HARDWARE_ENCODER]
    try:
        context.open()  # fails without an NVIDIA GPU and driver
    except av.FFmpegError:
        return SOFTWARE_ENCODER
    return HARDWARE_ENCODER


def detections_log_path(video: Path) -> Path:
    return video.with_name(f"{video.stem}.detections.jsonl")


class Recorder:
    """Writes each submitted result's annotated image (and with ``raw_path``, its frame's image)
    from a background thread.

    The outputs are opened here, so a bad location fails at once with OutputError. A write that
    fails later (disk full, folder removed) ends the recording: the file written so far is
    finished and stays playable, ``error`` holds the one line, and ``submit`` drops from then on.
    Call ``submit`` from one thread (the pipeline's): its counters take no lock.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        width: int,
        height: int,
        frame_rate: Fraction | float,
        raw_path: str | os.PathLike[str] | None = None,
        codec: str | None = None,
        queue_seconds: float = 2.0,
        writer_factory: WriterFactory = ClipWriter,
        about: dict[str, Any] | None = None,
    ) -> None:
        self.path = Path(path)
        self.raw_path = Path(raw_path) if raw_path is not None else None
        self.detections_log = detections_log_path(self.path)
        self.codec = codec or choose_codec()
        self.frame_rate = frame_rate
        self.error: str | None = None
        self.frames_written = 0
        self._queue: queue.Queue[object] = queue.Queue(max(1, round(queue_seconds * frame_rate)))
        self._overflowed = 0  # counted by submit
        self._refused = 0  # counted by submit: after a failure or stop
        self._discarded = 0  # counted by the thread: queued before a failure or an abandoned stop
        self._stopping = False
        self._abandon = threading.Event()
        self._first_capture: float | None = None
        self._last_pts = -MIN_STEP_S
        self._bug: Exception | None = None
        self._summary: RecordingSummary | None = None
        options = {"width": width, "height": height, "frame_rate": frame_rate, "codec": self.codec}
        options |= ENCODER_OPTIONS.get(self.codec, {})
        with ExitStack() as outputs:
            self._writer = writer_factory(self.path, **options)
            outputs.callback(self._writer.close)
            self._raw_writer = None
            if self.raw_path is not None:
                self._raw_writer = writer_factory(self.raw_path, **options)
                outputs.callback(self._raw_writer.close)
            self._log = open_detections_log(self.detections_log)
            outputs.callback(self._log.close)
            if about is not None:
                _write_line(self._log, {"about": about}, self.detections_log)
            self._outputs: ExitStack | None = outputs.pop_all()
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()

    def submit(self, result: Result) -> bool:
        """Queue ``result`` for recording without ever waiting; False when it was dropped."""
        if self._stopping or self.error is not None:
            self._refused += 1
            return False
        try:
            self._queue.put_nowait(result)
        except queue.Full:
            self._overflowed += 1
            return False
        return True

    @property
    def dropped(self) -> int:
        return self._overflowed + self._refused + self._discarded

    @property
    def behind(self) -> bool:
        """Encoding has fallen a whole queue behind at least once: the recording has gaps."""
        return self._overflowed > 0

    @property
    def status(self) -> str:
        """One line for the GUI's status bar."""
        if self.error is not None:
            return f"recording stopped: {self.error}"
        if self.behind:
            return f"recorder behind: {self.dropped} frames dropped"
        return f"recording: {self.frames_written} frames"

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> RecordingSummary:
        """Record what is queued (for up to ``timeout`` seconds, then drop the rest), finish the
        files and return what was recorded. Later calls return the same summary."""
        if self._summary is not None:
            return self._summary
        self._stopping = True
        deadline = time.monotonic() + timeout
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            self._abandon.set()  # the thread now empties the queue without writing
            self._queue.put(_STOP)
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive():
            self._abandon.set()
            self._thread.join()  # at most the frame being written, then the files are closed
        if self._bug is not None:
            raise self._bug
        seconds = self._last_pts + 1 / self.frame_rate if self.frames_written else 0.0
        self._summary = RecordingSummary(
            self.path, self.frames_written, self.dropped, seconds, self.detections_log, self.error
        )
        return self._summary

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- the recorder thread's side ----------------------------------------------------------

    def _run(self) -> None:
        while (result := self._queue.get()) is not _STOP:
            if self.error is not None or self._abandon.is_set():
                self._discarded += 1
                continue
            try:
                self._record(result)
            except PolypviewError as exc:
                self._fail(str(exc))
            except Exception as exc:  # a bug: the recording ends, and stop() raises it
                self._bug = exc
                self._fail(f"recording failed: {exc}")
        self._close_outputs()

    def _record(self, result: Result) -> None:
        frame = result.frame
        if self._first_capture is None:
            self._first_capture = frame.capture_time
        pts = max(frame.capture_time - self._first_capture, self._last_pts + MIN_STEP_S)
        self._writer.write(result.annotated, pts)
        if self._raw_writer is not None:
            self._raw_writer.write(frame.image, pts)
        _write_line(self._log, detection_entry(result, pts), self.detections_log)
        self._last_pts = pts
        self.frames_written += 1

    def _fail(self, message: str) -> None:
        self.error = message
        self._discarded += 1  # the frame that failed
        self._close_outputs()  # finish the files now, not when someone calls stop()

    def _close_outputs(self) -> None:
        outputs, self._outputs = self._outputs, None
        if outputs is None:
            return
        try:
            outputs.close()
        except PolypviewError as exc:  # after a failed write, closing often fails the same way
            self.error = self.error or str(exc)


def _write_line(log: IO[str], entry: dict[str, Any], path: Path) -> None:
    try:
        log.write(json.dumps(entry) + "\n")
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror}") from exc


def detection_entry(result: Result, time: float) -> dict[str, Any]:
    """One line of the detection log: the frame shown at ``time`` seconds into the recording;
    ``polyp`` is the frame-level decision before the persistence filter."""
    return {
        "time": round(time, 6),
        "frame": result.frame.index,
        "alert": result.alert,
        "polyp_score": None if result.score is None else round(result.score, 4),
        "polyp": result.mask is not None and bool(result.mask.any()),
        "detections": [
            {
                "track": d.track_id,
                "box": list(d.box),
                "area": d.area,
                "score": round(d.score, 4),
            }
            for d in result.detections
        ],
    }


def open_detections_log(path: Path) -> IO[str]:
    """The detection log, line-buffered: each line reaches the file as it is written."""
    try:
        return path.open("w", encoding="utf-8", buffering=1)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror}") from exc
