"""Video-level CADe metrics: how a detector is judged over time, defined once.

Clinicians and reviewers judge computer-aided detection per polyp and per minute, not per image.
Each frame is first reduced to a ``FrameOutcome`` (which true polyps are on screen, whether the
alert is on, which polyps an alerted detection overlaps, whether an alerted detection overlaps
none); the metrics are then runs over those outcomes:

- per-polyp sensitivity: a polyp *appearance* (a run of frames in which one true polyp is on
  screen) counts as detected when a detection run on it (consecutive frames in which an alerted
  detection overlaps it) lasting at least ``min_run_s`` starts within ``start_within_s``
  (sigma, 3 s) of the appearance's first frame: the REAL-Colon benchmark's definition;
- first-detection latency: seconds from an appearance's first frame to the first frame in which
  an alerted detection overlaps it (MICCAI 2015 detection latency), median and worst over the
  appearances that were ever detected; the others are counted as missed;
- false-positive events per minute of video: runs of consecutive frames with an alerted detection
  that overlaps no true polyp, lasting at least τ, for each τ;
- flicker: alert on/off switches per minute of video in which a polyp is on screen.

A detection overlaps a true polyp given as a box when their IoU exceeds ``BOX_IOU`` (0.2), and
one given as a mask when the mask has a pixel inside the detection (inside its region of the
predicted mask, when that is given). A run of ``n`` frames lasts ``n / frame_rate`` seconds.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from polypview.tracking import Box, box_iou  # x1, y1, x2, y2 in frame pixels, x2/y2 exclusive

Truth = Box | np.ndarray  # a true polyp in one frame: its box, or its H x W bool mask

BOX_IOU = 0.2  # a detection box matches a true box above this IoU (REAL-Colon)
START_WITHIN_S = 3.0  # sigma: a detection run must start this soon after the polyp appears
MIN_RUN_S = 0.5  # τ for sensitivity: the shortest detection run that counts
FP_EVENT_S = (0.5, 1.0, 2.0)  # τ for false-positive events


@dataclass(frozen=True, slots=True)
class FrameOutcome:
    """One frame judged against its truth."""

    present: frozenset[str]  # ids of the true polyps on screen
    alert: bool  # the detector's alert (after its persistence filter)
    hits: frozenset[str]  # ids of the true polyps an alerted detection overlaps
    false_positive: bool  # an alerted detection overlaps no true polyp


@dataclass(frozen=True, slots=True)
class Appearance:
    polyp: str
    first: int  # frame index of its first frame
    last: int  # frame index of its last frame (inclusive)


@dataclass(frozen=True)
class VideoMetrics:
    """What ``training.evaluate --clip`` adds to its JSON, under these names."""

    polyp_sensitivity: float | None  # None: no polyp appears in the video
    appearances: int
    detected: int
    first_detection_s: dict[str, float | int | None]  # median, worst, missed
    fp_events_per_minute: dict[str, float]  # keyed by τ in seconds, as text ("0.5", "1", "2")
    flicker_per_minute: float | None  # None: no polyp on screen at all
    minutes: float

    def to_json(self) -> dict:
        return {
            "polyp_sensitivity": self.polyp_sensitivity,
            "polyp_appearances": self.appearances,
            "polyp_appearances_detected": self.detected,
            "first_detection_s": self.first_detection_s,
            "fp_events_per_minute": self.fp_events_per_minute,
            "flicker_per_minute": self.flicker_per_minute,
        }


def judge_frame(
    truth: Mapping[str, Truth],
    detections: Sequence[Box],
    alert: bool,
    predicted_mask: np.ndarray | None = None,
) -> FrameOutcome:
    """``detections`` are the boxes shown while ``alert`` is on (ignored when it is off)."""
    hits: set[str] = set()
    false_positive = False
    for box in detections if alert else ():
        matched = {p for p, region in truth.items() if overlaps(box, region, predicted_mask)}
        hits |= matched
        false_positive |= not matched
    return FrameOutcome(frozenset(truth), alert, frozenset(hits), false_positive)


def overlaps(box: Box, truth: Truth, predicted_mask: np.ndarray | None = None) -> bool:
    if isinstance(truth, np.ndarray):
        x1, y1, x2, y2 = box
        inside = truth[y1:y2, x1:x2]
        if predicted_mask is not None:
            inside = inside & (predicted_mask[y1:y2, x1:x2] != 0)
        return bool(inside.any())
    return box_iou(box, truth) > BOX_IOU


def runs(flags: Iterable[bool]) -> list[tuple[int, int]]:
    """``(first, last)`` frame indices (inclusive) of each run of True."""
    found, start = [], None
    index = -1
    for index, flag in enumerate(flags):
        if flag and start is None:
            start = index
        elif not flag and start is not None:
            found.append((start, index - 1))
            start = None
    if start is not None:
        found.append((start, index))
    return found


def appearances(outcomes: Sequence[FrameOutcome]) -> list[Appearance]:
    """Each run of frames in which one true polyp is on screen, in order of first frame."""
    polyps = sorted({polyp for outcome in outcomes for polyp in outcome.present})
    found = [
        Appearance(polyp, first, last)
        for polyp in polyps
        for first, last in runs(polyp in outcome.present for outcome in outcomes)
    ]
    return sorted(found, key=lambda a: (a.first, a.polyp))


def video_metrics(
    outcomes: Sequence[FrameOutcome],
    frame_rate: float,
    *,
    min_run_s: float = MIN_RUN_S,
    start_within_s: float = START_WITHIN_S,
    fp_event_s: Sequence[float] = FP_EVENT_S,
) -> VideoMetrics:
    """The video-level metrics of a video's frame outcomes, in order, at ``frame_rate``."""
    if frame_rate <= 0:
        raise ValueError(f"frame_rate must be positive, got {frame_rate}")
    minutes = len(outcomes) / frame_rate / 60
    seen = appearances(outcomes)
    detected, latencies = 0, []
    for appearance in seen:
        span = outcomes[appearance.first : appearance.last + 1]
        hit_runs = runs(appearance.polyp in outcome.hits for outcome in span)
        if hit_runs:
            latencies.append(hit_runs[0][0] / frame_rate)
        detected += any(
            (last - first + 1) / frame_rate >= min_run_s - 1e-9
            and first / frame_rate <= start_within_s + 1e-9
            for first, last in hit_runs
        )
    fp_runs = runs(outcome.false_positive for outcome in outcomes)
    fp_events = {
        _seconds_key(tau): _per_minute(
            sum((last - first + 1) / frame_rate >= tau - 1e-9 for first, last in fp_runs),
            minutes,
        )
        for tau in fp_event_s
    }
    switches = sum(
        before.alert != now.alert and bool(before.present) and bool(now.present)
        for before, now in itertools.pairwise(outcomes)
    )
    polyp_minutes = sum(bool(outcome.present) for outcome in outcomes) / frame_rate / 60
    return VideoMetrics(
        polyp_sensitivity=round(detected / len(seen), 4) if seen else None,
        appearances=len(seen),
        detected=detected,
        first_detection_s={
            "median": round(statistics.median(latencies), 3) if latencies else None,
            "worst": round(max(latencies), 3) if latencies else None,
            "missed": len(seen) - len(latencies),
        },
        fp_events_per_minute=fp_events,
        flicker_per_minute=_per_minute(switches, polyp_minutes) if polyp_minutes else None,
        minutes=minutes,
    )


