"""Where frames come from: files, capture devices, network streams and a synthetic test pattern.

Every source stamps a frame with ``capture_time`` (the clock reading when the frame became
available), so the pipeline can measure delay from it. Live sources never queue: a consumer that
falls behind gets the newest frame (devices, streams, the synthetic pattern). A file played in
real time keeps its schedule instead and hands a late consumer every frame, in order: the
pipeline drops what it must. Hardware-specific modules are imported where they are used.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import av
import cv2
import numpy as np

from polypview.errors import VideoError
from polypview.frame import Frame
from polypview.video import VideoSource

SPEEDS = (0.25, 4.0)  # the playback speeds a file may be set to
CLIP_MEMORY_BYTES = 256 << 20  # a synthetic source's clip is held resized in memory, up to this
FALLBACK_FPS = 30.0  # what a capture device is assumed to deliver when it reports no rate
PROBED_INDICES = range(10)  # capture indices tried where devices cannot be listed
SPEC_FORMS = (
    "path/to/video.mp4, a folder of images, device:N, /dev/videoN, N, rtsp://..., http(s)://..., "
    "udp://..., synthetic:WxH@FPS[:clip.mp4]"
)
STREAM_SCHEMES = ("rtsp", "rtsps", "http", "https", "udp")
VIDIOC_QUERYCAP = 0x80685600  # _IOR('V', 0, struct v4l2_capability): 104 bytes
V4L2_CAPTURE = 0x1 | 0x1000  # V4L2_CAP_VIDEO_CAPTURE | V4L2_CAP_VIDEO_CAPTURE_MPLANE
V4L2_CAP_DEVICE_CAPS = 0x80000000  # device_caps describes this node, not the whole device

Clock = Callable[[], float]
Sleep = Callable[[float], object]


class Source(Protocol):
    name: str  # in words, for the GUI and logs
    width: int
    height: int
    fps: float  # nominal rate (what the device or file says)
    live: bool  # frames are dropped, never queued

    def read(self) -> Frame | None: ...  # blocks until the next frame; None at the end

    def close(self) -> None: ...


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


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    index: int
    path: str
    name: str


class DeviceSource:
    """A camera or capture card through OpenCV, with the platform's own capture backend.

    The pixel format is set before the size because drivers pick the mode from it; what the
    device actually delivers is read back into ``actual``. A read that fails raises VideoError;
    ``try_reconnect`` reopens the device with the same settings once it is back. ``read`` and
    ``try_reconnect`` belong to one thread; ``close`` may come from another and waits for a read
    in progress (at most the driver's own timeout).
    """

    live = True

    def __init__(
        self,
        device: int | str,
        *,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        fourcc: str = "MJPG",
        reconnect: bool = True,
        capture_factory: Callable[[int | str, int], Any] | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.device = device
        self.reconnect = reconnect
        self._requested = (width, height, fps, fourcc)
        self._factory = capture_factory or _opencv_capture
        self._clock = clock
        self._lock = threading.Lock()
        self._index = 0
        self._origin: float | None = None  # capture time of the first frame: pts counts from it
        self._capture = self._open()
        if self._capture is None:
            raise VideoError(f"cannot open capture device {device}: {_why_unopened(device)}")

    def _open(self) -> Any | None:
        capture = self._factory(self.device, _platform_backend())
        if not capture.isOpened():
            return None
        width, height, fps, fourcc = self._requested
        capture.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*fourcc))
        for prop, value in (
            (cv2.CAP_PROP_FRAME_WIDTH, width),
            (cv2.CAP_PROP_FRAME_HEIGHT, height),
            (cv2.CAP_PROP_FPS, fps),
        ):
            if value is not None:
                capture.set(prop, value)
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # hand over the newest frame, not a queued one
        code = int(capture.get(cv2.CAP_PROP_FOURCC))
        self.actual = {
            "width": int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            "height": int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            "fps": float(capture.get(cv2.CAP_PROP_FPS)),
            "fourcc": code.to_bytes(4, "little").decode("latin-1").strip("\0 "),
        }
        self.width, self.height = self.actual["width"], self.actual["height"]
        self.fps = self.actual["fps"] or fps or FALLBACK_FPS
        self.name = (
            f"USB capture {self.device} ({self.width}x{self.height} {self.actual['fourcc']} "
            f"@ {self.fps:g})"
        )
        return capture

    def read(self) -> Frame | None:
        with self._lock:
            if self._capture is None:
                return None
            ok, image = self._capture.read()
            now = self._clock()
            if not ok or image is None:
                raise VideoError(f"capture device {self.device} stopped delivering frames")
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        if self._origin is None:
            self._origin = now
        frame = Frame(self._index, now - self._origin, np.ascontiguousarray(image), now)
        self._index += 1
        return frame

    def try_reconnect(self) -> bool:
        """Reopen the device with the same settings; False while it is still gone (or when
        ``reconnect`` is off)."""
        if not self.reconnect:
            return False
        with self._lock:
            if self._capture is not None:
                self._capture.release()
            self._capture = self._open()
            return self._capture is not None

    def close(self) -> None:
        with self._lock:
            if self._capture is not None:
                self._capture.release()
                self._capture = None


def _platform_backend() -> int:
    if sys.platform.startswith("linux"):
        return cv2.CAP_V4L2
    if sys.platform == "win32":
        return cv2.CAP_DSHOW  # honours the MJPG request, which Media Foundation often ignores
    if sys.platform == "darwin":
        return cv2.CAP_AVFOUNDATION
    return cv2.CAP_ANY


def _device_node(device: int | str) -> Path | None:
    if not sys.platform.startswith("linux"):
        return None
    return Path(f"/dev/video{device}" if isinstance(device, int) else device)


def _opencv_capture(device: int | str, backend: int) -> cv2.VideoCapture:
    node = _device_node(device)
    if node is not None and not node.exists():  # spares the user OpenCV's warnings
        return cv2.VideoCapture()
    return cv2.VideoCapture(device, backend)


def _why_unopened(device: int | str) -> str:
    node = _device_node(device)
    if node is None:
        return "no such device, or it is in use"
    if not node.exists():
        return "no such device"
    return "it is in use by another program, or not a video capture device"


def list_devices(*, sysfs: Path = Path("/sys/class/video4linux")) -> list[DeviceInfo]:
    """Capture devices: on Linux the V4L2 nodes that capture (not metadata-only ones), elsewhere
    the indices 0-9 that open."""
    if sys.platform.startswith("linux"):
        nodes = sysfs.glob("video[0-9]*") if sysfs.is_dir() else ()
        found = [
            DeviceInfo(int(node.name[5:]), f"/dev/{node.name}", _sysfs_name(node))
            for node in nodes
            if _captures(Path(f"/dev/{node.name}")) is not False
        ]
        return sorted(found, key=lambda info: info.index)
    found = []
    for index in PROBED_INDICES:
        capture = cv2.VideoCapture(index, _platform_backend())
        if capture.isOpened():
            found.append(DeviceInfo(index, str(index), f"camera {index}"))
        capture.release()
    return found


def describe_devices() -> str:
    devices = list_devices()
    if not devices:
        return "no capture devices found"
    return "\n".join(f"device:{d.index}  {d.path}  {d.name}" for d in devices)


def _sysfs_name(node: Path) -> str:
    name_file = node / "name"
    return name_file.read_text().strip() if name_file.is_file() else node.name


def _captures(path: Path) -> bool | None:
    """Whether a V4L2 node captures video, None when it cannot be asked (no access)."""
    import fcntl  # Linux only

    try:
        handle = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        caps = fcntl.ioctl(handle, VIDIOC_QUERYCAP, bytes(104))
    except OSError:
        return None
    finally:
        os.close(handle)
    capabilities, device_caps = (int.from_bytes(caps[at : at + 4], "little") for at in (84, 88))
    node_caps = device_caps if capabilities & V4L2_CAP_DEVICE_CAPS else capabilities
    return bool(node_caps & V4L2_CAPTURE)


class StreamSource:
    """A network stream (rtsp, http, udp) decoded on its own thread into a one-frame slot.

    ``read`` takes the newest frame: frames it did not take are counted in ``dropped_frames``.
    No frame for ``timeout_s`` raises VideoError. ``read`` belongs to one thread; ``close`` may
    come from another and waits for the decode thread (at most ``timeout_s`` on a stalled link).
    """

    live = True

    def __init__(self, url: str, *, timeout_s: float = 5.0, clock: Clock = time.monotonic) -> None:
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
    with VideoSource(clip) as video:
        return [
            cv2.resize(frame.image, (width, height), interpolation=cv2.INTER_AREA)
            for frame, _ in zip(video, range(limit), strict=False)
        ]


def open_source(spec: str, **options: Any) -> Source:
    """The source a spec names; ``options`` go to its constructor."""
    if spec.startswith("synthetic:"):
        parsed = re.fullmatch(r"synthetic:(\d+)x(\d+)@(\d+(?:\.\d+)?)(?::(.+))?", spec)
        if parsed is None:
            raise VideoError(f"bad synthetic source {spec!r}: expected synthetic:WxH@FPS[:clip]")
        width, height, fps, clip = parsed.groups()
        return SyntheticSource(int(width), int(height), float(fps), clip=clip, **options)
    device = spec.removeprefix("device:")
    if device.isdigit():
        return DeviceSource(int(device), **options)
    if re.fullmatch(r"/dev/video\d+", device):
        return DeviceSource(device, **options)
    scheme, separator, _ = spec.partition("://")
    if separator and scheme.lower() in STREAM_SCHEMES:
        return StreamSource(spec, **options)
    if spec and not separator and not spec.startswith("device:") and Path(spec).exists():
        return FileSource(spec, **options)
    raise VideoError(f"cannot open source {spec!r}: no such file, and not one of: {SPEC_FORMS}")
