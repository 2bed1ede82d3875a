"""Sources: pacing and controls under a fake clock, device setup through a fake capture, a stream
from a server on 127.0.0.1, and the specs that name them."""

from __future__ import annotations

import errno
import functools
import http.server
import socket
import struct
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from polypview.errors import VideoError
from polypview.frame import Frame
from polypview.sources import (
    CaptureMode,
    DeviceSource,
    FileSource,
    StreamSource,
    SyntheticSource,
    describe_devices,
    list_devices,
    list_modes,
    open_source,
    probe_modes,
)
from videos import picture, write_clip

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


def factory_of(*captures: FakeCapture):
    remaining = iter(captures)
    return lambda device, backend: next(remaining)


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
    assert source.name == "USB capture 0 (1280x720 YUYV @ 30)"
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


@pytest.mark.parametrize("spec", ["device:99", "/dev/video99", "99"])
def test_a_missing_device_is_one_line(spec: str) -> None:
    if Path("/dev/video99").exists():
        pytest.skip("this machine has a /dev/video99")
    with pytest.raises(VideoError) as failure:
        open_source(spec)
    device = spec.removeprefix("device:")
    assert str(failure.value) == f"cannot open capture device {device}: no such device"


def test_no_devices_listed_here() -> None:
    if list_devices():
        pytest.skip("this machine has capture devices")
    assert describe_devices() == "no capture devices found"


def test_linux_devices_come_from_sysfs(tmp_path: Path) -> None:
    for node, name in [("video990", "Grabber"), ("video97", "HD USB Camera")]:
        (tmp_path / node).mkdir()
        (tmp_path / node / "name").write_text(f"{name}\n")
    listed = list_devices(sysfs=tmp_path)
    assert [(d.index, d.path, d.name) for d in listed] == [
        (97, "/dev/video97", "HD USB Camera"),
        (990, "/dev/video990", "Grabber"),
    ]


# --- the modes a device offers ---------------------------------------------------------------


def iowr(number: int, size: int) -> int:
    """_IOWR('V', number, a struct of ``size`` bytes), as linux/ioctl.h builds it."""
    return 3 << 30 | size << 16 | ord("V") << 8 | number


QUERYCAP, ENUM_FMT = 0x80685600, iowr(2, 64)  # v4l2_capability: 104 bytes; v4l2_fmtdesc: 64
ENUM_FRAMESIZES, ENUM_FRAMEINTERVALS = iowr(74, 44), iowr(75, 52)  # frmsizeenum, frmivalenum
CAPTURE, MPLANE = 0x1, 0x1000
DISCRETE, CONTINUOUS, STEPWISE = 1, 2, 3


def code(fourcc: str) -> int:
    return int.from_bytes(fourcc.ljust(4).encode(), "little")


class FakeDriver:
    """A V4L2 driver answering through ``ioctl`` from tables, filling each struct at the byte
    offsets of linux/videodev2.h: a request of the wrong size or code fails the test.

    ``sizes`` maps a fourcc to its VIDIOC_ENUM_FRAMESIZES answers, ``rates`` a (fourcc, width,
    height) or a fourcc to its VIDIOC_ENUM_FRAMEINTERVALS answers, each ``(type, *values)``; an
    answer left out is EINVAL, as a driver ends a list. ``fail`` maps a request to an errno.
    """

    def __init__(
        self,
        sizes: dict[str, list[tuple[int, ...]]],
        rates: dict[tuple[str, int, int] | str, list[tuple[int, ...]]],
        *,
        node_caps: int = CAPTURE,
        fail: dict[int, int] | None = None,
    ) -> None:
        self.sizes, self.rates, self.node_caps, self.fail = sizes, rates, node_caps, fail or {}
        self.buffer_types: set[int] = set()

    def __call__(self, handle: int, request: int, asked: bytes) -> bytes:
        if request in self.fail:
            raise OSError(self.fail[request], "driver failure")
        expected = {QUERYCAP: 104, ENUM_FMT: 64, ENUM_FRAMESIZES: 44, ENUM_FRAMEINTERVALS: 52}
        assert len(asked) == expected[request]
        answer = bytearray(asked)
        if request == QUERYCAP:
            struct.pack_into("<2I", answer, 84, 0x80000000 | CAPTURE | MPLANE, self.node_caps)
            return bytes(answer)
        index, fourcc_code = struct.unpack_from("<2I", asked)
        if request == ENUM_FMT:  # index, type, flags, description[32], pixelformat at 44
            self.buffer_types.add(fourcc_code)
            formats = list(self.sizes)
            self._end_unless(index < len(formats))
            struct.pack_into("<32sI", answer, 12, formats[index].encode(), code(formats[index]))
            return bytes(answer)
        fourcc = fourcc_code.to_bytes(4, "little").decode().strip()
        if request == ENUM_FRAMESIZES:  # index, pixel_format, type at 8, union at 12
            entries = self.sizes[fourcc]
            self._end_unless(index < len(entries))
            kind, *values = entries[index]
            struct.pack_into(f"<{1 + len(values)}I", answer, 8, kind, *values)
            return bytes(answer)
        width, height = struct.unpack_from("<2I", asked, 8)  # then type at 16, union at 20
        entries = self.rates.get((fourcc, width, height), self.rates.get(fourcc, []))
        self._end_unless(index < len(entries))
        kind, *values = entries[index]
        struct.pack_into(f"<{1 + len(values)}I", answer, 16, kind, *values)
        return bytes(answer)

    @staticmethod
    def _end_unless(present: bool) -> None:
        if not present:
            raise OSError(errno.EINVAL, "Invalid argument")


