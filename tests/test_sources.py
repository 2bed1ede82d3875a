"""Sources: pacing and controls under a fake clock; devices through fakes of the libraries that
list them (cv2-enumerate-cameras), their modes (linuxpy) and open them (OpenCV); a stream from a
server on 127.0.0.1; and the specs that name them."""

from __future__ import annotations

import errno
import functools
import http.server
import socket
import sys
import threading
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import cv2
import linuxpy.video.device as v4l2
import numpy as np
import pytest
from cv2_enumerate_cameras import CameraInfo
from linuxpy.video import raw

from conftest import camera
from polypview.errors import VideoError
from polypview.frame import Frame
from polypview.sources import (
    CaptureMode,
    DeviceInfo,
    DeviceSource,
    FileSource,
    StreamSource,
    SyntheticSource,
    describe_devices,
    find_device,
    list_devices,
    list_modes,
    open_source,
    probe_modes,
)
from videos import picture, write_clip

CAPTURE = v4l2.Capability.VIDEO_CAPTURE

PERIOD = 1 / 25
GUARD_S = 5.0  # only against a deadlock: a passing test never waits this long


class FakeClock:
    """A clock that moves only when slept on, recording each requested sleep."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clip30(tmp_path: Path) -> Path:
    return write_clip(tmp_path / "clip.mp4", 30)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def paced(path: Path, clock: FakeClock, **options) -> FileSource:
    return FileSource(path, clock=clock, sleep=clock.sleep, **options)


def read_in_thread(source: FileSource) -> tuple[threading.Event, list[Frame | None]]:
    done, got = threading.Event(), []
    threading.Thread(target=lambda: (got.append(source.read()), done.set()), daemon=True).start()
    return done, got


# --- FileSource -------------------------------------------------------------------------------


def test_realtime_releases_each_frame_at_its_pts(clip30: Path, clock: FakeClock) -> None:
    source = paced(clip30, clock)
    frames = [source.read() for _ in range(5)]
    assert [f.index for f in frames] == [0, 1, 2, 3, 4]
    assert clock.sleeps == pytest.approx([PERIOD] * 4)
    assert [f.capture_time - 100 for f in frames] == pytest.approx([f.pts for f in frames])
    assert source.live and source.position == pytest.approx(4 * PERIOD)
    assert (source.width, source.height, source.fps) == (64, 48, 25)
    assert source.duration == pytest.approx(30 * PERIOD)
    source.close()


def test_a_late_consumer_gets_every_frame_and_the_clock_holds(
    clip30: Path, clock: FakeClock
) -> None:
    source = paced(clip30, clock)
    source.read()
    clock.now += 5 * PERIOD + 0.01  # the consumer was busy
    late = [source.read() for _ in range(5)]
    assert [f.index for f in late] == [1, 2, 3, 4, 5] and clock.sleeps == []
    source.read()
    assert clock.sleeps == pytest.approx([PERIOD - 0.01])  # frame 6 is due at 6 periods
    source.close()


def test_speed_scales_the_waits_and_keeps_the_position(clip30: Path, clock: FakeClock) -> None:
    source = paced(clip30, clock, speed=2.0)
    [source.read() for _ in range(3)]
    assert clock.sleeps == pytest.approx([PERIOD / 2] * 2)
    source.speed = 0.5  # playback is at frame 2, released just now
    source.read()
    assert clock.sleeps[-1] == pytest.approx(2 * PERIOD)
    with pytest.raises(ValueError, match="speed"):
        source.speed = 8
    source.close()


def test_pause_blocks_step_releases_one_resume_continues(clip30: Path, clock: FakeClock) -> None:
    source = paced(clip30, clock)
    source.read()
    source.pause()
    assert source.paused
    done, got = read_in_thread(source)
    assert not done.wait(0.05)  # still blocked: a read while paused waits for resume or step
    source.step()
    assert done.wait(GUARD_S) and got[0].index == 1
    done, got = read_in_thread(source)
    assert not done.wait(0.05)  # the step released exactly one frame
    source.resume()
    assert done.wait(GUARD_S) and got[0].index == 2 and not source.paused
    assert source.read().index == 3
    source.close()


def test_seek_moves_the_next_frame(clip30: Path, clock: FakeClock) -> None:
    source = paced(clip30, clock)
    source.read()
    source.seek(0.4)
    assert source.position == 0.4
    frame = source.read()
    assert frame.index == 10 and frame.pts == pytest.approx(0.4) and clock.sleeps == []
    assert source.read().index == 11
    source.pause()
    source.seek(0.2)  # scrubbing while paused: a step shows the frame sought
    source.step()
    assert source.read().index == 5 and source.paused
    source.close()


def test_close_unblocks_a_paused_read(clip30: Path, clock: FakeClock) -> None:
    source = paced(clip30, clock)
    source.pause()
    done, got = read_in_thread(source)
    source.close()
    assert done.wait(GUARD_S) and got == [None]
    assert source.read() is None


def test_lockstep_reads_every_frame_without_waiting(clip30: Path, clock: FakeClock) -> None:
    source = paced(clip30, clock, realtime=False)
    frames = list(iter(source.read, None))
    assert [f.index for f in frames] == list(range(30)) and not source.live
    assert clock.sleeps == []
    source.close()


def test_loop_keeps_indices_increasing(clip30: Path, clock: FakeClock) -> None:
    source = paced(clip30, clock, loop=True)
    frames = [source.read() for _ in range(35)]
    assert [f.index for f in frames] == list(range(35))
    assert frames[30].pts == 0.0
    assert clock.sleeps == pytest.approx([PERIOD] * 34)  # no hitch where the loop wraps
    source.close()


# --- SyntheticSource --------------------------------------------------------------------------


def test_synthetic_spec_frames_and_pacing(clock: FakeClock) -> None:
    source = open_source("synthetic:64x48@25", clock=clock, sleep=clock.sleep)
    assert isinstance(source, SyntheticSource) and source.live
    assert (source.width, source.height, source.fps) == (64, 48, 25.0)
    frames = [source.read() for _ in range(3)]
    for frame in frames:
        assert frame.image.shape == (48, 64, 3) and frame.image.dtype == np.uint8
        assert frame.image.flags.c_contiguous
    assert [f.index for f in frames] == [0, 1, 2]
    assert [f.capture_time for f in frames] == sorted({f.capture_time for f in frames})
    assert clock.sleeps == pytest.approx([PERIOD] * 2)
    assert not np.array_equal(frames[0].image, frames[1].image)  # the pattern moves
    source.close()
    assert source.read() is None


def test_synthetic_late_consumer_skips_ahead(clock: FakeClock) -> None:
    source = SyntheticSource(64, 48, 25, clock=clock, sleep=clock.sleep)
    source.read()
    clock.now += 5.5 * PERIOD
    frame = source.read()
    assert frame.index == 5 and source.late_frames == 4
    source.read()
    assert clock.sleeps == pytest.approx([0.5 * PERIOD])  # back on the original schedule


def test_synthetic_loops_a_clip_resized(clip30: Path, clock: FakeClock) -> None:
    source = open_source(f"synthetic:32x24@10:{clip30}", clock=clock, sleep=clock.sleep)
    frames = [source.read() for _ in range(31)]
    assert frames[0].image.shape == (24, 32, 3)
    assert np.array_equal(frames[0].image, frames[30].image)
    assert not np.array_equal(frames[0].image, frames[1].image)


@pytest.mark.parametrize("spec", ["synthetic:64x48", "synthetic:axb@25", "synthetic:8x8@25"])
def test_bad_synthetic_specs(spec: str) -> None:
    with pytest.raises(VideoError, match="synthetic"):
        open_source(spec)


# --- DeviceSource -----------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_devices_but_the_tests(cameras: list[CameraInfo]) -> list[CameraInfo]:
    """Device tests see only the devices they list, never this machine's."""
    return cameras


