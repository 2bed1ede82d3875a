"""``polypview batch`` in this process (the embedded engine): outputs, summary, resume, safety.

The Ray engine's tests, against a real local cluster, are in test_batch_ray.py.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from polypview.batch.job import PARTIAL_DIR, JobSettings, partial_folder, run_job
from polypview.batch.plan import find_videos, plan_jobs
from polypview.cli import main
from polypview.modelfile import ModelCard
from polypview.segmenter import Segmenter
from videos import write_clip


def run_cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def decoded(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="bgr24") for frame in container.decode(video=0)]


def assert_finished(folder: Path, frames: int, report: bool = False) -> None:
    name = folder.name
    assert sorted(path.name for path in folder.iterdir()) == sorted(
        [f"{name}.detections.jsonl", f"{name}.mp4", "done.json"]
        + ([f"{name}.report.html"] if report else [])
    )
    assert len(decoded(folder / f"{name}.mp4")) == frames
    about, *lines = (folder / f"{name}.detections.jsonl").read_text().splitlines()
    assert json.loads(about)["about"]["model"]  # what saw the video, as recordings say
    assert [json.loads(line)["frame"] for line in lines] == list(range(frames))
    assert json.loads((folder / "done.json").read_text())["frames"] == frames


@pytest.fixture
def videos(tmp_path: Path) -> Path:
    """Two short clips and a file that is not a video."""
    folder = tmp_path / "videos"
    folder.mkdir()
    write_clip(folder / "first.mp4", 10, size=(96, 64))
    write_clip(folder / "second.mp4", 6, size=(96, 64))
    (folder / "notes.mp4").write_text("these are my notes, not a video\n" * 20)
    return folder


def test_batch_annotates_each_video_and_reports_a_broken_one_in_the_summary(
    capsys: pytest.CaptureFixture[str], videos: Path, stand_in_model: ModelCard, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    model = stand_in_model.card_path, "--backend", "torch"
    code, stdout, err = run_cli(capsys, "batch", videos, "--out", out, "--model", *model, "--json")
    assert code == 1  # one video failed; the others finished
    assert_finished(out / "first", 10)
    assert_finished(out / "second", 6)
    assert not (out / "notes").exists() and not (out / PARTIAL_DIR).exists()
    summary = json.loads(stdout.splitlines()[-1])
    assert summary == json.loads((out / "summary.json").read_text())
    by_name = {video["name"]: video for video in summary["videos"]}
    assert [by_name[name]["status"] for name in ("first", "notes", "second")] == [
        "done",
        "failed",
        "done",
    ]
    assert "is not a video FFmpeg can read" in by_name["notes"]["reason"]
    assert by_name["first"]["frames"] == 10 and by_name["first"]["seconds"] == pytest.approx(0.4)
    assert summary["totals"] | {"worker_seconds": 0} == summary["totals"] | {
        "videos": 3,
        "done": 2,
        "failed": 1,
        "frames": 16,
        "worker_seconds": 0,
    }
    with (out / "summary.csv").open() as rows:
        table = list(csv.DictReader(rows))
    assert [(row["name"], row["status"], row["frames"]) for row in table] == [
        ("first", "done", "10"),
        ("notes", "failed", "0"),
        ("second", "done", "6"),
    ]
    assert "failed  notes: " in err and "Traceback" not in err


def test_report_writes_each_videos_procedure_report_from_its_log(
    capsys: pytest.CaptureFixture[str], videos: Path, stand_in_model: ModelCard, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    model = stand_in_model.card_path, "--backend", "torch"
    code, _, _ = run_cli(capsys, "batch", videos / "second.mp4", "--out", out, "--model", *model,
                         "--report")  # fmt: skip
    assert code == 0
    assert_finished(out / "second", 6, report=True)
    page = (out / "second" / "second.report.html").read_text()
    assert stand_in_model.name in page and "decision support, not a diagnosis" in page.lower()


def test_a_rerun_skips_finished_videos_and_retries_the_failed(
    capsys: pytest.CaptureFixture[str], videos: Path, stand_in_model: ModelCard, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    model = stand_in_model.card_path, "--backend", "torch"
    run_cli(capsys, "batch", videos, "--out", out, "--model", *model)
    finished = (out / "first" / "first.mp4").stat().st_mtime_ns
    write_clip(videos / "notes.mp4", 4, size=(96, 64))  # the broken video, replaced
    code, stdout, err = run_cli(capsys, "batch", videos, "--out", out, "--model", *model, "--json")
    assert code == 0
    videos_run = json.loads(stdout.splitlines()[-1])["videos"]
    statuses = {video["name"]: video["status"] for video in videos_run}
    assert statuses == {"first": "skipped", "notes": "done", "second": "skipped"}
    assert (out / "first" / "first.mp4").stat().st_mtime_ns == finished
    assert_finished(out / "notes", 4)
    assert "skipped first: done before" in err


def test_an_interrupted_video_leaves_nothing_under_its_final_name(
    stand_in_model: ModelCard, tmp_path: Path
) -> None:
    write_clip(tmp_path / "clip.mp4", 10, size=(96, 64))
    [job] = plan_jobs([tmp_path / "clip.mp4"], tmp_path / "out")
    segmenter = Segmenter.open(str(stand_in_model.card_path), "torch")
    seen: list[bool] = []

    def interrupted_at_frame_5(image: np.ndarray):  # the user's Ctrl-C, mid-video
        seen.append(partial_folder(job).is_dir())
        if len(seen) == 5:
            raise KeyboardInterrupt
        return segmenter(image)

    with pytest.raises(KeyboardInterrupt):
        run_job(job, interrupted_at_frame_5, JobSettings(str(stand_in_model.card_path)))
    assert all(seen) and len(seen) == 5
    assert not job.folder.exists() and not partial_folder(job).exists()


def test_inputs_are_files_folders_and_lists_and_names_stay_unique(tmp_path: Path) -> None:
    (tmp_path / "day1").mkdir()
    (tmp_path / "day2" / "room").mkdir(parents=True)
    for path in ("day1/scope.mp4", "day2/room/scope.MOV", "day2/other.mkv", "day2/notes.txt"):
        (tmp_path / path).touch()
    listing = tmp_path / "day2" / "list.txt"
    listing.write_text("# the afternoon list\n\nother.mkv\n../day1/scope.mp4\nmissing.mp4\n")
    out = tmp_path / "day2" / "out"  # inside an input folder: its outputs are never inputs
    out.mkdir()
    (out / "old.mp4").touch()
    videos = find_videos([tmp_path / "day1", listing, tmp_path / "day2"], out)
    assert [video.relative_to(tmp_path).as_posix() for video in videos] == [
        "day1/scope.mp4",
        "day2/other.mkv",
        "day2/missing.mp4",  # kept: it fails in the summary, as any broken video
        "day2/room/scope.MOV",
    ]
    names = [job.name for job in plan_jobs(videos, out)]
    assert names[1:3] == ["other", "missing"]
    assert names[0].startswith("scope-") and names[3].startswith("scope-")
    assert names[0] != names[3] and names == [job.name for job in plan_jobs(videos, out)]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--ray"], "--ray needs Ray, an optional extra: pip install 'polypview[cluster]'"),
        (["--model", "nonexistent"], "unknown model 'nonexistent'"),
    ],
)
def test_what_cannot_run_is_said_in_one_line_before_any_work(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    videos: Path,
    stand_in_model: ModelCard,
    tmp_path: Path,
    argv: list[str],
    expected: str,
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # this environment without the cluster extra
    model = ["--model", stand_in_model.card_path] if "--model" not in argv else []
    model += ["--backend", "torch"]
    code, _, err = run_cli(capsys, "batch", videos, "--out", tmp_path / "out", *model, *argv)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1, err
    assert lines[0].startswith("polypview: error: ") and expected in lines[0]
    assert not list((tmp_path / "out").glob("*/*.mp4"))


def test_no_videos_is_said_plainly(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(capsys, "batch", tmp_path / "empty", "--out", tmp_path / "out")
    assert code == 1 and err.strip() == f"polypview: error: no videos found in {tmp_path / 'empty'}"
