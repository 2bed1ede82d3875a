"""What a procedure left behind, as plain data: its detection tracks, alerts and key frames.

A procedure is either any video, segmented here in lockstep with the tracker on (as ``export``
segments), or a polypview recording, whose ``.detections.jsonl`` log is read and not segmented
again (its video only gives the key frames). Both end as one ``Procedure``: what ``polypview
report --json`` prints and what the HTML report shows. Computing it knows nothing of HTML.

Figures, per the recorder's log and the tracker:

- a track is a tracker id that was shown (passed the persistence filter) at least once; its first
  and last seen are the first and last frames it was shown, its key frame the one where its
  region was most confident (highest mean probability);
- an alert is raised each time the alert goes from off to on;
- time with a polyp on screen is the time the alert was on;
- a suppressed activation is a run of frames that the model's frame-level decision called polyp
  during which no alert was raised: a flash the persistence filter kept quiet.
"""

from __future__ import annotations

import base64
import itertools
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import av
import cv2
import numpy as np

from polypview import __version__
from polypview.errors import PolypviewError
from polypview.frame import Frame
from polypview.overlay import OverlayOptions
from polypview.pipeline import lockstep_results
from polypview.recorder import detections_log_path
from polypview.segmenter import Segmenter
from polypview.tracking import FilterSettings, Tracker
from polypview.video import VideoSource
from polypview.video_metrics import runs

Box = tuple[int, int, int, int]

THUMBNAIL_WIDTH = 320  # px: an hour's report with a hundred tracks stays a few MB
JPEG_QUALITY = 75
KEY_BOX_COLOUR = (0, 215, 255)  # BGR amber: the track's own box on its annotated key frame
ROWS, COLUMNS = ("upper", "middle", "lower"), ("left", "centre", "right")


class ProcedureCancelled(PolypviewError):
    """Making the report was cancelled; nothing was written."""


@dataclass(frozen=True, slots=True)
class LoggedDetection:
    track: int
    box: Box
    area: int  # pixels
    score: float  # mean probability inside the region


@dataclass(frozen=True, slots=True)
class LoggedFrame:
    """One frame as the recorder's log keeps it."""

    time: float  # seconds from the start of the video
    alert: bool
    polyp: bool | None  # the frame-level decision before the filter; None: not logged
    detections: tuple[LoggedDetection, ...]


@dataclass(frozen=True)
class TrackSummary:
    id: int
    first_s: float
    last_s: float
    seconds: float
    max_area_fraction: float
    where: str  # "upper left" ... "centre": the box's centre at the key frame
    key_s: float  # the key frame's time
    key_box: Box
    score: float  # the region's mean probability at the key frame
    thumbnail: bytes | None = None  # annotated key frame, JPEG
    raw_thumbnail: bytes | None = None  # the key frame as captured, JPEG; None: not recorded

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "first_s": self.first_s,
            "last_s": self.last_s,
            "seconds": self.seconds,
            "max_area_fraction": self.max_area_fraction,
            "where": self.where,
            "key_s": self.key_s,
            "thumbnail": data_uri(self.thumbnail),
        }


@dataclass(frozen=True)
class Procedure:
    video: str
    kind: str  # "segmented" (a video segmented here) or "recording" (its log read)
    recorded: str | None  # when it was recorded, where known
    duration_s: float
    frames: int
    frame_rate: float
    width: int
    height: int
    model: str | None
    weights_sha256: str | None
    backend: str | None
    filter: FilterSettings | None  # the persistence filter used, where known
    tracks: list[TrackSummary]
    alerts: int
    alert_spans: list[tuple[float, float]]  # start and end (s) of each time the alert was on
    alert_seconds: float
    suppressed: int | None  # None: the log does not say what the model saw before the filter
    polypview: str = __version__
    notes: list[str] = field(default_factory=list)

    @property
    def alerts_per_minute(self) -> float:
        return round(self.alerts / (self.duration_s / 60), 3) if self.duration_s else 0.0

    def to_json(self) -> dict:
        return {
            "video": self.video,
            "kind": self.kind,
            "recorded": self.recorded,
            "duration_s": self.duration_s,
            "frames": self.frames,
            "frame_rate": self.frame_rate,
            "model": self.model,
            "weights_sha256": self.weights_sha256,
            "backend": self.backend,
            "polypview": self.polypview,
            "tracks": [track.to_json() for track in self.tracks],
            "alerts": self.alerts,
            "alerts_per_minute": self.alerts_per_minute,
            "alert_minutes": round(self.alert_seconds / 60, 3),
            "suppressed_activations": self.suppressed,
        }