class FakeCapture:
    """A cv2.VideoCapture stand-in: delivers ``frames`` frames in the mode the device picks."""

    def __init__(self, frames: int = 2, opened: bool = True) -> None:
        self.frames, self.opened, self.released = frames, opened, False
        self.calls: list[int] = []
        self.props = {
            cv2.CAP_PROP_FRAME_WIDTH: 1280.0,
            cv2.CAP_PROP_FRAME_HEIGHT: 720.0,
            cv2.CAP_PROP_FPS: 30.0,
            cv2.CAP_PROP_FOURCC: float(cv2.VideoWriter.fourcc(*"YUYV")),
        }

    def isOpened(self) -> bool:
        return self.opened

    def set(self, prop: int, value: float) -> bool:
        self.calls.append(prop)
        return True

    def get(self, prop: int) -> float:
        return self.props.get(prop, 0.0)

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.frames == 0:
            return False, None
        self.frames -= 1
        return True, picture(self.frames, 1280, 720)

    def release(self) -> None:
        self.released = True


def factory_of(*captures: FakeCapture, opened: list[int | str] | None = None):
    """A capture factory handing out ``captures`` in turn, noting in ``opened`` what it opened."""
    remaining = iter(captures)

    def factory(device: int | str, backend: int) -> FakeCapture:
        if opened is not None:
            opened.append(device)
        return next(remaining)

    return factory


