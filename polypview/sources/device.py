"""A camera or capture card read through OpenCV, and the common-modes probe where the driver
cannot list its modes."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from polypview.errors import VideoError
from polypview.frame import Frame
from polypview.sources.base import FALLBACK_FPS, Clock
from polypview.sources.listing import DeviceInfo, device_node, list_devices, platform_backend
from polypview.sources.modes import FOURCC_ORDER, CaptureMode, mode_order

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

CaptureFactory = Callable[[int | str, int], Any]  # cv2.VideoCapture's shape: (device, backend)


class DeviceSource:
    """A camera or capture card through OpenCV, with the platform's own capture backend.

    The pixel format is set before the size because drivers pick the mode from it; what the
    device actually delivers is read back into ``actual``. A read that fails raises VideoError;
    ``try_reconnect`` reopens the device with the same settings once it is back, found by its
    name where it was listed (its index may have changed meanwhile). ``read`` and
    ``try_reconnect`` belong to one thread; ``close`` may come from another and waits for a read
    in progress (at most the driver's own timeout).
    """

    live = True

    def __init__(
        self,
        device: int | str | DeviceInfo,
        *,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        fourcc: str = "MJPG",
        reconnect: bool = True,
        capture_factory: CaptureFactory | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.info = device if isinstance(device, DeviceInfo) else _listed(device)
        self.device = self.info.target if self.info is not None else device
        self.reconnect = reconnect
        self._requested = (width, height, fps, fourcc)
        self._factory = capture_factory or _opencv_capture
        self._clock = clock
        self._lock = threading.Lock()
        self._index = 0
        self._origin: float | None = None  # capture time of the first frame: pts counts from it
        self._capture = self._open()
        if self._capture is None:
            raise VideoError(
                f"cannot open capture device {self.device}: {_why_unopened(self.device)}"
            )

    def _open(self) -> Any | None:
        capture = self._factory(self.device, platform_backend()[0])
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
        known_as = self.info.name if self.info is not None else f"capture device {self.device}"
        self.name = (
            f"{known_as} ({self.width}x{self.height} {self.actual['fourcc']} @ {self.fps:g})"
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
        ``reconnect`` is off). A listed device is looked for by its name, at its old place first."""
        if not self.reconnect:
            return False
        with self._lock:
            if self._capture is not None:
                self._capture.release()
                self._capture = None
            if self.info is not None:
                back = _found_again(self.info, list_devices())
                if back is None:
                    return False
                self.info, self.device = back, back.target
            self._capture = self._open()
            return self._capture is not None

    def close(self) -> None:
        with self._lock:
            if self._capture is not None:
                self._capture.release()
                self._capture = None


def _listed(target: int | str) -> DeviceInfo | None:
    """The listed device OpenCV opens as ``target`` (an index, or a node on Linux)."""
    return next((info for info in list_devices() if target in (info.index, info.path)), None)


def _found_again(gone: DeviceInfo, devices: list[DeviceInfo]) -> DeviceInfo | None:
    """The device that went away, by its name and USB ids: where it was if it is there again,
    else the first such one."""
    same = [device for device in devices if device.same_device(gone)]
    in_place = [device for device in same if device.target == gone.target]
    return (in_place or same or [None])[0]


def probe_modes(
    device: int | str,
    *,
    capture_factory: CaptureFactory | None = None,
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
    capture = (capture_factory or _opencv_capture)(device, platform_backend()[0])
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
    return sorted(accepted, key=mode_order)


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


def _opencv_capture(device: int | str, backend: int) -> cv2.VideoCapture:
    node = device_node(device)
    if node is not None and not node.exists():  # spares the user OpenCV's warnings
        return cv2.VideoCapture()
    return cv2.VideoCapture(device, backend)


def _why_unopened(device: int | str) -> str:
    node = device_node(device)
    if node is None:
        return "no such device, or it is in use"
    if not node.exists():
        return "no such device"
    return "it is in use by another program, or not a video capture device"