@dataclass(slots=True)
class _Track:
    first: int  # frame numbers (order in the procedure)
    last: int
    max_area: int
    key: int
    key_box: Box
    score: float
    thumbnail: bytes | None = None
    raw_thumbnail: bytes | None = None


class ProcedureBook:
    """Takes a procedure's frames in order and keeps what the report needs: the tracks' spans,
    areas and key frames (thumbnails made on the spot when the frame's images are given)."""

    def __init__(self) -> None:
        self.frames: list[LoggedFrame] = []
        self.tracks: dict[int, _Track] = {}

    def add(
        self,
        frame: LoggedFrame,
        image: np.ndarray | None = None,
        annotated: np.ndarray | None = None,
    ) -> None:
        number = len(self.frames)
        self.frames.append(frame)
        for detection in frame.detections:
            track = self.tracks.get(detection.track)
            if track is None:
                track = _Track(number, number, 0, number, detection.box, -math.inf)
                self.tracks[detection.track] = track
            track.last = number
            track.max_area = max(track.max_area, detection.area)
            if detection.score > track.score:
                track.key, track.key_box, track.score = number, detection.box, detection.score
                if image is not None and annotated is not None:
                    track.thumbnail = thumbnail(annotated, detection.box)
                    track.raw_thumbnail = thumbnail(image)

    def key_frames(self) -> dict[int, list[int]]:
        """Frame number -> the ids of the tracks whose key frame it is."""
        wanted: dict[int, list[int]] = {}
        for track_id, track in self.tracks.items():
            wanted.setdefault(track.key, []).append(track_id)
        return wanted

    def summary(self, frame_rate: float, width: int, height: int, **header) -> Procedure:
        if not self.frames:
            raise PolypviewError(f"no frames in {header.get('video')}")
        times = [frame.time for frame in self.frames]
        step = 1 / frame_rate
        # How long each frame stays on screen: until the next one (a recording keeps gaps).
        lasts = [*(b - a for a, b in itertools.pairwise(times)), step]
        alerts = [frame.alert for frame in self.frames]
        spans = [(times[a], times[b] + lasts[b]) for a, b in runs(alerts)]
        decided = [frame.polyp for frame in self.frames]
        suppressed = None
        if None not in decided:
            suppressed = sum(not any(alerts[a : b + 1]) for a, b in runs(decided))
        frame_area = width * height
        tracks = [
            TrackSummary(
                id=track_id,
                first_s=round(times[track.first], 3),
                last_s=round(times[track.last], 3),
                seconds=round(times[track.last] + lasts[track.last] - times[track.first], 3),
                max_area_fraction=round(track.max_area / frame_area, 4),
                where=where(track.key_box, width, height),
                key_s=round(times[track.key], 3),
                key_box=track.key_box,
                score=round(track.score, 4),
                thumbnail=track.thumbnail,
                raw_thumbnail=track.raw_thumbnail,
            )
            for track_id, track in sorted(self.tracks.items(), key=lambda item: item[1].first)
        ]
        return Procedure(
            duration_s=round(times[-1] + lasts[-1], 3),
            frames=len(self.frames),
            frame_rate=round(frame_rate, 3),
            width=width,
            height=height,
            tracks=tracks,
            alerts=len(spans),
            alert_spans=[(round(a, 3), round(b, 3)) for a, b in spans],
            alert_seconds=round(sum(b - a for a, b in spans), 3),
            suppressed=suppressed,
            **header,
        )


