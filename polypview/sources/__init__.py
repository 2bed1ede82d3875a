"""Where frames come from: files, capture devices, network streams and a synthetic test pattern.

Every source stamps a frame with ``capture_time`` (the clock reading when the frame became
available), so the pipeline can measure delay from it. Live sources never queue: a consumer that
falls behind gets the newest frame (devices, streams, the synthetic pattern). A file played in
real time keeps its schedule instead and hands a late consumer every frame, in order: the
pipeline drops what it must. ``open_source`` turns a spec into the source it names; PyAV and
the device libraries are imported where they are used.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from polypview.errors import VideoError
from polypview.sources.base import Source
from polypview.sources.device import DeviceSource, probe_modes
from polypview.sources.file import FileSource
from polypview.sources.listing import DeviceInfo, describe_devices, find_device, list_devices
from polypview.sources.modes import CaptureMode, list_modes
from polypview.sources.stream import STREAM_SCHEMES, StreamSource
from polypview.sources.synthetic import SyntheticSource

__all__ = [
    "CaptureMode",
    "DeviceInfo",
    "DeviceSource",
    "FileSource",
    "Source",
    "StreamSource",
    "SyntheticSource",
    "describe_devices",
    "find_device",
    "list_devices",
    "list_modes",
    "open_source",
    "probe_modes",
    "resolve_device",
]

SPEC_FORMS = (
    "path/to/video.mp4, a folder of images, device:N, device:NAME, /dev/videoN, N, rtsp://..., "
    "http(s)://..., udp://..., synthetic:WxH@FPS[:clip.mp4]"
)
V4L2_NODE = re.compile(r"/dev/video\d+")


def resolve_device(device: str) -> int | str | DeviceInfo:
    """What ``device:DEVICE`` opens: an index, a node (Linux), else the device with that name
    (VideoError, listing the devices, where none or several have it)."""
    if device.isdigit():
        return int(device)
    if V4L2_NODE.fullmatch(device):
        return device
    return find_device(device)


def open_source(spec: str, **options: Any) -> Source:
    """The source a spec names; ``options`` go to its constructor. A device is named by its
    index, its node (Linux) or (part of) its name after ``device:``."""
    if spec.startswith("synthetic:"):
        parsed = re.fullmatch(r"synthetic:(\d+)x(\d+)@(\d+(?:\.\d+)?)(?::(.+))?", spec)
        if parsed is None:
            raise VideoError(f"bad synthetic source {spec!r}: expected synthetic:WxH@FPS[:clip]")
        width, height, fps, clip = parsed.groups()
        return SyntheticSource(int(width), int(height), float(fps), clip=clip, **options)
    device = spec.removeprefix("device:")
    if device.isdigit() or V4L2_NODE.fullmatch(device) or (spec.startswith("device:") and device):
        return DeviceSource(resolve_device(device), **options)
    scheme, separator, _ = spec.partition("://")
    if separator and scheme.lower() in STREAM_SCHEMES:
        return StreamSource(spec, **options)
    if spec and not separator and not spec.startswith("device:") and Path(spec).exists():
        return FileSource(spec, **options)
    raise VideoError(f"cannot open source {spec!r}: no such file, and not one of: {SPEC_FORMS}")
