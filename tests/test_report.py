"""The procedure report: its figures from a segmented video and from a recording's log, the CLI's
file and JSON, bad input in one line, and the page as a browser draws it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from polypview.cli import main
from polypview.errors import PolypviewError
from polypview.modelfile import ModelCard
from polypview.procedure import Procedure, read_recording, segment_procedure, thumbnail, where
from polypview.recorder import detections_log_path
from polypview.report import clock, render_report, timeline, write_report
from polypview.segmentation import Segmentation
from polypview.video import VideoSource
from videos import write_clip

FPS = 25
JSON_KEYS = {"video", "duration_s", "frames", "model", "tracks", "alerts", "alerts_per_minute"}
TRACK_KEYS = {"id", "first_s", "last_s", "seconds", "max_area_fraction", "thumbnail"}


class DiscFinder:
    """A stand-in segmenter that sees the test clip's blue disc in chosen frames only."""

    card = SimpleNamespace(name="disc-finder", sha256="ab" * 32)
    backend = SimpleNamespace(name="test")

    def __init__(self, frames: set[int]) -> None:
        self.frames = frames
        self.calls = 0

    def __call__(self, image: np.ndarray) -> Segmentation:
        seen = self.calls in self.frames
        self.calls += 1
        disc = (image[:, :, 0] > 180) & (image[:, :, 2] < 100) & seen
        mask = disc.astype(np.uint8) * 255
        return Segmentation(disc.astype(np.float32) * 0.9, mask, 0.9 if seen else 0.0)


@pytest.fixture
def clip50(tmp_path: Path) -> Path:
    return write_clip(tmp_path / "clip.mp4", 50, size=(160, 120))


def segmented(clip: Path, frames: set[int]) -> Procedure:
    with VideoSource(clip) as source:
        return segment_procedure(source, DiscFinder(frames))  # type: ignore[arg-type]


def test_a_segmented_video_gives_tracks_alerts_and_suppressed_flashes(clip50: Path) -> None:
    # The disc is seen in frames 10-29 and flashes in 44-45. 3 of 6: raised on frame 12
    # (0.48 s); unseen from frame 30, held 0.5 s: shown until 29/25 + 0.5 = 1.66 s, i.e. up to
    # frame 41 (1.64 s). The two-frame flash never alerts: one suppressed activation.
    procedure = segmented(clip50, {*range(10, 30), 44, 45})
    assert procedure.frames == 50 and procedure.duration_s == pytest.approx(2.0)
    assert [t.id for t in procedure.tracks] == [1]
    track = procedure.tracks[0]
    assert track.first_s == pytest.approx(0.48) and track.last_s == pytest.approx(1.64)
    assert track.seconds == pytest.approx(1.2)
    # The disc's radius is 30 px: about pi * 30^2 = 2830 of 19200 pixels.
    assert track.max_area_fraction == pytest.approx(0.147, abs=0.01)
    assert track.thumbnail and track.raw_thumbnail  # JPEGs of the key frame
    assert cv2.imdecode(np.frombuffer(track.thumbnail, np.uint8), cv2.IMREAD_COLOR).shape[1] == 160
    assert procedure.alerts == 1 and procedure.alert_spans == [(0.48, 1.68)]
    assert procedure.alert_seconds == pytest.approx(1.2)
    assert procedure.alerts_per_minute == 30.0  # 1 alert in 2 s
    assert procedure.suppressed == 1
    assert procedure.model == "disc-finder" and procedure.kind == "segmented"


def test_nothing_seen_gives_an_empty_report(clip50: Path, tmp_path: Path) -> None:
    procedure = segmented(clip50, set())
    assert procedure.tracks == [] and procedure.alerts == 0 and procedure.suppressed == 0
    html = write_report(procedure, tmp_path / "empty.html").read_text()
    assert "No detection passed the persistence filter" in html


def log_line(time: float, alert: bool, polyp: bool, *tracks: tuple[int, float]) -> str:
    detections = [
        {"track": track, "box": [40, 30, 100, 90], "area": 2800, "score": score}
        for track, score in tracks
    ]
    entry = {"time": time, "frame": 0, "alert": alert, "polyp_score": 0.5, "polyp": polyp}
    return json.dumps(entry | {"detections": detections})


def recording(folder: Path, lines: list[str], frames: int = 20) -> Path:
    video = write_clip(folder / "polypview-20260101-120000.mp4", frames, size=(160, 120))
    detections_log_path(video).write_text("\n".join(lines) + "\n")
    return video


ABOUT = json.dumps(
    {"about": {"model": "lite-unet", "weights_sha256": "cd" * 32, "backend": "openvino"}}
)


def test_a_recording_is_read_from_its_log(tmp_path: Path) -> None:
    lines = [ABOUT]
    for index in range(20):
        t = index / FPS
        if 5 <= index < 12:  # track 3 shown on frames 5-11, most confident on frame 8
            lines.append(log_line(t, True, True, (3, 0.9 if index == 8 else 0.7)))
        else:
            lines.append(log_line(t, False, index in (15, 17)))  # two flashes kept quiet
    lines.append('{"time": 0.8, "frame": 20, "ale')  # cut short by a crash: left out
    video = recording(tmp_path, lines)
    procedure = read_recording(video)
    assert procedure.kind == "recording" and procedure.frames == 20
    assert procedure.model == "lite-unet" and procedure.backend == "openvino"
    [track] = procedure.tracks
    assert (track.id, track.first_s, track.last_s, track.key_s) == (3, 0.2, 0.44, 0.32)
    assert track.seconds == pytest.approx(0.28)  # 7 frames
    assert track.max_area_fraction == pytest.approx(2800 / 19200, abs=1e-4)
    assert track.thumbnail is not None and track.raw_thumbnail is None
    assert procedure.alerts == 1 and procedure.suppressed == 2


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([log_line(0, False, False), "not json", log_line(0.04, False, False)], "line 2 is not"),
        ([log_line(0, False, False), '{"time": 1}', log_line(0.04, False, False)], "line 2"),
        ([ABOUT], "records no frames"),
    ],
)
def test_a_damaged_log_is_one_line(tmp_path: Path, lines: list[str], message: str) -> None:
    video = recording(tmp_path, lines)
    with pytest.raises(PolypviewError, match=message):
        read_recording(video)


