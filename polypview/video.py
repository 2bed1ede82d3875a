"""Video in and out.

``VideoSource`` decodes a video file (anything FFmpeg reads) or a folder of images ahead of its
consumer on a background thread. ``ClipWriter`` writes H.264 in fragmented MP4, so that a killed
process still leaves a playable file. Every failure a user can cause ends as one line:
``VideoError`` for what is read or encoded, ``OutputError`` for where it is written.
"""

from __future__ import annotations

import errno
import itertools
import math
import os
import queue
import re
import threading
import time
from collections.abc import Generator, Iterator
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Self

import av
import av.logging
import cv2
import numpy as np
from av.stream import Disposition

from polypview.errors import OutputError, PolypviewError, VideoError
from polypview.frame import Frame

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"})
DECODE_AHEAD = 4  # frames decoded ahead of the consumer: enough to overlap, little memory
END_SLACK_S = 0.5  # how far the last frame may fall short of a stream's stated duration
TIME_BASE = Fraction(1, 90_000)  # the MPEG clock: exact for 24, 25, 30, 50, 60 and 30000/1001 fps
# delay_moov holds the header back until the first fragment, so that a first timestamp other
# than zero is kept (as an edit list) instead of being shifted to zero.
FRAGMENT_FLAGS = "frag_keyframe+empty_moov+delay_moov+default_base_moof"
_TIE_S = 1e-6  # float seconds this close to a frame's time count as equal to it
_END = object()  # what the decode thread hands over after the last frame

Frames = Generator[Frame, None, None]