def link_boxes(frames: Sequence[Sequence[Box]], max_step: float = 1.5) -> list[dict[str, Box]]:
    """Name the true boxes of consecutive frames as polyps: a box continues the polyp of the
    previous frame whose box centre lies within ``max_step`` box sizes (the square root of the
    mean of the two areas) of its own, nearest first; any other box is a new polyp.

    For ground truth given as boxes without identities (the shared real clip's boxes JSON),
    where a polyp near the scope moves most of its own size from one frame to the next, so boxes
    of one polyp need not overlap."""
    named: list[dict[str, Box]] = []
    previous: dict[str, Box] = {}
    count = 0
    for boxes in frames:
        pairs = sorted(
            (step, polyp, index)
            for polyp, old in previous.items()
            for index, box in enumerate(boxes)
            if (step := _step(old, box)) <= max_step
        )
        current: dict[str, Box] = {}
        taken: set[int] = set()
        for _, polyp, index in pairs:
            if polyp in current or index in taken:
                continue
            current[polyp] = boxes[index]
            taken.add(index)
        for index, box in enumerate(boxes):
            if index not in taken:
                count += 1
                current[f"polyp {count}"] = box
        named.append(current)
        previous = current
    return named


def _step(a: Box, b: Box) -> float:
    """How far the centre moved from ``a`` to ``b``, in box sizes."""
    dx = (a[0] + a[2] - b[0] - b[2]) / 2
    dy = (a[1] + a[3] - b[1] - b[3]) / 2
    size = math.sqrt(((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])) / 2)
    return math.hypot(dx, dy) / max(size, 1.0)


def _per_minute(count: int, minutes: float) -> float:
    return round(count / minutes, 3) if minutes else 0.0


def _seconds_key(seconds: float) -> str:
    return f"{seconds:g}"