def test_device_sets_fourcc_before_size_and_reads_back_the_mode(clock: FakeClock) -> None:
    capture = FakeCapture()
    source = DeviceSource(
        0, width=1920, height=1080, fps=60, capture_factory=factory_of(capture), clock=clock
    )
    assert capture.calls == [
        cv2.CAP_PROP_FOURCC,
        cv2.CAP_PROP_FRAME_WIDTH,
        cv2.CAP_PROP_FRAME_HEIGHT,
        cv2.CAP_PROP_FPS,
        cv2.CAP_PROP_BUFFERSIZE,
    ]
    assert source.actual == {"width": 1280, "height": 720, "fps": 30.0, "fourcc": "YUYV"}
    assert (source.width, source.height, source.fps, source.live) == (1280, 720, 30.0, True)
    assert source.name == "capture device 0 (1280x720 YUYV @ 30)"  # not listed: no name
    frame = source.read()
    assert frame.image.shape == (720, 1280, 3) and frame.capture_time == 100.0
    source.close()
    assert capture.released and source.read() is None


def test_device_unplugged_then_reconnected(clock: FakeClock) -> None:
    first, gone, back = FakeCapture(frames=2), FakeCapture(opened=False), FakeCapture(frames=1)
    source = DeviceSource(0, capture_factory=factory_of(first, gone, back), clock=clock)
    assert [source.read().index for _ in range(2)] == [0, 1]
    with pytest.raises(VideoError) as failure:
        source.read()
    assert str(failure.value) == "capture device 0 stopped delivering frames"
    assert not source.try_reconnect() and first.released
    assert source.try_reconnect()
    assert source.read().index == 2
    assert not DeviceSource(
        0, reconnect=False, capture_factory=factory_of(FakeCapture())
    ).try_reconnect()


MAGEWELL = (0x2935, 0x0006)


def test_a_device_plugged_back_at_another_index_is_found_by_its_name(
    cameras: list[CameraInfo], clock: FakeClock
) -> None:
    cameras[:] = [camera(0, "USB Capture HDMI 4K+", MAGEWELL)]
    opened: list[int | str] = []
    captures = (FakeCapture(frames=1), FakeCapture(frames=1))
    source = open_source("device:hdmi 4k", capture_factory=factory_of(*captures, opened=opened))
    assert source.name == "USB Capture HDMI 4K+ (1280x720 YUYV @ 30)"
    source.read()
    with pytest.raises(VideoError):
        source.read()
    cameras.clear()  # unplugged: not opened until it is listed again
    assert not source.try_reconnect() and opened == ["/dev/video0"]
    # plugged back after a webcam took its node
    cameras[:] = [camera(0, "Integrated Camera"), camera(2, "USB Capture HDMI 4K+", MAGEWELL)]
    assert source.try_reconnect()
    assert opened == ["/dev/video0", "/dev/video2"] and source.device == "/dev/video2"
    assert source.name.startswith("USB Capture HDMI 4K+ ") and source.read().index == 1