class VideoSource:
    """Frames of a video file or an image folder, in order, decoded ahead on a background thread.

    ``pts`` is seconds from the stream's first timestamp (``start_time`` is that timestamp as the
    file stores it). ``index`` counts frames from the stream's first frame; after a seek it is
    derived from the keyframe's time and the frame rate, so it is exact for constant-rate video.
    ``start``/``end`` (end exclusive) select a time range. Opening decodes the first frame, so a
    source that opens is known to decode. Images (jpg/png/bmp/tif, sorted by name with numbers
    compared as numbers: 2 before 10) play at ``fps`` and must all have the first one's size.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        start: float = 0.0,
        end: float | None = None,
        fps: float | Fraction = 25,
    ) -> None:
        self.path = Path(path)
        if start < 0 or (end is not None and end <= start):
            raise VideoError(f"bad time range for {self.path}: start {start}s, end {end}s")
        self._end = end
        self._images: list[Path] = []
        self._container: av.container.InputContainer | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._handover: queue.Queue[object] = queue.Queue(DECODE_AHEAD)
        self._peeked: Frame | None = None
        self._moved = False  # whether decoding has left the start of the file
        self.start_time = 0.0
        try:
            if self.path.is_dir():
                self._open_folder(Fraction(fps).limit_denominator(1001))
            else:
                self._open_file()
            self._restart(start)
            self._peeked = self._take()
        except BaseException:
            self.close()
            raise

    live = False  # read as fast as its consumer asks: the Source interface's lockstep kind

    @property
    def fps(self) -> float:
        return float(self.frame_rate)

    @property
    def name(self) -> str:
        return self.path.name

    def read(self) -> Frame | None:
        """The next frame, or None after the last: how pipelines read any source."""
        return next(self, None)

    def _cannot_open(self, reason: str) -> VideoError:
        return VideoError(f"cannot open video: {self.path}: {reason}")

    def _open_file(self) -> None:
        try:
            size = self.path.stat().st_size
        except OSError as exc:
            reason = "no such file" if exc.errno == errno.ENOENT else exc.strerror.lower()
            raise self._cannot_open(reason) from exc
        if size == 0:
            raise self._cannot_open("is empty (0 bytes)")
        try:
            self._container = container = av.open(str(self.path), metadata_errors="replace")
        except av.FFmpegError as exc:
            raise self._cannot_open(_unreadable(self.path, exc)) from exc
        videos = container.streams.video
        pictures = [s for s in videos if not s.disposition & Disposition.attached_pic]
        if not pictures:  # cover art in a music file is a video stream of one picture
            raise self._cannot_open("has no video stream")
        self._stream = stream = pictures[0]
        if stream.codec_context is None:
            raise self._cannot_open(_undecodable(container, stream))
        stream.thread_type = "AUTO"  # FFmpeg's own frame and slice threads
        time_base = stream.time_base
        self._origin = stream.start_time or 0
        self.start_time = float(self._origin * time_base)
        self.width, self.height = stream.codec_context.width, stream.codec_context.height
        self.frame_rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        self.duration = (
            float(stream.duration * time_base)
            if stream.duration
            else (container.duration / av.time_base if container.duration else None)
        )
        # A container's duration may be a longer audio track's: only a lone stream's is evidence.
        alone = stream.duration or len(container.streams) == 1
        self._stated_duration = self.duration if alone else None
        estimate = round(self.duration * self.frame_rate) if self.duration else None
        self.frame_count: int | None = stream.frames or estimate
        missing = _first_missing(stream, size)
        if missing is not None:
            cut = float((missing - self._origin) * time_base)
            if self._end is None or self._end > cut:
                raise self._cannot_open(f"is truncated: the frames from t={cut:.2f}s are missing")

    def _open_folder(self, rate: Fraction) -> None:
        try:
            names = [p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
        except OSError as exc:
            raise self._cannot_open(exc.strerror.lower()) from exc
        self._images = sorted((p for p in names if p.is_file()), key=_natural_order)
        if not self._images:
            raise self._cannot_open("is a folder with no images")
        self.width = self.height = 0
        self.height, self.width = self._read_image(0).shape[:2]
        self.frame_rate = rate
        self.duration = float(len(self._images) / rate)
        self.frame_count = len(self._images)

    def _read_image(self, index: int) -> np.ndarray:
        path = self._images[index]
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise VideoError(f"cannot read image: {path}")
        height, width = image.shape[:2]
        if self.width and (width, height) != (self.width, self.height):
            raise VideoError(
                f"cannot read image folder: {self.path}: {path.name} is {width}x{height} but "
                f"{self._images[0].name} is {self.width}x{self.height}; all must be one size"
            )
        return image

    # --- the consumer's side ------------------------------------------------------------------

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> Frame:
        frame, self._peeked = self._peeked, None
        if frame is None:
            frame = self._take()
        if frame is None:
            raise StopIteration
        return frame

    def seek(self, seconds: float) -> None:
        """Make the next frame the first one whose ``pts`` is at or after ``seconds``."""
        if self._container is None and not self._images:
            raise ValueError(f"{self.path} is closed")
        self._restart(max(0.0, seconds))

    def close(self) -> None:
        """Stop the decode thread (promptly, even mid-file) and release the file."""
        self._stop_thread()
        if self._container is not None:
            self._container.close()
            self._container = None
        self._images = []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _take(self) -> Frame | None:
        if self._thread is None:
            return None
        item = self._handover.get()
        if isinstance(item, Frame):
            return item
        self._stop_thread()  # the thread handed over its last item and is ending
        if isinstance(item, BaseException):
            raise item
        return None

    def _restart(self, target: float) -> None:
        self._stop_thread()
        frames = self._read_images(target) if self._images else self._decode(target)
        self._stop, self._handover = threading.Event(), queue.Queue(DECODE_AHEAD)
        self._thread = threading.Thread(
            target=_pump, args=(frames, self._handover, self._stop), name="decode", daemon=True
        )
        self._thread.start()

    def _stop_thread(self) -> None:
        self._peeked = None
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None

    # --- the decode thread's side -------------------------------------------------------------

    def _decode(self, target: float) -> Frames:
        time_base = self._stream.time_base
        index: int | None = None  # of the last frame decoded
        reached = target  # the time decoding got to
        try:
            for picture in self._pictures_from(target):
                ticks = picture.pts if picture.pts is not None else picture.dts
                if ticks is None:  # a raw stream (.h264) has no timestamps: assume even spacing
                    pts = 0.0 if index is None else float((index + 1) / self.frame_rate)
                else:
                    pts = float((ticks - self._origin) * time_base)
                index = max(0, round(pts * self.frame_rate)) if index is None else index + 1
                reached = pts + 1 / self.fps
                if pts < target - _TIE_S:
                    continue
                if self._end is not None and pts >= self._end - _TIE_S:
                    return
                image = np.ascontiguousarray(picture.to_ndarray(format="bgr24"))
                yield Frame(index, pts, image, time.monotonic())
        except av.FFmpegError as exc:
            if self._end is not None and reached >= self._end - _TIE_S:
                return  # every frame asked for came out; the damage lies past --end
            raise self._damaged(index, reached, exc.strerror) from exc
        stated = self._stated_duration
        if stated is not None and reached < stated - END_SLACK_S:
            raise self._damaged(index, reached, f"the file says it lasts {stated:.2f}s")

    def _pictures_from(self, target: float) -> Iterator[av.VideoFrame]:
        """Decoded pictures from a keyframe at or before ``target``; the caller drops the ones
        before it. Seeking in a file without an index (MPEG-TS) can land past the keyframe it
        asked for, so this steps back until it does not."""
        container, stream = self._container, self._stream
        moved, self._moved = self._moved, True
        untimed = stream.start_time is None  # a raw stream: it can only be read from its start
        if not moved and (target <= 0 or untimed):
            return container.decode(stream)
        if untimed:
            raise VideoError(f"cannot seek in {self.path}: it has no timestamps")
        back = 0.0
        while True:
            start = target - back  # below zero it asks for the very first keyframe
            try:
                container.seek(self._origin + math.floor(start / stream.time_base), stream=stream)
            except av.FFmpegError as exc:
                raise VideoError(f"cannot seek in {self.path}: {exc.strerror}") from exc
            pictures = container.decode(stream)
            first = next(pictures, None)
            if first is not None and (
                first.pts is None or first.time - self.start_time <= target or start < -1
            ):
                return itertools.chain([first], pictures)
            if start < -1 or target >= (self.duration or math.inf):
                return iter(())
            back = max(1.0, 2 * back)

    def _damaged(self, index: int | None, reached: float, reason: str) -> VideoError:
        frame = 0 if index is None else index + 1
        return VideoError(
            f"video ends early or is damaged at frame {frame} (t={reached:.2f}s): {self.path}: "
            f"{reason}"
        )

    def _read_images(self, target: float) -> Frames:
        first = max(0, math.ceil(target * self.frame_rate - _TIE_S))
        stop = len(self._images)
        if self._end is not None:
            stop = min(stop, math.ceil(self._end * self.frame_rate - _TIE_S))
        for index in range(first, stop):
            image = self._read_image(index)
            yield Frame(index, float(index / self.frame_rate), image, time.monotonic())


def _pump(frames: Frames, handover: queue.Queue[object], stop: threading.Event) -> None:
    """Decode-thread body: hand frames over until they end, fail or ``stop`` is set."""
    last: object = _END
    try:
        for frame in frames:
            if not _offer(handover, frame, stop):
                return
    except Exception as exc:  # handed over: the consumer raises it in its own thread
        last = exc
    finally:
        frames.close()
    _offer(handover, last, stop)


def _offer(handover: queue.Queue[object], item: object, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            handover.put(item, timeout=0.05)
            return True
        except queue.Full:
            continue
    return False


def _natural_order(path: Path) -> list[str | int]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def _unreadable(path: Path, exc: av.FFmpegError) -> str:
    if exc.errno in errno.errorcode:  # from the operating system, such as permission denied
        return exc.strerror.lower()
    if _mp4_without_moov(path):
        return "is a truncated MP4: its index (moov atom) is missing"
    return f"is not a video FFmpeg can read ({exc.strerror})"


def _mp4_without_moov(path: Path) -> bool:
    """Whether ``path`` starts as an MP4/MOV but its top-level boxes hold no complete moov box:
    the mark of a recording cut off before the index at its end was written."""
    size = path.stat().st_size
    position = 0
    with path.open("rb") as file:
        while position + 8 <= size:
            file.seek(position)
            header = file.read(16)
            box_size, kind = int.from_bytes(header[:4]), header[4:8]
            if box_size == 1:
                box_size = int.from_bytes(header[8:16])
            elif box_size == 0:
                box_size = size - position
            if (position == 0 and kind != b"ftyp") or box_size < 8:
                return False
            if kind == b"moov":
                return position + box_size > size
            position += box_size
    return position > 0


def _first_missing(stream: av.VideoStream, size: int) -> int | None:
    """Timestamp of the first frame whose data the index places past the end of the file.

    MP4 indexes every frame, so one cut short (moov first, or fragmented) is caught at open.
    """
    entries = stream.index_entries
    kept = len(entries)
    while kept > 0 and entries[kept - 1].pos + entries[kept - 1].size > size:
        kept -= 1
    return entries[kept].timestamp if kept < len(entries) else None


def _undecodable(container: av.container.InputContainer, stream: av.VideoStream) -> str:
    """Name the codec of a stream FFmpeg has no decoder for.

    PyAV names no codec without a decoder, so this reads FFmpeg's own stream listing, which PyAV
    captures only while its log level is set: it is switched on for that one call.
    """
    level = av.logging.get_level()
    av.logging.set_level(av.logging.INFO)
    try:
        listing = container.dumps_format()
    finally:
        av.logging.set_level(level)
    found = re.search(rf"Stream #\d+:{stream.index}\b.*?: Video: (\w+)", listing)
    if found is None or found[1] == "none":
        return "uses a codec FFmpeg does not know"
    return f"uses codec '{found[1]}' that this FFmpeg build cannot decode"


class ClipWriter:
    """Write BGR frames as H.264 (yuv420p) in fragmented MP4 that survives a crash.

    Each second starts with a keyframe, which closes the fragment before it; fragments go to disk
    as soon as they close, so a killed process leaves a file that plays up to its last complete
    second (a second is complete once the next one has begun). ``tune="zerolatency"`` keeps x264
    from holding frames back: its lookahead would otherwise lose about half a second more.

    yuv420p needs an even width and height: an odd one is padded by repeating the last column or
    row, so no pixel of the picture is lost (the file is then one pixel wider or taller).

    ``pts`` in seconds is kept when given, so source times survive export, gaps and a late start
    included (a first pts above zero is stored as an MP4 edit list, which some players show as a
    lead-in); without it, frame number / frame rate. Both go on the 90 kHz MPEG clock.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        width: int,
        height: int,
        frame_rate: Fraction | float,
        codec: str = "libx264",
        preset: str = "veryfast",
        crf: int = 23,
        tune: str | None = "zerolatency",
    ) -> None:
        if width < 1 or height < 1 or frame_rate <= 0:
            raise ValueError(f"bad clip format: {width}x{height} at {frame_rate} fps")
        self.path = Path(path)
        self.width, self.height = width, height
        self.frame_rate = Fraction(frame_rate).limit_denominator(1001)  # 29.97002997 -> 30000/1001
        self.frames_written = 0
        self._last_ticks = -1
        created = not self.path.exists()
        self._sink = _Sink(self.path)  # a bad location fails here, before anything is encoded
        options = {"preset": preset, "crf": str(crf)} | ({"tune": tune} if tune else {})
        muxing = {"movflags": FRAGMENT_FLAGS, "flush_packets": "1"}
        self._container: av.container.OutputContainer | None = None
        try:
            self._container = container = av.open(self._sink, "w", format="mp4", options=muxing)
            self._stream = stream = container.add_stream(codec, self.frame_rate, options)
            stream.width, stream.height = width + width % 2, height + height % 2
            stream.pix_fmt = "yuv420p"
            stream.time_base = stream.codec_context.time_base = TIME_BASE
            stream.codec_context.gop_size = max(1, round(self.frame_rate))
            container.start_encoding()  # opens the encoder now, so bad settings fail here
        except (av.FFmpegError, ValueError) as exc:
            if self._container is not None:
                self._container.close()
                self._container = None
            self._sink.close()
            if created:  # never remove what was there before (it may be a device)
                self.path.unlink(missing_ok=True)
            settings = f"{codec} (preset {preset!r}, crf {crf}, tune {tune!r})"
            raise self._failure(exc, f"cannot encode {self.path} with {settings}") from exc

    def _failure(self, exc: Exception, what: str) -> PolypviewError:
        """A failed write (disk full, file too large, I/O) is an OutputError; the rest is the
        codec's."""
        if self._sink.error is not None:
            return OutputError(f"cannot write {self.path}: {self._sink.error.strerror}")
        return VideoError(f"{what}: {exc.strerror if isinstance(exc, av.FFmpegError) else exc}")

    def write(self, image: np.ndarray, pts: float | None = None) -> None:
        """Encode one BGR uint8 image of the clip's size, shown at ``pts`` seconds if given."""
        if self._container is None:
            raise ValueError(f"{self.path} is closed")
        if image.shape != (self.height, self.width, 3) or image.dtype != np.uint8:
            raise ValueError(
                f"expected a {self.height}x{self.width}x3 uint8 image, got {image.shape} "
                f"{image.dtype}"
            )
        if pts is None:
            ticks = round(self.frames_written / (self.frame_rate * TIME_BASE))
        else:
            ticks = round(pts / TIME_BASE)
        if ticks <= self._last_ticks:
            raise ValueError(
                f"pts must be >= 0 and increase: frame {self.frames_written} at {pts}s"
            )
        if self.width % 2 or self.height % 2:
            bottom, right = self.height % 2, self.width % 2
            image = cv2.copyMakeBorder(image, 0, bottom, 0, right, cv2.BORDER_REPLICATE)
        picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
        picture.pts, picture.time_base = ticks, TIME_BASE
        try:
            self._container.mux(self._stream.encode(picture))
        except (av.FFmpegError, OSError) as exc:
            raise self._failure(exc, f"cannot encode frame {self.frames_written}") from exc
        self._last_ticks = ticks
        self.frames_written += 1

    def close(self) -> None:
        """Drain the encoder and finish the file; a second call does nothing."""
        if self._container is None:
            return
        container, self._container = self._container, None
        try:
            try:
                container.mux(self._stream.encode(None))
            finally:
                container.close()  # writes the last fragment and the index of fragments
        except (av.FFmpegError, OSError) as exc:
            raise self._failure(exc, f"cannot finish {self.path}") from exc
        finally:
            self._sink.close()
        if self._sink.error is not None:  # FFmpeg ignores a failed write while finishing
            raise self._failure(self._sink.error, f"cannot finish {self.path}")

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
            return
        try:
            self.close()  # keep what was written; the first failure is the one to report
        except PolypviewError as second:
            if str(second) != str(exc):
                exc.add_note(f"while closing: {second}")


class _Sink:
    """The clip's file, unbuffered, keeping the first failed write's error.

    PyAV writes through it because FFmpeg does not report a write that fails while a fragmented
    MP4 is finished (its last fragment): ClipWriter checks ``error`` instead.
    """

    def __init__(self, path: Path) -> None:
        try:
            self._file = path.open("wb", buffering=0)
        except OSError as exc:
            problem = {
                errno.ENOENT: f"folder {path.parent} does not exist",
                errno.ENOTDIR: f"{path.parent} is not a folder",
                errno.EISDIR: "it is a folder",
            }.get(exc.errno)
            reason = f"{problem} ({exc.strerror})" if problem else exc.strerror
            raise OutputError(f"cannot write {path}: {reason}") from exc
        self.error: OSError | None = None

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        written = 0
        try:
            while written < len(view):  # a short write (the disk filling up) is retried
                written += self._file.write(view[written:])
        except OSError as exc:
            self.error = self.error or exc
            raise
        return written

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def close(self) -> None:
        self._file.close()
