"""The procedure report: one self-contained HTML file made from a ``Procedure``.

The data is computed once (``polypview.procedure``, what ``--json`` prints); this module only lays
it out: a Jinja2 template (``templates/report.html.j2``) with the timeline as inline SVG and the key
frames as embedded JPEGs, so the file opens offline anywhere and survives being mailed or
archived. Its print stylesheet makes the browser's Print to PDF an A4 document. The file is written
beside its final name and renamed when complete, so a report is never half-written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import jinja2

from polypview.errors import OutputError
from polypview.procedure import Procedure, data_uri

TEMPLATES = Path(__file__).with_name("templates")
TIMELINE_WIDTH = 1000  # SVG user units; the picture scales to the page
LANE_HEIGHT = 18
AXIS_HEIGHT = 22
LABEL_WIDTH = 70  # left margin for the lanes' names
RIGHT_MARGIN = 20  # room for the last tick's label
MIN_BAR_WIDTH = 2.0  # a one-frame track is still visible on an hour's timeline
TICK_STEPS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)
MAX_TICKS = 10
DISCLAIMER = (
    "Decision support, not a diagnosis: the marks below are where a model saw something like a "
    "polyp. They are not a finding, and the absence of a mark is not the absence of a polyp."
)


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    y: float
    label: str
    anchor: str  # the element it links to in the page ("" for none)


@dataclass(frozen=True)
class Tick:
    x: float
    label: str


@dataclass(frozen=True)
class Timeline:
    width: float
    height: float
    left: float  # where time zero is drawn
    right: float  # where the end of the video is drawn
    lanes: list[tuple[float, str]]  # y and name of each lane
    bars: list[Bar]
    alert_bars: list[Bar]
    ticks: list[Tick]
    axis_y: float


def default_report_path(video: Path) -> Path:
    return video.with_name(f"{video.stem}.report.html")


def check_report_path(output: Path) -> None:
    """Refuse a report location that cannot be written, before any work is done."""
    if output.suffix.lower() not in (".html", ".htm"):
        raise OutputError(f"report must be an .html file: {output}")
    folder = output.parent
    if not folder.is_dir():
        raise OutputError(f"report folder does not exist: {folder}")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"report folder is not writable: {folder}")
    if output.is_dir():
        raise OutputError(f"report is a folder: {output}")


def clock(seconds: float, decimals: int = 0) -> str:
    """``mm:ss`` (``h:mm:ss`` from an hour), with ``decimals`` of a second."""
    whole, tenths = divmod(round(seconds * 10**decimals), 10**decimals)
    fraction = f".{tenths:0{decimals}d}" if decimals else ""
    minutes, secs = divmod(whole, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}{fraction}"
    return f"{minutes:02d}:{secs:02d}{fraction}"


def timeline(procedure: Procedure) -> Timeline:
    """The whole video left to right: the alert on one lane, the tracks packed below it."""
    duration = max(procedure.duration_s, 1e-6)
    span = TIMELINE_WIDTH - LABEL_WIDTH - RIGHT_MARGIN

    def x_of(seconds: float) -> float:
        return round(LABEL_WIDTH + span * seconds / duration, 2)

    def bar(start: float, end: float, y: float, label: str, anchor: str = "") -> Bar:
        x = x_of(start)
        return Bar(x, round(max(MIN_BAR_WIDTH, x_of(end) - x), 2), y, label, anchor)

    alert_y = 4.0
    alert_bars = [
        bar(a, b, alert_y, f"alert {clock(a, 1)}-{clock(b, 1)}") for a, b in procedure.alert_spans
    ]
    lane_ends: list[float] = []  # where each track lane is free from
    bars = []
    for track in procedure.tracks:
        end = track.first_s + track.seconds
        lane = next((i for i, free in enumerate(lane_ends) if free <= track.first_s), None)
        if lane is None:
            lane = len(lane_ends)
            lane_ends.append(end)
        lane_ends[lane] = end
        y = alert_y + LANE_HEIGHT * (lane + 1)
        label = f"track {track.id}: {clock(track.first_s, 1)}-{clock(end, 1)}"
        bars.append(bar(track.first_s, end, y, label, f"track-{track.id}"))
    lanes = [(alert_y, "alert")] + [
        (alert_y + LANE_HEIGHT * (i + 1), "tracks" if i == 0 else "")
        for i in range(max(1, len(lane_ends)))
    ]
    axis_y = alert_y + LANE_HEIGHT * len(lanes) + 2
    step = next((s for s in TICK_STEPS_S if duration / s <= MAX_TICKS), TICK_STEPS_S[-1])
    count = int(duration // step)
    ticks = [Tick(x_of(i * step), clock(i * step)) for i in range(count + 1)]
    return Timeline(
        TIMELINE_WIDTH,
        axis_y + AXIS_HEIGHT,
        LABEL_WIDTH,
        LABEL_WIDTH + span,
        lanes,
        bars,
        alert_bars,
        ticks,
        axis_y,
    )


def render_report(procedure: Procedure, report_folder: Path) -> str:
    """The report's HTML; links to the video are relative to ``report_folder``."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["clock"] = clock
    environment.filters["data_uri"] = data_uri
    video = Path(procedure.video)
    link = Path(os.path.relpath(video.resolve(), report_folder.resolve())).as_posix()
    return environment.get_template("report.html.j2").render(
        procedure=procedure,
        timeline=timeline(procedure),
        video_name=video.name,
        video_link=link,
        disclaimer=DISCLAIMER,
    )


def write_report(procedure: Procedure, output: Path) -> Path:
    """Render and write the report to ``output`` through a partial file renamed when complete."""
    check_report_path(output)
    html = render_report(procedure, output.parent)
    staging = output.with_name(f"{output.stem}.partial{output.suffix}")
    try:
        staging.write_text(html, encoding="utf-8")
        os.replace(staging, output)
    except OSError as exc:
        staging.unlink(missing_ok=True)
        raise OutputError(f"cannot write {output}: {(exc.strerror or str(exc)).lower()}") from exc
    return output
