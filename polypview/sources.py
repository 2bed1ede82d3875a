"""Where frames come from: files, capture devices, network streams and a synthetic test pattern.

Every source stamps a frame with ``capture_time`` (the clock reading when the frame became
available), so the pipeline can measure delay from it. Live sources never queue: a consumer that
falls behind gets the newest frame (devices, streams, the synthetic pattern). A file played in
real time keeps its schedule instead and hands a late consumer every frame, in order: the
pipeline drops what it must. Hardware-specific modules are imported where they are used.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import re
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import cv2
import numpy as np

from polypview.errors import VideoError
from polypview.frame import Frame

if TYPE_CHECKING:
    import av

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
V4L2_CAP_VIDEO_CAPTURE, V4L2_CAP_VIDEO_CAPTURE_MPLANE = 0x1, 0x1000
V4L2_CAPTURE = V4L2_CAP_VIDEO_CAPTURE | V4L2_CAP_VIDEO_CAPTURE_MPLANE
V4L2_CAP_DEVICE_CAPS = 0x80000000  # device_caps describes this node, not the whole device
# Mode enumeration (linux/videodev2.h). Each request is _IOWR('V', nr, struct): the size of the
# struct is part of the request code, so the layouts below must match the kernel's exactly.
VIDIOC_ENUM_FMT = 0xC0405602  # _IOWR('V', 2, struct v4l2_fmtdesc): 64 bytes
VIDIOC_ENUM_FRAMESIZES = 0xC02C564A  # _IOWR('V', 74, struct v4l2_frmsizeenum): 44 bytes
VIDIOC_ENUM_FRAMEINTERVALS = 0xC034564B  # _IOWR('V', 75, struct v4l2_frmivalenum): 52 bytes
# v4l2_fmtdesc: index, type, flags, description[32], pixelformat, mbus_code, reserved[3]
FMTDESC = struct.Struct("<3I32s2I12x")
# v4l2_frmsizeenum: index, pixel_format, type, then discrete {width, height} or stepwise
# {min_width, max_width, step_width, min_height, max_height, step_height}, reserved[2]
FRMSIZEENUM = struct.Struct("<3I6I8x")
# v4l2_frmivalenum: index, pixel_format, width, height, type, then discrete {numerator,
# denominator} or stepwise {min, max, step} as such fractions (seconds per frame), reserved[2]
FRMIVALENUM = struct.Struct("<5I6I8x")
V4L2_BUF_TYPE_VIDEO_CAPTURE, V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE = 1, 9
V4L2_DISCRETE, V4L2_CONTINUOUS, V4L2_STEPWISE = 1, 2, 3  # frame size and interval types
ENUM_LIMIT = 256  # answers taken from one enumeration: a driver that never ends it is cut off
# Sizes and rates offered from within a stepwise or continuous range: the usual video ones.
STANDARD_SIZES = (
    (3840, 2160),
    (2560, 1440),
    (1920, 1200),
    (1920, 1080),
    (1600, 1200),
    (1280, 1024),
    (1280, 720),
    (1024, 768),
    (800, 600),
    (720, 576),
    (720, 480),
    (640, 480),
)
STANDARD_RATES = (120, 60, 50, 30, 25, 24, 15, 10, 5)
# The pixel formats OpenCV's V4L2 backend decodes (H.264 and the like it does not): only these
# are listed, since DeviceSource reads through OpenCV. Trailing spaces of a fourcc are dropped.
# fmt: off
OPENCV_FOURCCS = frozenset({
    "MJPG", "JPEG", "S910", "YUYV", "UYVY", "YU12", "YV12", "NV12", "NV21", "RGB3", "BGR3",
    "XR24", "AR24", "GREY", "Y10", "Y12", "Y16", "BA81", "GBRG", "GRBG",
})
# fmt: on
COMPRESSED_FOURCCS = frozenset({"MJPG", "JPEG", "S910"})
FOURCC_ORDER = ("MJPG", "YUYV")  # first at equal size and rate: MJPG leaves USB bandwidth spare
# What the OpenCV probe tries where the driver cannot be asked: the modes endoscopy capture cards
# and cameras commonly offer, in both formats DeviceSource asks for.
PROBED_SIZES_RATES = (
    (1920, 1080, 60),
    (1920, 1080, 30),
    (1280, 720, 60),
    (1280, 720, 30),
    (720, 576, 25),
    (640, 480, 30),
)
PROBE_RATE_TOLERANCE = 0.5  # frames/s: a read-back rate this close counts as the one asked for

Clock = Callable[[], float]
Sleep = Callable[[float], object]
Ioctl = Callable[[int, int, bytes], bytes]  # fcntl.ioctl's shape: (fd, request, struct) -> answer


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


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    index: int
    path: str
    name: str


@dataclass(frozen=True, slots=True)
class CaptureMode:
    """One way a capture device can deliver frames. ``fps`` is None where the driver lists no
    rates for the size (the device then runs at a rate of its own)."""

    fourcc: str
    width: int
    height: int
    fps: float | None

    @property
    def label(self) -> str:
        rate = f"{self.fps:g} frames/s" if self.fps else "the device's rate"
        kind = "compressed" if self.fourcc in COMPRESSED_FOURCCS else "uncompressed"
        return f"{self.width} x {self.height} at {rate}, {self.fourcc} ({kind})"


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
        _ask_mode(capture, fourcc, width, height, fps)
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # hand over the newest frame, not a queued one
        delivered = _delivered_mode(capture)
        self.actual = {
            "width": delivered.width,
            "height": delivered.height,
            "fps": delivered.fps or 0.0,
            "fourcc": delivered.fourcc,
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


def _ask_mode(
    capture: Any, fourcc: str, width: int | None, height: int | None, fps: float | None
) -> None:
    """Ask an OpenCV capture for a mode, the pixel format first (drivers pick the mode from it);
    None leaves that part to the device."""
    capture.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*fourcc))
    for prop, value in (
        (cv2.CAP_PROP_FRAME_WIDTH, width),
        (cv2.CAP_PROP_FRAME_HEIGHT, height),
        (cv2.CAP_PROP_FPS, fps),
    ):
        if value is not None:
            capture.set(prop, value)


def _delivered_mode(capture: Any) -> CaptureMode:
    """The mode an OpenCV capture says it is in (fps None where it reports no rate)."""
    code = int(capture.get(cv2.CAP_PROP_FOURCC))
    return CaptureMode(
        code.to_bytes(4, "little").decode("latin-1").strip("\0 "),
        int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
        int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        float(capture.get(cv2.CAP_PROP_FPS)) or None,
    )


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
        return bool(_node_capabilities(handle, fcntl.ioctl) & V4L2_CAPTURE)
    except OSError:
        return None
    finally:
        os.close(handle)


def _node_capabilities(handle: int, ioctl: Ioctl) -> int:
    """VIDIOC_QUERYCAP's capabilities of this node (not of the whole device, where it says)."""
    caps = ioctl(handle, VIDIOC_QUERYCAP, bytes(104))
    capabilities, device_caps = (int.from_bytes(caps[at : at + 4], "little") for at in (84, 88))
    return device_caps if capabilities & V4L2_CAP_DEVICE_CAPS else capabilities