def test_a_log_longer_than_its_video_is_refused(tmp_path: Path) -> None:
    lines = [log_line(i / FPS, i == 9, i == 9, *([(1, 0.9)] if i == 9 else [])) for i in range(10)]
    video = recording(tmp_path, lines, frames=5)
    with pytest.raises(PolypviewError, match="fewer frames than its detection log"):
        read_recording(video)


def run_cli(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_report_command_writes_a_self_contained_page_and_its_json(
    capsys: pytest.CaptureFixture[str], clip: Path, stand_in_model: ModelCard, tmp_path: Path
) -> None:
    output = tmp_path / "r.html"
    model = stand_in_model.weights_path
    code, out, err = run_cli(capsys, "report", clip, "-o", output, "--model", model, "--json")
    assert code == 0, err
    record = json.loads(out.strip().splitlines()[-1])
    assert record.keys() >= JSON_KEYS and record["frames"] == 12
    assert all(track.keys() >= TRACK_KEYS for track in record["tracks"])
    html = output.read_text()
    assert "Decision support, not a diagnosis" in html and "<svg" in html
    # Self-contained: no script, stylesheet or image is fetched from anywhere.
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "<script" not in html and "<link" not in html
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []


def test_a_recording_given_to_the_command_is_not_segmented(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    lines = [ABOUT, *(log_line(i / FPS, False, False) for i in range(20))]
    video = recording(tmp_path, lines)
    code, out, err = run_cli(capsys, "report", video, "--json")
    assert code == 0, err
    assert json.loads(out.splitlines()[-1])["model"] == "lite-unet"
    assert video.with_name(f"{video.stem}.report.html").is_file()


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing video", "no such file"),
        ("damaged log", "is damaged: line 1"),
        ("not html", "report must be an .html file"),
        ("no folder", "report folder does not exist"),
    ],
)
def test_bad_input_is_one_line_and_no_report(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, clip: Path, case: str, message: str
) -> None:
    video, output = clip, tmp_path / "r.html"
    if case == "missing video":
        video = tmp_path / "gone.mp4"
    elif case == "damaged log":
        video = recording(tmp_path, ["garbage", log_line(0, False, False)])
    elif case == "not html":
        output = tmp_path / "r.pdf"
    else:
        output = tmp_path / "nowhere" / "r.html"
    code, _, err = run_cli(capsys, "report", video, "-o", output)
    assert code == 1
    assert err.count("\n") == 1 and message in err and "Traceback" not in err
    assert not any(p.suffix == ".html" for p in tmp_path.iterdir())


def test_timeline_and_helpers() -> None:
    assert clock(0) == "00:00" and clock(75.24, 1) == "01:15.2" and clock(3725) == "1:02:05"
    assert clock(5.96, 1) == "00:06.0" and clock(59.6) == "01:00"
    assert where((0, 0, 10, 10), 90, 90) == "upper left" and where((40, 40, 50, 50), 90, 90) == (
        "centre"
    )
    jpeg = thumbnail(np.zeros((480, 640, 3), np.uint8), (10, 10, 100, 100))
    assert jpeg[:2] == b"\xff\xd8"


def test_tracks_overlapping_in_time_get_lanes_of_their_own(clip50: Path) -> None:
    procedure = segmented(clip50, set(range(5, 45)))
    picture = timeline(procedure)
    assert picture.ticks[0].label == "00:00" and len(picture.bars) == len(procedure.tracks)
    assert all(
        picture.left <= bar.x <= bar.x + bar.width <= picture.right + 0.01 for bar in picture.bars
    )


@pytest.mark.slow  # a browser's start: seconds, and minutes on a starved CPU
@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_the_report_renders_in_a_headless_browser(clip50: Path, tmp_path: Path) -> None:
    page = write_report(segmented(clip50, set(range(5, 40))), tmp_path / "report.html")
    picture = tmp_path / "report.png"
    subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1100,1400",
            f"--screenshot={picture}",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    image = cv2.imread(str(picture))
    assert image is not None and image.shape[:2] == (1400, 1100)
    # Drawn, not blank: the timeline's blue track bar and the orange alert are on the page.
    blue = (image[:, :, 0] > 180) & (image[:, :, 1] > 100) & (image[:, :, 2] < 60)
    orange = (image[:, :, 2] > 190) & (image[:, :, 1] < 110) & (image[:, :, 0] < 40)
    assert blue.sum() > 200 and orange.sum() > 200


def test_the_report_links_the_video_relative_to_itself(clip50: Path, tmp_path: Path) -> None:
    procedure = segmented(clip50, set(range(5, 40)))
    (tmp_path / "reports").mkdir()
    html = render_report(procedure, tmp_path / "reports")
    assert 'href="../clip.mp4#t=' in html
