"""Recorder: real-time timestamps and a detection log, a submit that never waits, and a recording
that survives a full disk or a killed process."""

from __future__ import annotations

import dataclasses
import json
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from polypview.errors import OutputError
from polypview.frame import Frame
from polypview.pipeline import Result
from polypview.recorder import Recorder, check_free_space, detections_log_path
from polypview.tracking import Detection
from polypview.video import ClipWriter, VideoSource
from videos import picture, run_child

WIDTH, HEIGHT, FPS = 64, 48, 25
MARK = (0, 0, 255)  # BGR red: the annotated view has a red square that the raw video lacks


def result(index: int, capture_time: float, detections: tuple[Detection, ...] = ()) -> Result:
    image = picture(index)
    annotated = cv2.rectangle(image.copy(), (0, 0), (15, 15), MARK, -1)
    frame = Frame(index, index / FPS, image, capture_time)
    score = 0.9 if detections else 0.1
    return Result(
        frame, annotated, None, None, None, False, detections, bool(detections), 0.0, score
    )


def recorder(path: Path, **options) -> Recorder:
    return Recorder(path, width=WIDTH, height=HEIGHT, frame_rate=FPS, **options)


def read_all(path: Path) -> list[Frame]:
    with VideoSource(path) as source:
        return list(source)


def log_lines(video: Path) -> list[dict]:
    return [json.loads(line) for line in detections_log_path(video).read_text().splitlines()]


def wait_until(condition: Callable[[], bool]) -> None:
    """A deadlock guard, not a timing: conditions here come true within milliseconds."""
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_a_recording_keeps_every_frame_at_its_capture_time(tmp_path: Path) -> None:
    times = [100 + index / FPS for index in range(20)]
    times[7] = times[6]  # two frames captured at once: the second is shown 1 ms later
    polyp = Detection(3, (10, 12, 30, 34), 400, 0.876543, 100.0)
    with recorder(tmp_path / "rec.mp4") as rec:
        for index, capture_time in enumerate(times):
            assert rec.submit(result(index, capture_time, (polyp,) if index >= 5 else ()))
    summary = rec.stop()
    assert summary.frames_written == 20 and summary.dropped == 0 and summary.error is None
    assert summary.seconds == pytest.approx(0.8)
    expected = [index / FPS for index in range(20)]
    expected[7] = expected[6] + 0.001
    frames = read_all(tmp_path / "rec.mp4")
    assert [frame.pts for frame in frames] == pytest.approx(expected, abs=1e-4)
    assert frames[0].image[8, 8, 2] > 200  # the annotated view: the red square is there
    lines = log_lines(tmp_path / "rec.mp4")
    assert summary.detections_log == tmp_path / "rec.detections.jsonl"
    assert [line["time"] for line in lines] == pytest.approx(expected, abs=1e-6)
    assert [line["frame"] for line in lines] == list(range(20))
    assert [line["alert"] for line in lines] == [False] * 5 + [True] * 15
    assert [line["polyp_score"] for line in lines] == [0.1] * 5 + [0.9] * 15
    assert lines[0]["detections"] == []
    assert lines[5]["detections"] == [
        {"track": 3, "box": [10, 12, 30, 34], "area": 400, "score": 0.8765}
    ]


def test_the_log_says_what_saw_the_video_and_what_the_model_decided(tmp_path: Path) -> None:
    about = {"model": "lite-unet", "backend": "torch"}
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    with recorder(tmp_path / "rec.mp4", about=about) as rec:
        for index in range(4):
            mask[:] = 255 if index >= 2 else 0  # the model's frame-level decision: polyp
            rec.submit(dataclasses.replace(result(index, index / FPS), mask=mask.copy()))
    rec.stop()
    header, *lines = log_lines(tmp_path / "rec.mp4")
    assert header == {"about": about}
    assert [line["polyp"] for line in lines] == [False, False, True, True]


def test_raw_path_records_the_frames_without_the_overlay(tmp_path: Path) -> None:
    with recorder(tmp_path / "view.mp4", raw_path=tmp_path / "raw.mp4") as rec:
        for index in range(10):
            rec.submit(result(index, index / FPS))
    assert rec.stop().frames_written == 10
    view, raw = read_all(tmp_path / "view.mp4"), read_all(tmp_path / "raw.mp4")
    assert len(view) == len(raw) == 10
    assert [frame.pts for frame in raw] == pytest.approx([i / FPS for i in range(10)], abs=1e-4)
    assert view[0].image[8, 8, 2] > 200 and raw[0].image[8, 8, 2] < 120  # grey, not red


