"""Sources: pacing and controls under a fake clock, device setup through a fake capture, a stream
from a server on 127.0.0.1, and the specs that name them."""

from __future__ import annotations

import functools
import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from polypview.errors import VideoError
from polypview.frame import Frame
from polypview.sources import (
    DeviceSource,
    FileSource,
    StreamSource,
    SyntheticSource,
    describe_devices,
    list_devices,
    open_source,
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
