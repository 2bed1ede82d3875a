"""Small clips for the tests: good ones of known content, and every kind of bad video."""

from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from polypview.video import ClipWriter

BLUE = (255, 0, 0)  # BGR
REPO = Path(__file__).resolve().parents[1]


def picture(index: int, width: int = 64, height: int = 48) -> np.ndarray:
    """A blue disc sliding to and fro over grey: no jump, so x264 adds no scene-cut keyframes."""
    travel = width - 16
    image = np.full((height, width, 3), 90, np.uint8)
    x = 8 + travel - abs(index % (2 * travel) - travel)
    cv2.circle(image, (x, height // 2), height // 4, BLUE, -1)
    return image


def write_clip(
    path: Path,
    frames: int = 50,
    *,
    size: tuple[int, int] = (64, 48),
    frame_rate: Fraction | float = 25,
    pts: list[float] | None = None,
    noisy: bool = False,
) -> Path:
    """A clip of ``picture`` frames, or of noise (which compresses badly: large files)."""
    width, height = size
    noise = np.random.default_rng(0)
    with ClipWriter(path, width=width, height=height, frame_rate=frame_rate) as writer:
        for index in range(frames):
            image = (
                noise.integers(0, 256, (height, width, 3), np.uint8)
                if noisy
                else picture(index, width, height)
            )
            writer.write(image, None if pts is None else pts[index])
        assert writer.frames_written == frames
    return path


def pyav_clip(path: Path, frames: int = 50, movflags: str | None = None) -> Path:
    """A clip muxed by FFmpeg alone, in the container its suffix names; an MP4 is not fragmented
    and has its index at the end unless ``movflags="faststart"``."""
    options = {"movflags": movflags} if movflags else {}
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream("libx264", rate=25, options={"tune": "zerolatency"})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.gop_size = 25
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(picture(index), format="bgr24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def cut_in_half(path: Path) -> Path:
    cut = path.with_name(f"cut_{path.name}")
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return cut


def sound_only(path: Path) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=8000)
        frame = av.AudioFrame(format="fltp", layout="mono", samples=1024)
        frame.sample_rate = 8000
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        container.mux([*stream.encode(frame), *stream.encode(None)])
    return path


def evc_stream(path: Path) -> Path:
    """MPEG-5 EVC in MP4: FFmpeg knows the codec, but PyAV's build has no decoder (libxevd)."""
    with av.open(str(path), "w") as container:
        stream = container.add_mux_stream("evc", rate=25, width=64, height=48)
        stream.time_base = Fraction(1, 25)
        for index in range(3):
            packet = av.Packet(bytes(64))
            packet.stream, packet.pts, packet.dts = stream, index, index
            packet.time_base, packet.is_keyframe = stream.time_base, index == 0
            container.mux(packet)
    return path


def unknown_fourcc(path: Path) -> Path:
    """An AVI whose video is tagged with a fourcc no codec claims."""
    with av.open(str(path), "w", format="avi") as container:
        stream = container.add_stream("mjpeg", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuvj420p"
        container.mux(stream.encode(av.VideoFrame.from_ndarray(picture(0), format="bgr24")))
        container.mux(stream.encode(None))
    path.write_bytes(path.read_bytes().replace(b"MJPG", b"XYZW"))
    return path


def bad_input(tmp_path: Path, case: str) -> Path:
    if case == "missing":
        return tmp_path / "nope.mp4"
    if case == "folder without images":
        (tmp_path / "folder").mkdir()
        (tmp_path / "folder" / "notes.txt").write_text("no pictures here")
        return tmp_path / "folder"
    if case == "zero bytes":
        (tmp_path / "empty.mp4").touch()
        return tmp_path / "empty.mp4"
    if case == "text renamed .mp4":
        (tmp_path / "notes.mp4").write_text("these are my notes, not a video\n" * 20)
        return tmp_path / "notes.mp4"
    if case == "cut mp4, index at end":
        return cut_in_half(pyav_clip(tmp_path / "plain.mp4"))
    if case == "cut mp4, index first":
        return cut_in_half(pyav_clip(tmp_path / "fast.mp4", movflags="faststart"))
    if case == "cut fragmented mp4":
        return cut_in_half(write_clip(tmp_path / "fragmented.mp4"))
    if case == "sound only":
        return sound_only(tmp_path / "sound.m4a")
    if case == "undecodable codec":
        return evc_stream(tmp_path / "evc.mp4")
    assert case == "unknown codec"
    return unknown_fourcc(tmp_path / "unknown.avi")


# Each bad video a user might open, and what the one-line error must say about it.
BAD_VIDEOS = [
    ("missing", "no such file"),
    ("folder without images", "is a folder with no images"),
    ("zero bytes", "is empty (0 bytes)"),
    ("text renamed .mp4", "is not a video FFmpeg can read"),
    ("cut mp4, index at end", "is a truncated MP4: its index (moov atom) is missing"),
    ("cut mp4, index first", "is truncated: the frames from t="),
    ("cut fragmented mp4", "is truncated: the frames from t="),
    ("sound only", "has no video stream"),
    ("undecodable codec", "uses codec 'evc' that this FFmpeg build cannot decode"),
    ("unknown codec", "uses a codec FFmpeg does not know"),
]


def run_child(code: str, *args: str, **options) -> subprocess.Popen[str]:
    """A child Python running ``code`` with the project and these helpers importable."""
    path = os.pathsep.join([str(REPO), str(REPO / "tests")])
    env = os.environ | {"PYTHONPATH": path, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True, env=env, **options
    )