def test_a_device_opened_by_index_is_named_and_found_again(cameras: list[CameraInfo]) -> None:
    cameras[:] = [camera(1, "Cam Link 4K", (0x0FD9, 0x0066)), camera(3, "Cam Link 4K")]
    opened: list[int | str] = []
    source = open_source(
        "1", capture_factory=factory_of(FakeCapture(), FakeCapture(), opened=opened)
    )
    assert source.name.startswith("Cam Link 4K (")
    cameras[:] = [camera(3, "Cam Link 4K"), camera(4, "Cam Link 4K", (0x0FD9, 0x0066))]
    assert source.try_reconnect() and opened == ["/dev/video1", "/dev/video4"]  # USB ids: not 3


@pytest.mark.parametrize("spec", ["device:99", "/dev/video99", "99"])
def test_a_missing_device_is_one_line(spec: str) -> None:
    if Path("/dev/video99").exists():
        pytest.skip("this machine has a /dev/video99")
    with pytest.raises(VideoError) as failure:
        open_source(spec)
    device = spec.removeprefix("device:")
    assert str(failure.value) == f"cannot open capture device {device}: no such device"


# --- the devices present ----------------------------------------------------------------------


def test_devices_are_listed_by_name_with_what_opencv_opens(cameras: list[CameraInfo]) -> None:
    assert describe_devices() == "no capture devices found"
    cameras[:] = [camera(2, "HD USB Camera"), camera(0, "USB Capture HDMI 4K+", MAGEWELL)]
    devices = list_devices()
    assert devices == [
        DeviceInfo("USB Capture HDMI 4K+", "V4L2", 0, "/dev/video0", *MAGEWELL),
        DeviceInfo("HD USB Camera", "V4L2", 2, "/dev/video2"),
    ]
    assert [device.spec for device in devices] == ["device:/dev/video0", "device:/dev/video2"]
    assert describe_devices().splitlines() == [
        "device:/dev/video0 USB Capture HDMI 4K+  (V4L2, /dev/video0, 2935:0006)",
        "device:/dev/video2 HD USB Camera  (V4L2, /dev/video2)",
    ]


def test_off_linux_a_device_opens_by_its_index() -> None:
    windows = DeviceInfo("USB Capture HDMI 4K+", "DirectShow", 1, r"\\?\usb#vid_2935&pid_0006")
    assert (windows.target, windows.spec) == (1, "device:1")


def test_a_device_is_named_by_part_of_its_name_or_its_path(cameras: list[CameraInfo]) -> None:
    cameras[:] = [
        camera(0, "Integrated Camera"),
        camera(2, "USB Capture HDMI 4K+", MAGEWELL),
        camera(4, "USB Capture HDMI"),
    ]
    assert find_device("usb capture hdmi 4k").index == 2
    assert find_device("USB capture HDMI").index == 4  # the whole name beats a part of another
    assert find_device("/dev/video0").name == "Integrated Camera"
    with pytest.raises(VideoError) as failure:
        find_device("USB")
    assert str(failure.value) == (
        "'USB' names more than one capture device (USB Capture HDMI 4K+ at device:/dev/video2, "
        "USB Capture HDMI at device:/dev/video4); give more of the name, or one of the specs shown"
    )


def test_an_unknown_name_lists_the_devices_there_are(cameras: list[CameraInfo]) -> None:
    with pytest.raises(VideoError) as failure:
        open_source("device:Magewell")
    assert str(failure.value) == "no capture device named 'Magewell' (none found)"
    cameras[:] = [camera(0, "Integrated Camera"), camera(2, "Cam Link 4K")]
    with pytest.raises(VideoError) as failure:
        open_source("device:Magewell")
    assert str(failure.value) == (
        "no capture device named 'Magewell' (found: Integrated Camera at device:/dev/video0, "
        "Cam Link 4K at device:/dev/video2)"
    )