class GatedWriter:
    """A writer that holds its first frame until the test opens the gate: encoding fell behind."""

    def __init__(self, path: Path, **options: object) -> None:
        self.inside = threading.Event()
        self.gate = threading.Event()
        self.frames = 0

    def write(self, image: np.ndarray, pts: float | None = None) -> None:
        self.inside.set()
        assert self.gate.wait(10)
        self.frames += 1

    def close(self) -> None:
        pass


def test_a_slow_writer_makes_submit_drop_frames_not_wait(tmp_path: Path) -> None:
    writers: list[GatedWriter] = []

    def gated_writer(path: Path, **options: object) -> GatedWriter:
        writers.append(GatedWriter(path, **options))
        return writers[-1]

    rec = recorder(
        tmp_path / "slow.mp4", queue_seconds=0.2, writer_factory=gated_writer
    )  # 5 frames
    rec.submit(result(0, 0.0))
    assert writers[0].inside.wait(10)  # the thread is stuck writing frame 0; the queue is empty
    accepted: list[bool] = []
    done = threading.Event()

    def submit_twenty() -> None:
        accepted.extend(rec.submit(result(index, index / FPS)) for index in range(1, 21))
        done.set()

    threading.Thread(target=submit_twenty, daemon=True).start()
    assert done.wait(10), "submit blocked"
    assert accepted == [True] * 5 + [False] * 15
    assert rec.dropped == 15 and rec.behind
    assert rec.status == "recorder behind: 15 frames dropped"
    writers[0].gate.set()
    summary = rec.stop()
    assert (summary.frames_written, summary.dropped) == (6, 15)
    assert writers[0].frames == 6 and len(log_lines(tmp_path / "slow.mp4")) == 6


class DiskFullAtTen(ClipWriter):
    def write(self, image: np.ndarray, pts: float | None = None) -> None:
        if self.frames_written == 10:
            raise OutputError(f"cannot write {self.path}: No space left on device")
        super().write(image, pts)


def test_a_failed_write_ends_the_recording_cleanly(tmp_path: Path) -> None:
    rec = recorder(tmp_path / "full.mp4", writer_factory=DiskFullAtTen)
    for index in range(20):
        rec.submit(result(index, index / FPS))
    wait_until(lambda: rec.error is not None)
    assert rec.status == f"recording stopped: cannot write {rec.path}: No space left on device"
    assert not rec.submit(result(20, 20 / FPS))  # a no-op from now on, counted as dropped
    summary = rec.stop()
    assert summary.error == f"cannot write {rec.path}: No space left on device"
    assert (summary.frames_written, summary.dropped) == (10, 11)
    frames = read_all(tmp_path / "full.mp4")
    assert [frame.pts for frame in frames] == pytest.approx([i / FPS for i in range(10)], abs=1e-4)
    assert len(log_lines(tmp_path / "full.mp4")) == 10


def test_a_bug_in_writing_is_raised_by_stop(tmp_path: Path) -> None:
    rec = recorder(tmp_path / "bug.mp4")
    wrong_size = result(0, 0.0)
    rec.submit(dataclasses.replace(wrong_size, annotated=np.zeros((10, 10, 3), np.uint8)))
    with pytest.raises(ValueError, match="expected a 48x64x3 uint8 image"):
        rec.stop()


KILLED_RECORDER = """
import sys, time, types
from polypview.frame import Frame
from polypview.recorder import Recorder
from videos import picture
recorder = Recorder(sys.argv[1], width=64, height=48, frame_rate=25, queue_seconds=10)
for index in range(55):
    frame = Frame(index, index / 25, picture(index), 50.0 + index / 25)
    recorder.submit(types.SimpleNamespace(frame=frame, annotated=frame.image, detections=(),
                                          alert=False, score=None, mask=None))
while recorder.frames_written < 55:
    time.sleep(0.01)
print("recorded 2.2 s", flush=True)
time.sleep(60)
"""


def test_a_killed_recording_still_plays(tmp_path: Path) -> None:
    video = tmp_path / "killed.mp4"
    child = run_child(KILLED_RECORDER, str(video))
    try:
        assert child.stdout.readline().strip() == "recorded 2.2 s"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    frames = read_all(video)
    assert 50 <= len(frames) < 55  # two whole seconds; the open one died with the process
    assert [frame.pts for frame in frames] == pytest.approx([i / 25 for i in range(len(frames))])
    assert len(log_lines(video)) == 55  # every line reached the file


def test_too_little_disk_space_is_refused(tmp_path: Path) -> None:
    assert check_free_space(tmp_path, 0) > 0
    with pytest.raises(OutputError, match=r"not enough free disk space in .*: \d+ MB free, need"):
        check_free_space(tmp_path, 10**18)
    with pytest.raises(OutputError, match="cannot check free disk space"):
        check_free_space(tmp_path / "missing")


def test_a_missing_folder_is_refused_at_once(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="does not exist"):
        recorder(tmp_path / "missing" / "rec.mp4")