# --- the modes a device offers ----------------------------------------------------------------


def list_modes(device: int | str, *, ioctl: Ioctl | None = None) -> list[CaptureMode]:
    """The modes a capture device offers, read from its V4L2 driver: instant, and it works while
    another program streams from the device. Largest size first, then highest rate, MJPG before
    YUYV; only pixel formats OpenCV decodes.

    Raises VideoError with the reason where the driver cannot be asked (not Linux, no such node,
    no access, not a V4L2 capture node); ``probe_modes`` is the slow way round. ``ioctl`` stands
    in for ``fcntl.ioctl`` (tests feed recorded answers through it).
    """
    node = _device_node(device)
    if node is None:
        raise VideoError(
            f"cannot list the modes of capture device {device}: only Linux drivers (V4L2) list them"
        )
    if ioctl is None:
        import fcntl  # Linux only

        ioctl = fcntl.ioctl
    try:
        handle = os.open(node, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as error:
        raise VideoError(f"cannot list the modes of {node}: {_open_failure(error)}") from error
    try:
        return _v4l2_modes(handle, ioctl)
    except OSError as error:
        why = "not a V4L2 device" if error.errno == errno.ENOTTY else error.strerror
        raise VideoError(f"cannot list the modes of {node}: {why}") from error
    finally:
        os.close(handle)


def probe_modes(
    device: int | str,
    *,
    capture_factory: Callable[[int | str, int], Any] | None = None,
    candidates: tuple[CaptureMode, ...] | None = None,
) -> list[CaptureMode]:
    """Where the driver cannot be asked (Windows, macOS, a node that is not V4L2): the common
    modes the device reads back exactly as they were asked for, nothing guessed. Slow (each mode
    is set on the open device: seconds in all) and needs the device free, so call it off the GUI
    thread. A device reporting no rate keeps the size and format, with fps None."""
    if candidates is None:
        candidates = tuple(
            CaptureMode(fourcc, width, height, fps)
            for fourcc in FOURCC_ORDER
            for width, height, fps in PROBED_SIZES_RATES
        )
    capture = (capture_factory or _opencv_capture)(device, _platform_backend())
    if not capture.isOpened():
        raise VideoError(f"cannot open capture device {device}: {_why_unopened(device)}")
    accepted: set[CaptureMode] = set()
    try:
        for mode in candidates:
            _ask_mode(capture, mode.fourcc, mode.width, mode.height, mode.fps)
            got = _delivered_mode(capture)
            if (got.fourcc, got.width, got.height) != (mode.fourcc, mode.width, mode.height):
                continue
            if got.fps is None:
                accepted.add(dataclasses.replace(mode, fps=None))
            elif mode.fps is None or abs(got.fps - mode.fps) <= PROBE_RATE_TOLERANCE:
                accepted.add(mode)
    finally:
        capture.release()
    return sorted(accepted, key=_mode_order)


def _open_failure(error: OSError) -> str:
    if isinstance(error, FileNotFoundError):
        return "no such device"
    if isinstance(error, PermissionError):
        return "no permission (is this user in the video group?)"
    return error.strerror or str(error)


def _v4l2_modes(handle: int, ioctl: Ioctl) -> list[CaptureMode]:
    capabilities = _node_capabilities(handle, ioctl)
    if capabilities & V4L2_CAP_VIDEO_CAPTURE:
        buffer_type = V4L2_BUF_TYPE_VIDEO_CAPTURE
    elif capabilities & V4L2_CAP_VIDEO_CAPTURE_MPLANE:
        buffer_type = V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE
    else:
        raise OSError(errno.ENODEV, "it does not capture video (a metadata or output node)")
    modes: set[CaptureMode] = set()
    for answer in _enumerate(ioctl, handle, VIDIOC_ENUM_FMT, FMTDESC, buffer_type):
        code = answer[4]
        fourcc = code.to_bytes(4, "little").decode("latin-1").strip("\0 ")
        if fourcc not in OPENCV_FOURCCS:
            continue
        for width, height in _sizes(ioctl, handle, code):
            for fps in _rates(ioctl, handle, code, width, height):
                modes.add(CaptureMode(fourcc, width, height, fps))
    return sorted(modes, key=_mode_order)


def _enumerate(
    ioctl: Ioctl, handle: int, request: int, layout: struct.Struct, *head: int
) -> Iterator[tuple[Any, ...]]:
    """A V4L2 enumeration's answers for index 0, 1, ... (the struct's leading fields are the index
    and ``head``); EINVAL ends the list, as does ENOTTY (a driver that does not enumerate this)."""
    for index in range(ENUM_LIMIT):
        asked = struct.pack(f"<{1 + len(head)}I", index, *head).ljust(layout.size, b"\0")
        try:
            answer = ioctl(handle, request, asked)
        except OSError as error:
            if error.errno in (errno.EINVAL, errno.ENOTTY):
                return
            raise
        yield layout.unpack(answer)


def _sizes(ioctl: Ioctl, handle: int, code: int) -> list[tuple[int, int]]:
    """The sizes a pixel format comes in; from a stepwise or continuous range, the standard sizes
    (and the largest) that lie on its steps."""
    sizes: dict[tuple[int, int], None] = {}
    for answer in _enumerate(ioctl, handle, VIDIOC_ENUM_FRAMESIZES, FRMSIZEENUM, code):
        kind, values = answer[2], answer[3:]
        if kind == V4L2_DISCRETE:
            sizes[values[0], values[1]] = None
            continue
        min_w, max_w, step_w, min_h, max_h, step_h = values
        if kind == V4L2_CONTINUOUS:
            step_w = step_h = 1
        for width, height in (*STANDARD_SIZES, (max_w, max_h)):
            if _on_steps(width, min_w, max_w, step_w) and _on_steps(height, min_h, max_h, step_h):
                sizes[width, height] = None
        break  # a range is the whole answer
    return list(sizes)


def _on_steps(value: int, low: int, high: int, step: int) -> bool:
    return low <= value <= high and (value - low) % max(step, 1) == 0


def _rates(ioctl: Ioctl, handle: int, code: int, width: int, height: int) -> list[float | None]:
    """The frame rates of one size; from a range of intervals, the standard rates within it (and
    the highest); [None] where the driver lists none."""
    rates: dict[float | None, None] = {}
    for answer in _enumerate(
        ioctl, handle, VIDIOC_ENUM_FRAMEINTERVALS, FRMIVALENUM, code, width, height
    ):
        kind, values = answer[4], answer[5:]
        if kind == V4L2_DISCRETE:
            numerator, denominator = values[0], values[1]
            if numerator and denominator:
                rates[float(Fraction(denominator, numerator))] = None
            continue
        if not (values[0] and values[1] and values[2] and values[3]):
            break  # a zero in a range's bounds: nothing sensible to offer
        shortest, longest = Fraction(values[0], values[1]), Fraction(values[2], values[3])
        for rate in (1 / shortest, *STANDARD_RATES):
            if shortest <= 1 / Fraction(rate) <= longest:
                rates[float(rate)] = None
        break  # a range is the whole answer
    return list(rates) or [None]


def _mode_order(mode: CaptureMode) -> tuple[int, int, float, int, str]:
    """Largest size first, then highest rate, then MJPG, YUYV and the rest by name."""
    preference = FOURCC_ORDER.index(mode.fourcc) if mode.fourcc in FOURCC_ORDER else 99
    return (-mode.width * mode.height, -mode.width, -(mode.fps or 0.0), preference, mode.fourcc)


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
