"""The modes a capture device offers: size, rate and pixel format, as its driver lists them.

On Linux ``linuxpy`` asks the V4L2 driver (instant, and it works while another program streams
from the device). Windows and macOS drivers cannot be asked this way: there ``probe_modes``
(in ``polypview.sources.device``) tries the common modes through OpenCV instead.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

from polypview.errors import VideoError
from polypview.sources.listing import device_node

if TYPE_CHECKING:
    from linuxpy.video.device import Device
    from linuxpy.video.raw import v4l2_frmsize_stepwise

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


def mode_order(mode: CaptureMode) -> tuple[int, int, float, int, str]:
    """Largest size first, then highest rate, then MJPG, YUYV and the rest by name."""
    preference = FOURCC_ORDER.index(mode.fourcc) if mode.fourcc in FOURCC_ORDER else 99
    return (-mode.width * mode.height, -mode.width, -(mode.fps or 0.0), preference, mode.fourcc)


def list_modes(device: int | str) -> list[CaptureMode]:
    """The modes a capture device's V4L2 driver lists: largest size first, then highest rate,
    MJPG before YUYV; only pixel formats OpenCV decodes.

    Raises VideoError with the reason where the driver cannot be asked (not Linux, no such node,
    no access, not a V4L2 capture node); ``probe_modes`` is the slow way round.
    """
    node = device_node(device)
    if node is None:
        raise VideoError(
            f"cannot list the modes of capture device {device}: only Linux drivers (V4L2) list them"
        )
    from linuxpy.video.device import Capability, Device  # Linux only

    try:
        with Device(node, read_write=False) as video:
            capabilities = video.info.device_capabilities
            if Capability.VIDEO_CAPTURE in capabilities:
                return sorted(_driver_modes(video), key=mode_order)
    except OSError as error:
        raise VideoError(f"cannot list the modes of {node}: {_failure(error)}") from error
    # linuxpy 0.25 cannot read a multi-planar node's formats; UVC capture cards are single-planar
    if Capability.VIDEO_CAPTURE_MPLANE in capabilities:
        why = "it is a multi-planar node, whose modes are not listed"
    else:
        why = "it does not capture video (a metadata or output node)"
    raise VideoError(f"cannot list the modes of {node}: {why}")


def _failure(error: OSError) -> str:
    if isinstance(error, FileNotFoundError):
        return "no such device"
    if isinstance(error, PermissionError):
        return "no permission (is this user in the video group?)"
    if error.errno == errno.ENOTTY:  # the node does not answer V4L2 requests
        return "not a V4L2 device"
    return error.strerror or str(error)


def _driver_modes(video: Device) -> set[CaptureMode]:
    from linuxpy.video.device import BufferType, FrameSizeType, human_pixel_format

    modes: set[CaptureMode] = set()
    for image_format in video.info.buffer_formats(BufferType.VIDEO_CAPTURE):
        pixel_format = image_format.pixel_format
        fourcc = human_pixel_format(pixel_format).strip("\0 ")
        if fourcc not in OPENCV_FOURCCS:
            continue
        for size in video.info.format_frame_sizes(pixel_format):
            if size.type == FrameSizeType.DISCRETE:
                sizes = [(size.info.width, size.info.height)]
            else:
                sizes = _sizes_in_range(size.info, stepped=size.type == FrameSizeType.STEPWISE)
            for width, height in sizes:
                for fps in _rates(video, pixel_format, width, height):
                    modes.add(CaptureMode(fourcc, width, height, fps))
    return modes


def _sizes_in_range(steps: v4l2_frmsize_stepwise, *, stepped: bool) -> list[tuple[int, int]]:
    """The standard sizes (and the largest) that lie on a stepwise or continuous range."""
    widths = (steps.min_width, steps.max_width, steps.step_width if stepped else 1)
    heights = (steps.min_height, steps.max_height, steps.step_height if stepped else 1)
    candidates = (*STANDARD_SIZES, (steps.max_width, steps.max_height))
    return list(
        dict.fromkeys(
            (width, height)
            for width, height in candidates
            if _on_steps(width, *widths) and _on_steps(height, *heights)
        )
    )


def _on_steps(value: int, low: int, high: int, step: int) -> bool:
    return low <= value <= high and (value - low) % max(step, 1) == 0


def _rates(video: Device, pixel_format: int, width: int, height: int) -> list[float | None]:
    """The frame rates of one size; from a range, the standard rates within it (and the
    highest); [None] where the driver lists none (or lists a 0/0 interval)."""
    from linuxpy.video.device import FrameIntervalType

    try:
        intervals = video.info.fps_intervals(pixel_format, width, height)
    except ZeroDivisionError:  # linuxpy divides by a driver's 0/0 frame interval
        return [None]
    rates: dict[float | None, None] = {}
    for interval in intervals:
        if interval.type == FrameIntervalType.DISCRETE:
            if interval.max_fps:  # 0: linuxpy's stand-in for a size without listed rates
                rates[float(interval.max_fps)] = None
            continue
        # linuxpy gives a range's rates as the inverses of its bounds, which bound comes first
        lowest, highest = sorted((Fraction(interval.min_fps), Fraction(interval.max_fps)))
        if not lowest:
            continue  # an unbounded range: nothing sensible to offer
        for rate in (highest, *STANDARD_RATES):
            if lowest <= rate <= highest:
                rates[float(rate)] = None
    return list(rates) or [None]