def segment_procedure(
    source: VideoSource,
    segmenter: Segmenter,
    *,
    settings: FilterSettings | None = None,
    overlay: OverlayOptions | None = None,
    on_frame: Callable[[int], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> Procedure:
    """Segment every frame of ``source`` with the tracker on, as the app would have shown it."""
    settings = settings or FilterSettings()
    book = ProcedureBook()
    first_pts: float | None = None
    tracker = Tracker(settings)
    frames = _StampedByPresentationTime(source)
    for result in lockstep_results(frames, segmenter, overlay or OverlayOptions(), tracker):
        if cancelled is not None and cancelled():
            raise ProcedureCancelled(f"report on {source.path} cancelled")
        first_pts = result.frame.pts if first_pts is None else first_pts
        detections = tuple(
            LoggedDetection(d.track_id, d.box, d.area, d.score) for d in result.detections
        )
        polyp = result.mask is not None and bool(result.mask.any())
        frame = LoggedFrame(result.frame.pts - first_pts, result.alert, polyp, detections)
        book.add(frame, result.frame.image, result.annotated)
        if on_frame is not None:
            on_frame(len(book.frames))
    card = segmenter.card
    return book.summary(
        source.fps,
        source.width,
        source.height,
        video=str(source.path),
        kind="segmented",
        recorded=recorded_date(source.path),
        model=card.name,
        weights_sha256=card.sha256 or None,
        backend=segmenter.backend.name,
        filter=settings,
    )


class _StampedByPresentationTime:
    """A file's frames with their presentation time as capture time, so that the tracker's hold
    counts seconds of video, however fast this machine segments them."""

    def __init__(self, source: VideoSource) -> None:
        self.source = source

    def read(self) -> Frame | None:
        frame = self.source.read()
        return None if frame is None else replace(frame, capture_time=frame.pts)


Progress = Callable[[int, int | None], None]  # frames done, of how many (None: not known)


def make_procedure(
    video: Path,
    model: str | None = None,
    backend: str = "auto",
    on_progress: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> Procedure:
    """A recording's procedure read from its log, or any other video's segmented here."""
    if video.is_file() and is_recording(video):
        return read_recording(video, on_progress, cancelled)
    with VideoSource(video) as source:
        segmenter = Segmenter.open(model, backend)
        total = source.frame_count

        def on_frame(done: int) -> None:
            if on_progress is not None:
                on_progress(done, total)

        return segment_procedure(source, segmenter, on_frame=on_frame, cancelled=cancelled)


def is_recording(video: Path) -> bool:
    """A polypview recording: its detection log lies beside it."""
    return detections_log_path(video).is_file()


def read_recording(
    video: Path,
    on_progress: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> Procedure:
    """The procedure a recording's log describes, with key frames taken from its video."""
    log = detections_log_path(video)
    about, frames = read_log(log)
    book = ProcedureBook()
    for frame in frames:
        book.add(frame)
    with VideoSource(video) as source:
        _attach_key_frames(book, source, on_progress, cancelled)
        return book.summary(
            source.fps,
            source.width,
            source.height,
            video=str(video),
            kind="recording",
            recorded=about.get("started") or recorded_date(video),
            model=about.get("model"),
            weights_sha256=about.get("weights_sha256"),
            backend=about.get("backend"),
            filter=FilterSettings(**about["filter"]) if "filter" in about else None,
            notes=[] if "model" in about else ["the log does not name the model"],
        )


def read_log(path: Path) -> tuple[dict, list[LoggedFrame]]:
    """The recording's header (``{"about": ...}`` first line, if any) and its frames.

    A last line cut short (the recording was killed mid-write) is left out; any other line that
    is not a frame record makes the log unreadable."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise PolypviewError(f"cannot read detection log {path}: {_why(exc)}") from None
    about: dict = {}
    frames = []
    for number, line in enumerate(lines, 1):
        try:
            entry = json.loads(line)
            if number == 1 and isinstance(entry, dict) and "about" in entry:
                about = dict(entry["about"])
                continue
            frames.append(_logged_frame(entry))
        except (ValueError, KeyError, TypeError) as exc:
            if number == len(lines) and isinstance(exc, json.JSONDecodeError):
                break  # cut short by a crash: everything before it stands
            raise PolypviewError(
                f"detection log {path} is damaged: line {number} is not a frame record"
            ) from None
    if not frames:
        raise PolypviewError(f"detection log {path} records no frames")
    return about, frames


def _logged_frame(entry: dict) -> LoggedFrame:
    detections = tuple(
        LoggedDetection(int(d["track"]), _box(d["box"]), int(d["area"]), float(d["score"]))
        for d in entry["detections"]
    )
    polyp = entry.get("polyp")  # absent from logs written before it was logged
    decided = None if polyp is None else bool(polyp)
    return LoggedFrame(float(entry["time"]), bool(entry["alert"]), decided, detections)


def _box(values: list) -> Box:
    x1, y1, x2, y2 = (int(v) for v in values)
    return x1, y1, x2, y2


def _attach_key_frames(
    book: ProcedureBook,
    source: VideoSource,
    on_progress: Progress | None,
    cancelled: Callable[[], bool] | None,
) -> None:
    """Decode the recording up to its last key frame and make the tracks' thumbnails (the
    recording holds the annotated picture only; a raw one was not recorded)."""
    wanted = book.key_frames()
    if not wanted:
        return
    last = max(wanted)
    for number, frame in enumerate(_frames(source)):
        if cancelled is not None and cancelled():
            raise ProcedureCancelled(f"report on {source.path} cancelled")
        for track_id in wanted.get(number, ()):
            track = book.tracks[track_id]
            track.thumbnail = thumbnail(frame, track.key_box)
        if on_progress is not None:
            on_progress(number + 1, last + 1)
        if number >= last:
            return
    raise PolypviewError(
        f"{source.path} has fewer frames than its detection log ({last + 1} needed)"
    )


def _frames(source: VideoSource) -> Iterator[np.ndarray]:
    for frame in source:
        yield frame.image


def thumbnail(image: np.ndarray, box: Box | None = None) -> bytes:
    """A small JPEG of ``image``, with ``box`` outlined."""
    height, width = image.shape[:2]
    scale = min(1.0, THUMBNAIL_WIDTH / width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    if box is not None:
        x1, y1, x2, y2 = (round(v * scale) for v in box)
        cv2.rectangle(small, (x1, y1), (max(x1, x2 - 1), max(y1, y2 - 1)), KEY_BOX_COLOUR, 2)
    ok, encoded = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise PolypviewError("cannot encode a thumbnail as JPEG")
    return encoded.tobytes()


def data_uri(jpeg: bytes | None) -> str | None:
    """The JPEG as a ``data:`` URI: an image embedded in the page, no file beside it."""
    if jpeg is None:
        return None
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


def where(box: Box, width: int, height: int) -> str:
    """Where on screen the box's centre lies, in thirds: "upper left" ... "centre"."""
    x = (box[0] + box[2]) / 2 / width
    y = (box[1] + box[3]) / 2 / height
    row = ROWS[min(2, int(y * 3))]
    column = COLUMNS[min(2, int(x * 3))]
    return column if row == "middle" else f"{row} {column}"


def recorded_date(video: Path) -> str | None:
    """The container's creation time, when the file states one."""
    try:
        with av.open(str(video), metadata_errors="replace") as container:
            stated = container.metadata.get("creation_time")
    except (av.FFmpegError, OSError):
        return None
    if not stated:
        return None
    try:
        return datetime.fromisoformat(stated.replace("Z", "+00:00")).isoformat(timespec="seconds")
    except ValueError:
        return str(stated)


def _why(exc: Exception) -> str:
    if isinstance(exc, OSError):
        return (exc.strerror or str(exc)).lower()
    return "it is not UTF-8 text"
