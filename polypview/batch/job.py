"""One video of a batch, start to finish: the function both engines run, testable without Ray.

Everything is written into ``DIR/.partial/<name>/`` and that folder is renamed to ``DIR/<name>/``
only when complete, with ``done.json`` (the video's record) inside: a folder under its final name
is always finished, and ``done.json`` marks it so. An attempt first clears what an earlier one
left in its partial folder (a killed worker, Ray's retry), and removes its partial folder when it
fails or is interrupted.

The video is annotated by ``export_annotated`` with the app's tracker, as ``polypview export``
does; beside the annotated ``<name>.mp4`` the detection log ``<name>.detections.jsonl`` has the
recorder's format (``polypview.recorder.detection_entry``), timed in video seconds.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from polypview import __version__
from polypview.batch.plan import VideoJob
from polypview.batch.summary import VideoRecord
from polypview.errors import OutputError, PolypviewError
from polypview.export import export_annotated
from polypview.overlay import OverlayOptions
from polypview.pipeline import Result, Segment
from polypview.recorder import detection_entry, detections_log_path, open_detections_log
from polypview.tracking import Tracker
from polypview.video import VideoSource

PARTIAL_DIR = ".partial"
DONE_MARKER = "done.json"
SECONDS_PER_MINUTE = 60


@dataclass(frozen=True, slots=True)
class JobSettings:
    """How every video of a batch is processed: the same for each, on every worker."""

    model: str | None  # a model name or path (None: the default); the driver resolves it to the
    # card's absolute path, so every worker loads the very file it checked
    backend: str = "auto"
    overlay: OverlayOptions = field(default_factory=OverlayOptions)
    report: bool = False


def partial_folder(job: VideoJob) -> Path:
    return job.out_dir / PARTIAL_DIR / job.name


def finished_record(job: VideoJob) -> VideoRecord | None:
    """The record in ``DIR/<name>/done.json`` when an earlier run finished this video."""
    marker = job.folder / DONE_MARKER
    try:
        return VideoRecord.from_json(json.loads(marker.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):  # absent, or not a marker we wrote: not done
        return None


def run_job(
    job: VideoJob,
    segmenter: Segment,
    settings: JobSettings,
    on_frame: Callable[[int], None] | None = None,
) -> VideoRecord:
    """Annotate ``job``'s video into ``DIR/<name>/``; any failure of this video becomes a failed
    record with its one-line reason (the batch goes on). Ctrl-C removes the partial folder and
    propagates."""
    staging = partial_folder(job)
    started = time.perf_counter()
    try:
        if (done := finished_record(job)) is not None:
            return done  # a retry whose lost attempt had finished: renamed, then lost
        if job.folder.exists():
            raise OutputError(f"{job.folder} exists but is not a finished output; move it away")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        clip = staging / f"{job.name}.mp4"
        record = _annotate(job, segmenter, settings, clip, on_frame)
        if settings.report:  # into ``staging`` too, so it is final with the rest
            write_report(clip)
        _write_marker(staging / DONE_MARKER, record)
        os.replace(staging, job.folder)
        return record
    except Exception as error:
        shutil.rmtree(staging, ignore_errors=True)
        seconds = round(time.perf_counter() - started, 3)
        return VideoRecord(
            job.name,
            str(job.video),
            "failed",
            processing_seconds=seconds,
            reason=_one_line(error),
            host=platform.node(),
        )
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def write_report(clip: Path) -> None:
    """The video's procedure report beside its clip, read from the clip and its detection log
    (a batch output is a recording: nothing is segmented again)."""
    from polypview.procedure import read_recording
    from polypview.report import default_report_path
    from polypview.report import write_report as write_html

    write_html(read_recording(clip), default_report_path(clip))


def about_run(job: VideoJob, segmenter: Segment, tracker: Tracker) -> dict[str, Any]:
    """The detection log's first line, as the window's recordings have: what saw the video."""
    card = getattr(segmenter, "card", None)
    backend = getattr(segmenter, "backend", None)
    return {
        "polypview": __version__,
        "source": str(job.video),
        "model": card.name if card else None,
        "weights_sha256": (card.sha256 or None) if card else None,
        "backend": backend.name if backend else None,
        "filter": asdict(tracker.settings),
    }


class _Tally:
    """The detection log's lines and the record's figures, from each result in clip order."""

    def __init__(self, log: IO[str]) -> None:
        self.log = log
        self.tracks: set[int] = set()
        self.alerts = 0
        self.last_time = 0.0
        self._alert = False

    def __call__(self, result: Result, time_s: float) -> None:
        self.log.write(json.dumps(detection_entry(result, time_s)) + "\n")
        self.tracks.update(detection.track_id for detection in result.detections)
        self.alerts += result.alert and not self._alert
        self._alert = result.alert
        self.last_time = time_s


def _annotate(
    job: VideoJob,
    segmenter: Segment,
    settings: JobSettings,
    clip: Path,
    on_frame: Callable[[int], None] | None,
) -> VideoRecord:
    with VideoSource(job.video) as source, open_detections_log(detections_log_path(clip)) as log:
        tracker = Tracker()
        log.write(json.dumps({"about": about_run(job, segmenter, tracker)}) + "\n")
        tally = _Tally(log)
        summary = export_annotated(
            source,
            segmenter,
            clip,
            settings.overlay,
            on_frame=on_frame,
            tracker=tracker,
            on_result=tally,
        )
        seconds = tally.last_time + 1 / source.fps
    return VideoRecord(
        job.name,
        str(job.video),
        "done",
        frames=summary.frames,
        seconds=round(seconds, 3),
        processing_seconds=summary.seconds,
        processing_fps=summary.fps,
        frames_with_polyp=summary.frames_with_polyp,
        tracks=len(tally.tracks),
        alerts=tally.alerts,
        alerts_per_minute=round(tally.alerts * SECONDS_PER_MINUTE / seconds, 2),
        host=platform.node(),
    )


def _write_marker(path: Path, record: VideoRecord) -> None:
    try:
        path.write_text(json.dumps(record.to_json(), indent=1), encoding="utf-8")
    except OSError as error:
        raise OutputError(f"cannot write {path}: {error.strerror}") from None


def _one_line(error: Exception) -> str:
    """Our own errors read as sentences; others need their type. Never more than one line."""
    text = str(error) if isinstance(error, PolypviewError) else f"{type(error).__name__}: {error}"
    return text.splitlines()[0] if text else type(error).__name__