@pytest.fixture
def node(tmp_path: Path) -> Path:
    """A file standing in for a device node: it opens, and the fake driver answers for it."""
    path = tmp_path / "video7"
    path.write_bytes(b"")
    return path


def test_discrete_modes_largest_and_fastest_first(node: Path) -> None:
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
            ("YUYV", 640, 480): [(DISCRETE, 1001, 30000), (DISCRETE, 0, 0)],  # 0/0: skipped
            "H264": [(DISCRETE, 1, 30)],
        },
    )
    modes = list_modes(str(node), ioctl=driver)
    assert modes == [
        CaptureMode("MJPG", 1920, 1080, 60.0),
        CaptureMode("MJPG", 1920, 1080, 30.0),
        CaptureMode("YUYV", 1920, 1080, 5.0),
        CaptureMode("MJPG", 1280, 720, 60.0),
        CaptureMode("YUYV", 640, 480, 30000 / 1001),
    ]
    assert driver.buffer_types == {1}  # V4L2_BUF_TYPE_VIDEO_CAPTURE
    assert modes[0].label == "1920 x 1080 at 60 frames/s, MJPG (compressed)"
    assert modes[-1].label == "640 x 480 at 29.97 frames/s, YUYV (uncompressed)"


def test_stepwise_sizes_and_rates_offer_the_standard_ones_on_their_steps(node: Path) -> None:
    driver = FakeDriver(
        # widths 160-1920 in steps of 32 (720 is off them), heights 120-1080 in steps of 8
        {"YUYV": [(STEPWISE, 160, 1920, 32, 120, 1080, 8)]},
        # 1/60 s to 1/20 s per frame
        {"YUYV": [(STEPWISE, 1, 60, 1, 20, 1, 1000)]},
    )
    modes = list_modes(str(node), ioctl=driver)
    sizes = list(dict.fromkeys((mode.width, mode.height) for mode in modes))
    assert sizes == [(1920, 1080), (1280, 1024), (1280, 720), (1024, 768), (800, 600), (640, 480)]
    assert [mode.fps for mode in modes if mode.width == 1920] == [60.0, 50.0, 30.0, 25.0, 24.0]


def test_continuous_sizes_and_mplane_nodes_and_sizes_without_rates(node: Path) -> None:
    driver = FakeDriver(
        {"NV12": [(CONTINUOUS, 640, 1280, 1, 480, 720, 1)]},
        {("NV12", 1280, 720): [(CONTINUOUS, 1, 50, 1, 25, 1, 1)]},  # other sizes: no rates listed
        node_caps=MPLANE,
    )
    modes = list_modes(str(node), ioctl=driver)
    assert driver.buffer_types == {9}  # V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE
    assert modes == [
        CaptureMode("NV12", 1280, 720, 50.0),
        CaptureMode("NV12", 1280, 720, 30.0),
        CaptureMode("NV12", 1280, 720, 25.0),
        CaptureMode("NV12", 800, 600, None),
        CaptureMode("NV12", 720, 576, None),
        CaptureMode("NV12", 720, 480, None),
        CaptureMode("NV12", 640, 480, None),
    ]
    assert modes[-1].label == "640 x 480 at the device's rate, NV12 (uncompressed)"


@pytest.mark.parametrize(
    ("node_caps", "fail", "reason"),
    [
        (CAPTURE, {QUERYCAP: errno.ENOTTY}, "not a V4L2 device"),
        (0x800000, {}, "it does not capture video (a metadata or output node)"),
        (CAPTURE, {ENUM_FRAMESIZES: errno.ENODEV}, "driver failure"),  # unplugged meanwhile
    ],
)
def test_a_driver_that_cannot_list_modes_says_why(
    node: Path, node_caps: int, fail: dict[int, int], reason: str
) -> None:
    driver = FakeDriver({"MJPG": [(DISCRETE, 640, 480)]}, {}, node_caps=node_caps, fail=fail)
    with pytest.raises(VideoError) as failure:
        list_modes(str(node), ioctl=driver)
    assert str(failure.value) == f"cannot list the modes of {node}: {reason}"


def test_a_file_is_not_a_v4l2_node(node: Path) -> None:
    with pytest.raises(VideoError) as failure:
        list_modes(str(node))  # the real fcntl.ioctl: a regular file answers ENOTTY
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


@pytest.mark.parametrize("spec", ["", "ftp://example.invalid/x", "device:abc", "missing.mp4"])
def test_unknown_specs_name_the_accepted_forms(spec: str) -> None:
    with pytest.raises(VideoError) as failure:
        open_source(spec)
    message = str(failure.value)
    assert "\n" not in message and "device:N" in message and "synthetic:WxH@FPS" in message