# --- the modes a device offers ---------------------------------------------------------------

Sizes = dict[str, list[tuple[int, ...]]]  # fourcc: (type, *values) for each frame size
Rates = dict[tuple[str, int, int] | str, list[tuple[int, ...]]]  # (fourcc, w, h) or fourcc


class FakeDriver:
    """linuxpy's video Device as ``list_modes`` uses it, answering from tables with linuxpy's own
    types, the way linuxpy turns a driver's answers into them.

    ``sizes`` gives a fourcc's frame sizes, ``(DISCRETE, w, h)`` or ``(STEPWISE|CONTINUOUS,
    min_w, max_w, step_w, min_h, max_h, step_h)``; ``rates`` a size's frame intervals,
    ``(DISCRETE, numerator, denominator)`` or a range ``(type, min_n, min_d, max_n, max_d)`` in
    seconds per frame. ``failure`` is raised where the node is opened.
    """

    def __init__(
        self,
        sizes: Sizes,
        rates: Rates,
        *,
        capabilities: v4l2.Capability = v4l2.Capability.VIDEO_CAPTURE,
        failure: OSError | None = None,
    ) -> None:
        self.sizes, self.rates, self.failure = sizes, rates, failure
        self.device_capabilities = capabilities
        self.opened: list[tuple[Path, bool]] = []
        self.buffer_types: set[v4l2.BufferType] = set()

    def __call__(self, path: Path, read_write: bool = True) -> FakeDriver:
        self.opened.append((path, read_write))
        return self

    def __enter__(self) -> FakeDriver:
        if self.failure is not None:
            raise self.failure
        return self

    def __exit__(self, *exc: object) -> None:
        """Nothing to close."""

    @property
    def info(self) -> FakeDriver:
        return self

    def buffer_formats(self, buffer_type: v4l2.BufferType) -> list[v4l2.ImageFormat]:
        self.buffer_types.add(buffer_type)
        return [
            v4l2.ImageFormat(buffer_type, fourcc, v4l2.ImageFormatFlag(0), pixel_format(fourcc))
            for fourcc in self.sizes
        ]

    def format_frame_sizes(self, pixel_format: v4l2.PixelFormat) -> list[v4l2.FrameSize]:
        sizes = []
        for index, (kind, *values) in enumerate(self.sizes[fourcc_of(pixel_format)]):
            layout = raw.v4l2_frmsize_discrete if kind == DISCRETE else raw.v4l2_frmsize_stepwise
            kind = v4l2.FrameSizeType(kind)
            sizes.append(v4l2.FrameSize(index, pixel_format, kind, layout(*values)))
        return sizes

    def fps_intervals(
        self, pixel_format: v4l2.PixelFormat, width: int, height: int
    ) -> list[v4l2.FrameType]:
        fourcc = fourcc_of(pixel_format)
        entries = self.rates.get((fourcc, width, height), self.rates.get(fourcc, []))
        if not entries:  # linuxpy's stand-in for a size the driver lists no rates for
            return [
                v4l2.FrameType(
                    v4l2.FrameIntervalType(DISCRETE), pixel_format, width, height, 0, 0, 0
                )
            ]
        intervals = []
        for kind, *values in entries:
            if kind == DISCRETE:
                numerator, denominator = values
                highest = lowest = Fraction(denominator / numerator)  # linuxpy divides: 0/0 raises
            else:  # linuxpy gives the inverse of the shortest interval first, 0 for a 0/0 bound
                shortest_n, shortest_d, longest_n, longest_d, *_step = values
                highest = Fraction(shortest_d, shortest_n) if shortest_n else 0
                lowest = Fraction(longest_d, longest_n) if longest_n else 0
            kind = v4l2.FrameIntervalType(kind)
            intervals.append(v4l2.FrameType(kind, pixel_format, width, height, highest, lowest, 0))
        return intervals


