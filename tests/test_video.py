"""VideoSource and ClipWriter: round trips, crash safety, seeking, image folders, and one clear
line for every bad input or output."""

from __future__ import annotations

import errno
import os
import resource
import signal
import stat
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from polypview.errors import OutputError, VideoError
from polypview.video import DECODE_AHEAD, ClipWriter, VideoSource
from videos import (
    BAD_VIDEOS,
    REPO,
    bad_input,
    cut_in_half,
    picture,
    pyav_clip,
    run_child,
    write_clip,
)


def read_all(path: Path, **options: float) -> list:
    with VideoSource(path, **options) as source:
        return list(source)


# --- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame_rate", "pts"),
    [
        (Fraction(25), None),
        (Fraction(30000, 1001), None),
        (Fraction(25), [0.0, 0.03, 0.1, 0.2, 0.21, 0.5, 1.0, 1.0333, 2.5, 2.54]),  # variable rate
    ],
    ids=["25fps", "ntsc", "variable"],
)
def test_round_trip_keeps_count_size_and_timestamps(
    tmp_path: Path, frame_rate: Fraction, pts: list[float] | None
) -> None:
    count = 10 if pts else 40
    clip = write_clip(tmp_path / "clip.mp4", count, size=(160, 120), frame_rate=frame_rate, pts=pts)
    expected = pts or [float(index / frame_rate) for index in range(count)]
    with VideoSource(clip) as source:
        assert (source.width, source.height) == (160, 120)
        assert source.frame_count == count
        if pts is None:
            assert source.frame_rate == frame_rate
        frames = list(source)
    assert [frame.index for frame in frames] == list(range(count))
    assert [frame.pts for frame in frames] == pytest.approx(expected, abs=1e-5)
    for frame in frames:
        assert frame.image.shape == (120, 160, 3) and frame.image.dtype == np.uint8
        assert frame.image.flags.c_contiguous
    disc = frames[0].image[60, 8]  # the centre of frame 0's disc: still blue, so BGR held
    assert disc[0] > 200 and disc[2] < 60, disc


def test_a_late_start_survives_export(tmp_path: Path) -> None:
    """Timestamps from the middle of a source keep their offset in the file (an edit list);
    VideoSource counts from the first frame and reports the offset as ``start_time``."""
    clip = write_clip(tmp_path / "clip.mp4", 10, pts=[30 + index / 25 for index in range(10)])
    with av.open(str(clip)) as container:
        assert next(container.decode(video=0)).time == pytest.approx(30.0)
    with VideoSource(clip) as source:
        assert source.start_time == pytest.approx(30.0)
        assert [frame.pts for frame in source] == pytest.approx([i / 25 for i in range(10)])


def test_odd_size_is_padded_by_one_pixel(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "odd.mp4", 5, size=(63, 47))
    frames = read_all(clip)
    assert len(frames) == 5 and frames[0].image.shape == (48, 64, 3)
    image = frames[0].image.astype(int)  # the added row and column repeat their neighbours
    assert (
        np.abs(image[-1] - image[-2]).mean() < 8 and np.abs(image[:, -1] - image[:, -2]).mean() < 8
    )


def test_writer_refuses_wrong_images_and_backward_timestamps(tmp_path: Path) -> None:
    with ClipWriter(tmp_path / "clip.mp4", width=64, height=48, frame_rate=25) as writer:
        with pytest.raises(ValueError, match="64x3 uint8"):
            writer.write(np.zeros((48, 64), np.uint8))
        writer.write(picture(0), pts=1.0)
        with pytest.raises(ValueError, match="increase"):
            writer.write(picture(1), pts=1.0)
    assert len(read_all(tmp_path / "clip.mp4")) == 1


