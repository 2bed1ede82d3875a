"""The capture devices present, named as the system names them, through ``cv2-enumerate-cameras``.

The library lists what OpenCV can open with a given backend (V4L2 on Linux, DirectShow on
Windows, AVFoundation on macOS), with the index OpenCV opens and, where the platform has one, a
path (``/dev/videoN``, the Windows device path, the macOS unique id) and USB ids. An index can
change when devices come and go; the name stays, so a device is found again by its name.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import cv2

from polypview.errors import VideoError

# The backend OpenCV opens devices with on each platform, and its name in words.
BACKENDS = {
    "linux": (cv2.CAP_V4L2, "V4L2"),
    "win32": (cv2.CAP_DSHOW, "DirectShow"),  # honours the MJPG request; Media Foundation often not
    "darwin": (cv2.CAP_AVFOUNDATION, "AVFoundation"),
}


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """One capture device. ``index`` is what OpenCV opens with ``backend``; ``path`` is the node
    (Linux), device path (Windows) or unique id (macOS), None where the platform gives none."""

    name: str
    backend: str
    index: int
    path: str | None = None
    vendor_id: int | None = None
    product_id: int | None = None

    @property
    def target(self) -> int | str:
        """What OpenCV opens: the node on Linux (its path names it), the index elsewhere."""
        return self.path if self.backend == "V4L2" and self.path else self.index

    @property
    def spec(self) -> str:
        return f"device:{self.target}"

    @property
    def usb_id(self) -> str | None:
        if self.vendor_id is None or self.product_id is None:
            return None
        return f"{self.vendor_id:04x}:{self.product_id:04x}"

    def same_device(self, other: DeviceInfo) -> bool:
        """Whether ``other`` is this device, perhaps plugged back in at another index."""
        return (self.name, self.usb_id) == (other.name, other.usb_id)


def platform_backend() -> tuple[int, str]:
    """The OpenCV backend capture devices are opened with here, and its name."""
    return BACKENDS.get(sys.platform, (cv2.CAP_ANY, "any"))


def device_node(device: int | str) -> Path | None:
    """The V4L2 node a device target names on Linux; None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    return Path(f"/dev/video{device}" if isinstance(device, int) else device)


def list_devices() -> list[DeviceInfo]:
    """The capture devices OpenCV can open with this platform's backend, by index."""
    import cv2_enumerate_cameras  # loaded where devices are listed (AVFoundation on macOS)

    backend, backend_name = platform_backend()
    cameras = cv2_enumerate_cameras.enumerate_cameras(backend)
    found = [
        DeviceInfo(
            camera.name or f"camera {camera.index}",
            backend_name,
            camera.index,
            camera.path,
            camera.vid,
            camera.pid,
        )
        for camera in cameras
    ]
    return sorted(found, key=lambda device: device.index)


def find_device(query: str) -> DeviceInfo:
    """The device whose path ``query`` is, or whose name it is or is part of (any case); an
    unknown or ambiguous name raises VideoError listing the devices, in one line."""
    devices = list_devices()
    wanted = query.casefold()
    named = [device for device in devices if device.path == query] or [
        device for device in devices if wanted in device.name.casefold()
    ]
    matches = [device for device in named if device.name.casefold() == wanted] or named
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise VideoError(
            f"{query!r} names more than one capture device ({_one_line(matches)}); "
            "give more of the name, or one of the specs shown"
        )
    found = f"found: {_one_line(devices)}" if devices else "none found"
    raise VideoError(f"no capture device named {query!r} ({found})")


def _one_line(devices: list[DeviceInfo]) -> str:
    return ", ".join(f"{device.name} at {device.spec}" for device in devices)


def describe_devices(devices: list[DeviceInfo] | None = None) -> str:
    """One line a device: the spec that opens it, its name, the backend, path and USB ids."""
    devices = list_devices() if devices is None else devices
    if not devices:
        return "no capture devices found"
    lines = []
    for device in devices:
        details = [device.backend, *(str(part) for part in (device.path, device.usb_id) if part)]
        lines.append(f"{device.spec:<16} {device.name}  ({', '.join(details)})")
    return "\n".join(lines)