def pixel_format(fourcc: str) -> v4l2.PixelFormat:
    return v4l2.PixelFormat(int.from_bytes(fourcc.ljust(4).encode(), "little"))


def fourcc_of(pixel_format: v4l2.PixelFormat) -> str:
    return v4l2.human_pixel_format(pixel_format).strip()


DISCRETE, CONTINUOUS, STEPWISE = 1, 2, 3  # V4L2's frame size and interval types


def modes_of(monkeypatch: pytest.MonkeyPatch, driver: FakeDriver) -> list[CaptureMode]:
    monkeypatch.setattr(v4l2, "Device", driver)
    return list_modes("/dev/video7")


def test_discrete_modes_largest_and_fastest_first(monkeypatch: pytest.MonkeyPatch) -> None:
    driver = FakeDriver(
        {
            "YUYV": [(DISCRETE, 640, 480), (DISCRETE, 1920, 1080)],
            "MJPG": [(DISCRETE, 1280, 720), (DISCRETE, 1920, 1080)],
            "H264": [(DISCRETE, 1920, 1080)],  # OpenCV cannot decode it: left out
        },
        {
            ("MJPG", 1920, 1080): [(DISCRETE, 1, 30), (DISCRETE, 1, 60)],
            ("MJPG", 1280, 720): [(DISCRETE, 1, 60)],
            ("YUYV", 1920, 1080): [(DISCRETE, 1, 5)],
            ("YUYV", 640, 480): [(DISCRETE, 1001, 30000)],
            "H264": [(DISCRETE, 1, 30)],
        },
    )
    modes = modes_of(monkeypatch, driver)
    assert modes == [
        CaptureMode("MJPG", 1920, 1080, 60.0),
        CaptureMode("MJPG", 1920, 1080, 30.0),
        CaptureMode("YUYV", 1920, 1080, 5.0),
        CaptureMode("MJPG", 1280, 720, 60.0),
        CaptureMode("YUYV", 640, 480, 30000 / 1001),
    ]
    assert driver.opened == [(Path("/dev/video7"), False)]  # read-only: a stream may be running
    assert driver.buffer_types == {v4l2.BufferType.VIDEO_CAPTURE}
    assert modes[0].label == "1920 x 1080 at 60 frames/s, MJPG (compressed)"
    assert modes[-1].label == "640 x 480 at 29.97 frames/s, YUYV (uncompressed)"


def test_stepwise_sizes_and_rates_offer_the_standard_ones_on_their_steps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    driver = FakeDriver(
        # widths 160-1920 in steps of 32 (720 is off them), heights 120-1080 in steps of 8
        {"YUYV": [(STEPWISE, 160, 1920, 32, 120, 1080, 8)]},
        # 1/60 s to 1/20 s per frame
        {"YUYV": [(STEPWISE, 1, 60, 1, 20, 1, 1000)]},
    )
    modes = modes_of(monkeypatch, driver)
    sizes = list(dict.fromkeys((mode.width, mode.height) for mode in modes))
    assert sizes == [(1920, 1080), (1280, 1024), (1280, 720), (1024, 768), (800, 600), (640, 480)]
    assert [mode.fps for mode in modes if mode.width == 1920] == [60.0, 50.0, 30.0, 25.0, 24.0]