def test_an_error_inside_with_still_finishes_the_file(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    with pytest.raises(RuntimeError), ClipWriter(clip, width=64, height=48, frame_rate=25) as w:
        for index in range(30):
            w.write(picture(index))
        raise RuntimeError("the segmenter failed")
    assert len(read_all(clip)) == 30


# --- crash safety ------------------------------------------------------------------------------

KILLED_WRITER = """
import sys, time
from polypview.video import ClipWriter
from test_video import picture
with ClipWriter(sys.argv[1], width=64, height=48, frame_rate=25) as writer:
    for index in range(75):
        writer.write(picture(index))
        if writer.frames_written == 62:
            print("wrote 2.5 s", flush=True)
            time.sleep(60)
"""


def test_a_killed_writer_leaves_its_completed_seconds(tmp_path: Path) -> None:
    clip = tmp_path / "killed.mp4"
    child = run_child(KILLED_WRITER, str(clip), cwd=REPO)
    try:
        assert child.stdout.readline().strip() == "wrote 2.5 s"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    frames = read_all(clip)
    assert 50 <= len(frames) < 62  # both whole seconds; the open one died with the process
    assert [frame.index for frame in frames] == list(range(len(frames)))
    assert [frame.pts for frame in frames] == pytest.approx([i / 25 for i in range(len(frames))])


# --- seeking and ranges ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["clip.mp4", "clip.mkv", "clip.ts"])
def test_start_end_and_seek_give_the_right_first_frame(tmp_path: Path, name: str) -> None:
    """MPEG-TS has no index: its seeks land after the keyframe asked for and must step back."""
    make = write_clip if name == "clip.mp4" else pyav_clip
    clip = make(tmp_path / name, 75)  # keyframes at 0, 1 and 2 s
    frames = read_all(clip, start=1.2, end=1.6)  # 1.2 s lies between keyframes
    assert [frame.index for frame in frames] == list(range(30, 40))
    assert frames[0].pts == pytest.approx(1.2)
    with VideoSource(clip, start=1.2) as source:
        assert next(source).index == 30
        source.seek(0.41)  # between frames: the next one, at 0.44 s
        first = next(source)
        assert (first.index, first.pts) == (11, pytest.approx(0.44))
        source.seek(2.96)
        assert [frame.index for frame in source] == [74]
        source.seek(0)
        assert next(source).index == 0
        source.seek(100)
        assert list(source) == []


def test_a_raw_stream_plays_from_its_start_but_cannot_seek(tmp_path: Path) -> None:
    raw = pyav_clip(tmp_path / "clip.h264", 50)  # bare H.264: no container, no timestamps
    frames = read_all(raw, start=1.2)
    assert [(frame.index, frame.pts) for frame in frames[:2]] == [(30, 1.2), (31, 1.24)]
    with (
        VideoSource(raw) as source,
        pytest.raises(VideoError, match=r"cannot seek in .* it has no timestamps"),
    ):
        source.seek(1.0)
        next(source)


def test_close_mid_file_stops_the_decode_thread_promptly(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "clip.mp4", 100, size=(160, 120))
    source = VideoSource(clip)
    next(source)
    time.sleep(0.2)  # let the thread fill its queue and block on it
    assert source._handover.qsize() <= DECODE_AHEAD
    started = time.perf_counter()
    source.close()
    assert time.perf_counter() - started < 0.5
    assert not any(thread.name == "decode" for thread in threading.enumerate())
    assert list(source) == []


# --- image folders -----------------------------------------------------------------------------


def test_image_folder_plays_in_name_order(tmp_path: Path) -> None:
    images = [picture(index * 7) for index in range(11)]
    for index, image in enumerate(images):  # frame2 must come before frame10
        cv2.imwrite(str(tmp_path / f"frame{index}.png"), image)
    (tmp_path / "notes.txt").write_text("not an image")
    with VideoSource(tmp_path, fps=10) as source:
        assert (source.width, source.height, source.frame_count, source.fps) == (64, 48, 11, 10)
        frames = list(source)
    assert [frame.index for frame in frames] == list(range(11))
    assert [frame.pts for frame in frames] == pytest.approx([i / 10 for i in range(11)])
    assert all(np.array_equal(f.image, image) for f, image in zip(frames, images, strict=True))
    middle = read_all(tmp_path, fps=10, start=0.25, end=0.6)
    assert [frame.index for frame in middle] == [3, 4, 5]


def test_image_folder_with_mixed_sizes_is_refused(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "a.png"), picture(0))
    cv2.imwrite(str(tmp_path / "b.png"), picture(1))
    cv2.imwrite(str(tmp_path / "c.png"), picture(2, 32, 24))
    with VideoSource(tmp_path) as source:
        assert next(source).index == 0
        with pytest.raises(VideoError, match=r"c\.png is 32x24 but a\.png is 64x48"):
            list(source)


# --- bad inputs --------------------------------------------------------------------------------


@pytest.mark.parametrize(("case", "expected"), BAD_VIDEOS, ids=[case for case, _ in BAD_VIDEOS])
def test_bad_inputs_fail_at_open_with_one_clear_line(
    tmp_path: Path, case: str, expected: str
) -> None:
    video = bad_input(tmp_path, case)
    with pytest.raises(VideoError) as failure:
        VideoSource(video)
    message = str(failure.value)
    assert message.startswith(f"cannot open video: {video}: ") and expected in message, message
    assert "\n" not in message


def test_the_intact_part_of_a_cut_file_can_still_be_read(tmp_path: Path) -> None:
    cut = cut_in_half(write_clip(tmp_path / "fragmented.mp4"))
    assert len(read_all(cut, end=0.8)) == 20


def test_a_file_damaged_midway_fails_there(tmp_path: Path) -> None:
    clip = pyav_clip(tmp_path / "plain.mp4", 75)
    data = bytearray(clip.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 1000] = bytes(1000)
    clip.write_bytes(data)
    frames = []
    with pytest.raises(VideoError, match=r"video ends early or is damaged at frame \d+ \(t="):
        frames.extend(VideoSource(clip))
    assert 0 < len(frames) < 75


def test_a_cut_matroska_file_reports_its_early_end(tmp_path: Path) -> None:
    """Matroska indexes no frames, so a cut shows only when the frames stop short of the end."""
    clip = pyav_clip(tmp_path / "clip.mkv", 75)
    frames = []
    with pytest.raises(VideoError, match=r"damaged at frame \d+ .*it lasts 3\.00s"):
        frames.extend(VideoSource(cut_in_half(clip)))
    assert 0 < len(frames) < 60


# --- bad outputs -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("missing/out.mp4", "folder {tmp}/missing does not exist (No such file or directory)"),
        ("afile/out.mp4", "{tmp}/afile is not a folder (Not a directory)"),
        ("adir", "it is a folder (Is a directory)"),
    ],
)
def test_unwritable_locations_are_refused(tmp_path: Path, output: str, expected: str) -> None:
    (tmp_path / "afile").write_text("a file, not a folder")
    (tmp_path / "adir").mkdir()
    with pytest.raises(OutputError) as failure:
        ClipWriter(tmp_path / output, width=64, height=48, frame_rate=25)
    reason = expected.format(tmp=tmp_path)
    assert str(failure.value) == f"cannot write {tmp_path / output}: {reason}"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_read_only_folder_is_refused(tmp_path: Path) -> None:
    tmp_path.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        with pytest.raises(OutputError, match="Permission denied"):
            ClipWriter(tmp_path / "out.mp4", width=64, height=48, frame_rate=25)
    finally:
        tmp_path.chmod(stat.S_IRWXU)


FILLING_WRITER = """
import sys
import numpy as np
from polypview.errors import OutputError
from polypview.video import ClipWriter
noise = np.random.default_rng(0)
try:
    with ClipWriter(sys.argv[1], width=64, height=48, frame_rate=25) as writer:
        for _ in range(10_000):
            writer.write(noise.integers(0, 256, (48, 64, 3), np.uint8))
except OutputError as error:
    print(f"{error} | {type(error.__cause__).__name__} {error.__cause__.errno}")
    sys.exit(3)
"""


def test_a_file_size_limit_is_reported_as_output_error(tmp_path: Path) -> None:
    """RLIMIT_FSIZE makes write() fail with EFBIG, as a full disk fails with ENOSPC."""

    def limit_file_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, 50_000))

    output = tmp_path / "big.mp4"
    child = run_child(FILLING_WRITER, str(output), cwd=REPO, preexec_fn=limit_file_size)
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 3, out
    assert out.strip() == f"cannot write {output}: File too large | OSError {errno.EFBIG}"


FINISHING_WRITER = """
import os, resource, signal, sys
from polypview.errors import OutputError
from polypview.video import ClipWriter
from test_video import picture
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
writer = ClipWriter(sys.argv[1], width=64, height=48, frame_rate=25)
for index in range(40):
    writer.write(picture(index))
room = os.path.getsize(sys.argv[1]) + 10  # the last fragment, written by close(), will not fit
resource.setrlimit(resource.RLIMIT_FSIZE, (room, room))
try:
    writer.close()
except OutputError as error:
    print(error)
"""


def test_a_failed_write_while_finishing_is_reported(tmp_path: Path) -> None:
    """FFmpeg drops this error (its trailer ignores it for fragmented MP4); ClipWriter must not."""
    output = tmp_path / "clip.mp4"
    child = run_child(FINISHING_WRITER, str(output), cwd=REPO)
    out, _ = child.communicate(timeout=60)
    assert out.strip() == f"cannot write {output}: File too large"


@pytest.mark.skipif(not Path("/dev/full").is_char_device(), reason="needs /dev/full")
def test_a_full_disk_is_reported_as_output_error() -> None:
    full = "^cannot write /dev/full: No space left on device$"
    with (
        pytest.raises(OutputError, match=full),
        ClipWriter("/dev/full", width=64, height=48, frame_rate=25) as writer,
    ):
        for index in range(100):
            writer.write(picture(index))
    assert Path("/dev/full").is_char_device()