def test_continuous_sizes_sizes_without_rates_and_broken_rates(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    driver = FakeDriver(
        {"NV12": [(CONTINUOUS, 640, 1280, 1, 480, 720, 1)]},
        {
            ("NV12", 1280, 720): [(CONTINUOUS, 1, 50, 1, 25, 1, 1)],
            ("NV12", 800, 600): [(CONTINUOUS, 0, 0, 1, 25, 1, 1)],  # unbounded: nothing offered
            ("NV12", 720, 576): [(DISCRETE, 0, 0)],  # 0/0, which linuxpy cannot divide
        },  # the other sizes: no rates listed
    )
    assert modes_of(monkeypatch, driver) == [
        CaptureMode("NV12", 1280, 720, 50.0),
        CaptureMode("NV12", 1280, 720, 30.0),
        CaptureMode("NV12", 1280, 720, 25.0),
        CaptureMode("NV12", 800, 600, None),
        CaptureMode("NV12", 720, 576, None),
        CaptureMode("NV12", 720, 480, None),
        CaptureMode("NV12", 640, 480, None),
    ]
    assert CaptureMode("NV12", 640, 480, None).label == (
        "640 x 480 at the device's rate, NV12 (uncompressed)"
    )


@pytest.mark.parametrize(
    ("capabilities", "failure", "reason"),
    [
        (CAPTURE, OSError(errno.ENOTTY, "Inappropriate ioctl"), "not a V4L2 device"),
        (
            CAPTURE,
            PermissionError(errno.EACCES, "denied"),
            "no permission (is this user in the video group?)",
        ),
        (CAPTURE, OSError(errno.ENODEV, "No such device"), "No such device"),  # unplugged meanwhile
        (
            v4l2.Capability.META_CAPTURE,
            None,
            "it does not capture video (a metadata or output node)",
        ),
        (
            v4l2.Capability.VIDEO_CAPTURE_MPLANE,
            None,
            "it is a multi-planar node, whose modes are not listed",
        ),
    ],
)
def test_a_driver_that_cannot_list_modes_says_why(
    monkeypatch: pytest.MonkeyPatch,
    capabilities: v4l2.Capability,
    failure: OSError | None,
    reason: str,
) -> None:
    driver = FakeDriver(
        {"MJPG": [(DISCRETE, 640, 480)]}, {}, capabilities=capabilities, failure=failure
    )
    with pytest.raises(VideoError) as raised:
        modes_of(monkeypatch, driver)
    assert str(raised.value) == f"cannot list the modes of /dev/video7: {reason}"


def test_a_file_is_not_a_v4l2_node(tmp_path: Path) -> None:
    node = tmp_path / "video7"
    node.write_bytes(b"")
    with pytest.raises(VideoError) as failure:
        list_modes(str(node))  # linuxpy itself: a regular file answers ENOTTY
    assert str(failure.value) == f"cannot list the modes of {node}: not a V4L2 device"


def test_modes_of_a_missing_device_or_off_linux_say_so(monkeypatch: pytest.MonkeyPatch) -> None:
    if Path("/dev/video99").exists():
        pytest.skip("this machine has a /dev/video99")
    with pytest.raises(VideoError) as failure:
        list_modes(99)
    assert str(failure.value) == "cannot list the modes of /dev/video99: no such device"
    monkeypatch.setattr(sys, "platform", "win32")
    with pytest.raises(VideoError) as failure:
        list_modes(0)
    assert (
        str(failure.value)
        == "cannot list the modes of capture device 0: only Linux drivers (V4L2) list them"
    )


class ModalCapture(FakeCapture):
    """A capture that takes the modes in ``accepts`` (fourcc, width, height) and otherwise stays
    in 640x480 YUYV; it reports ``rate`` (0: no rate) whatever rate is asked for."""

    def __init__(self, accepts: set[tuple[str, int, int]], rate: float) -> None:
        super().__init__()
        self.accepts, self.asked = accepts, {}
        self.props.update({cv2.CAP_PROP_FRAME_WIDTH: 640.0, cv2.CAP_PROP_FRAME_HEIGHT: 480.0})
        self.props[cv2.CAP_PROP_FPS] = rate

    def set(self, prop: int, value: float) -> bool:
        self.asked[prop] = value
        if prop == cv2.CAP_PROP_FRAME_HEIGHT:  # the whole mode is asked for: take it or not
            fourcc = int(self.asked[cv2.CAP_PROP_FOURCC]).to_bytes(4, "little").decode()
            width = int(self.asked[cv2.CAP_PROP_FRAME_WIDTH])
            if (fourcc, width, int(value)) in self.accepts:
                self.props[cv2.CAP_PROP_FOURCC] = self.asked[cv2.CAP_PROP_FOURCC]
                self.props[cv2.CAP_PROP_FRAME_WIDTH], self.props[cv2.CAP_PROP_FRAME_HEIGHT] = (
                    width,
                    value,
                )
        return True


def test_the_opencv_probe_lists_only_what_the_device_read_back() -> None:
    capture = ModalCapture({("MJPG", 1280, 720), ("YUYV", 640, 480)}, rate=30.0)
    modes = probe_modes(0, capture_factory=factory_of(capture))
    assert modes == [CaptureMode("MJPG", 1280, 720, 30.0), CaptureMode("YUYV", 640, 480, 30.0)]
    assert capture.released
    silent = ModalCapture({("MJPG", 1920, 1080)}, rate=0.0)  # reports no rate
    assert probe_modes(0, capture_factory=factory_of(silent)) == [
        CaptureMode("MJPG", 1920, 1080, None)
    ]


def test_the_opencv_probe_of_a_missing_device_says_so() -> None:
    if Path("/dev/video99").exists():
        pytest.skip("this machine has a /dev/video99")
    with pytest.raises(VideoError) as failure:
        probe_modes(99, capture_factory=factory_of(FakeCapture(opened=False)))
    assert str(failure.value) == "cannot open capture device 99: no such device"


# --- StreamSource -----------------------------------------------------------------------------


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        """Keep request lines out of the test output."""


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 only, serving tmp_path; yields its base URL."""
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(tmp_path))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_stream_over_http_from_localhost(clip30: Path, serve: str) -> None:
    source = open_source(f"{serve}/{clip30.name}", timeout_s=GUARD_S)
    assert isinstance(source, StreamSource) and source.live
    assert (source.width, source.height, source.fps) == (64, 48, 25.0)
    frames = list(iter(source.read, None))
    indices = [f.index for f in frames]
    assert indices == sorted(set(indices)) and frames[0].image.shape == (48, 64, 3)
    assert len(frames) + source.dropped_frames == 30  # a frame is either taken or dropped
    source.close()


def test_a_stalled_stream_raises(tmp_path: Path) -> None:
    data = write_clip(tmp_path / "long.mp4", 75).read_bytes()
    release = threading.Event()

    class Stalling(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) * 2 // 3])
            self.wfile.flush()
            release.wait(GUARD_S)

        def log_message(self, *args: object) -> None:
            """Quiet."""

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stalling)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        source = StreamSource(f"http://127.0.0.1:{server.server_port}/", timeout_s=0.3)
        with pytest.raises(VideoError, match=r"stalled: no frame for 0\.3s"):
            for _ in range(100):  # the frames sent before the stall, then the error
                source.read()
        source.close()
    finally:
        release.set()
        server.shutdown()
        server.server_close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("scheme", ["rtsp", "http"])
def test_stream_schemes_reach_the_stream_source(scheme: str) -> None:
    url = f"{scheme}://127.0.0.1:{free_port()}/live"  # nothing listens there
    with pytest.raises(VideoError, match=f"cannot open stream {url}"):
        open_source(url, timeout_s=1.0)


# --- open_source ------------------------------------------------------------------------------


def test_files_and_image_folders_open_as_file_sources(clip30: Path, tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for index in range(3):
        cv2.imwrite(str(folder / f"{index}.png"), picture(index))
    for spec in (str(clip30), str(folder)):
        source = open_source(spec, realtime=False)
        assert isinstance(source, FileSource) and source.read().index == 0
        source.close()


def test_device_specs_reach_the_device_source() -> None:
    source = open_source("device:3", capture_factory=factory_of(FakeCapture()))
    assert isinstance(source, DeviceSource) and source.device == 3


@pytest.mark.parametrize("spec", ["", "ftp://example.invalid/x", "device:", "missing.mp4"])
def test_unknown_specs_name_the_accepted_forms(spec: str) -> None:
    with pytest.raises(VideoError) as failure:
        open_source(spec)
    message = str(failure.value)
    assert "\n" not in message and "device:N" in message and "synthetic:WxH@FPS" in message
