"""Temporal filtering: a polyp alert is raised only for a region that persists, and held briefly.

Most CADe false alarms are short: bubbles, specular glints and folds caught mid-motion last under
3 frames, and holding detections back for 6 frames removed 88% of them. Hence the defaults:

- ``persist_frames=3`` of ``window_frames=6``: a region must appear in 3 of the last 6 segmented
  frames, so a 1-2 frame flash never alerts, while a real polyp is raised on its 3rd frame
  (70-80 ms after it appears at 25-30 fps, on top of the inference delay) even if the model
  misses it in up to 3 of 6. Re-tuned on clips with the calibrated lite-unet
  (``scripts/tune_persistence.py``, docs/training.md): against 4 of 6 it raised the real clip's
  polyps 0.24 s sooner and alerted on 81% of their frames instead of 70%, with the same single
  false alert over 14 polyp-free clips (0.4% of their frames alerted instead of 0.2%).
- ``hold_s=0.5``: once raised, the alert survives the polyp being hidden for up to half a second
  (a fold, a bubble, a blurred frame, the model missing it), so it does not flicker; half a second
  is short enough that a box does not trail visibly behind a scope that has moved on.
- ``min_area_fraction=0.0005``: regions under 1/2000 of the frame (about 32 x 32 px at 1080p,
  6 x 6 px at a 256 x 256 model input) are segmentation specks, not findable polyps.

A region is an 8-connected component of the mask. Masks are labelled at a reduced resolution
(at most ``LABEL_WIDTH`` px wide: 1/4 for 1080p) so that ``update`` stays in the low milliseconds;
boxes are scaled back and so are exact to within that factor, and areas are counts scaled by its
square. Tracks are matched from frame to frame by the IoU of their boxes, greedily, best first.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

from polypview.segmenter import Segmentation, Segmenter

Box = tuple[int, int, int, int]

LABEL_WIDTH = 480  # masks wider than this are labelled at 1/2, 1/3, 1/4... of their size
MATCH_IOU = 0.3  # boxes of one polyp in consecutive frames overlap at least this much


@dataclass(frozen=True, slots=True)
class FilterSettings:
    """When a region counts as a polyp: ``persist_frames`` of the last ``window_frames`` frames,
    held ``hold_s`` seconds after it was last seen; ``smoothing`` is ``ProbabilitySmoother``'s
    alpha (0: off)."""

    persist_frames: int = 3
    window_frames: int = 6
    hold_s: float = 0.5
    min_area_fraction: float = 0.0005
    smoothing: float = 0.0

    def __post_init__(self) -> None:
        if not 1 <= self.persist_frames <= self.window_frames:
            raise ValueError(
                f"persist_frames must be between 1 and window_frames ({self.window_frames}), "
                f"got {self.persist_frames}"
            )
        if self.hold_s < 0:
            raise ValueError(f"hold_s must be 0 or more seconds, got {self.hold_s}")
        if not 0 <= self.min_area_fraction < 1:
            raise ValueError(f"min_area_fraction must be in [0, 1), got {self.min_area_fraction}")
        if not 0 <= self.smoothing < 1:
            raise ValueError(f"smoothing must be in [0, 1), got {self.smoothing}")


@dataclass(frozen=True, slots=True)
class Detection:
    track_id: int
    box: Box  # x1, y1, x2, y2 in frame pixels, x2/y2 exclusive
    area: int  # pixels in the region
    score: float  # mean probability inside the region
    first_seen: float  # capture_time (monotonic s) of the frame where the track began


@dataclass(frozen=True, slots=True)
class TrackUpdate:
    """What one frame's mask changed: the tracks shown, and whether the alert is (newly) on."""

    detections: tuple[Detection, ...]
    alert: bool
    new_alert: bool  # the alert was off before this frame: the moment to play a sound


@dataclass(frozen=True, slots=True)
class _Region:
    box: Box
    area: int
    score: float


@dataclass(slots=True)
class _Track:
    detection: Detection  # the last time it was seen
    last_seen: float
    presence: deque[bool]  # whether it was seen, for each frame of the window
    confirmed: bool = False  # passed the persistence rule, and was seen within the hold since


class Tracker:
    """Turns each segmented frame's mask into the detections that passed the persistence filter.

    Call ``update`` once per segmentation (not per displayed frame): the window counts segmented
    frames. A track is raised on a frame where it is seen and has been seen in ``persist_frames``
    of the last ``window_frames``; it stays raised until it has gone unseen for more than
    ``hold_s`` (by capture time), reported meanwhile with its last box and last score unchanged,
    since nothing newer is known about it. A track is forgotten once it is neither raised nor seen
    anywhere in the window; a region that comes back after that is a new track with a new id.
    """

    def __init__(self, settings: FilterSettings | None = None) -> None:
        self.settings = settings or FilterSettings()
        self._tracks: list[_Track] = []
        self._ids = itertools.count(1)
        self._shape: tuple[int, ...] | None = None
        self._alert = False

    def reset(self) -> None:
        """Forget every track (a new source, a seek); ids keep counting up."""
        self._tracks = []
        self._alert = False

    def update(
        self, mask: np.ndarray, probability: np.ndarray | None, capture_time: float
    ) -> TrackUpdate:
        """Match this frame's regions to the tracks; ``mask`` is H x W, foreground non-zero.

        ``probability`` (for the regions' scores) may be at the frame's size or smaller, as
        ``Segmentation.probability_map`` comes from a GPU backend: passing that saves resizing
        it to the frame first."""
        if mask.shape != self._shape:  # boxes of another frame size mean nothing here
            self.reset()
            self._shape = mask.shape
        regions = _regions(mask, probability, self.settings.min_area_fraction)
        unmatched = self._match(regions, capture_time)
        for region in unmatched:
            detection = Detection(
                next(self._ids), region.box, region.area, region.score, capture_time
            )
            presence = deque([True], maxlen=self.settings.window_frames)
            self._tracks.append(_Track(detection, capture_time, presence))
        shown = []
        for track in list(self._tracks):
            if track.presence[-1] and sum(track.presence) >= self.settings.persist_frames:
                track.confirmed = True
            elif capture_time - track.last_seen > self.settings.hold_s:
                track.confirmed = False
            if track.confirmed:
                shown.append(track.detection)
            elif not any(track.presence):
                self._tracks.remove(track)
        alert = bool(shown)
        new_alert, self._alert = alert and not self._alert, alert
        return TrackUpdate(tuple(sorted(shown, key=lambda d: d.track_id)), alert, new_alert)

    def _match(self, regions: list[_Region], capture_time: float) -> list[_Region]:
        """Extend each track by whether a region matched it; return the regions left over."""
        pairs = sorted(
            (
                (overlap, t, r)
                for t, track in enumerate(self._tracks)
                for r, region in enumerate(regions)
                if (overlap := box_iou(track.detection.box, region.box)) >= MATCH_IOU
            ),
            reverse=True,
        )
        matched_tracks: set[int] = set()
        matched_regions: set[int] = set()
        for _, t, r in pairs:
            if t in matched_tracks or r in matched_regions:
                continue
            matched_tracks.add(t)
            matched_regions.add(r)
            track, region = self._tracks[t], regions[r]
            track.detection = Detection(
                track.detection.track_id,
                region.box,
                region.area,
                region.score,
                track.detection.first_seen,
            )
            track.last_seen = capture_time
        for t, track in enumerate(self._tracks):
            track.presence.append(t in matched_tracks)
        return [region for r, region in enumerate(regions) if r not in matched_regions]


class ProbabilitySmoother:
    """Exponential moving average of the probability map: ``alpha * previous + (1 - alpha) * new``.

    ``alpha`` is the weight of the past (0: off, the map passes through). It steadies the outline
    of a polyp the model sees on and off, at the cost of lag: a step takes about
    ``1 / (1 - alpha)`` frames to settle. The average restarts when the frame size changes.
    """

    def __init__(self, alpha: float) -> None:
        if not 0 <= alpha < 1:
            raise ValueError(f"smoothing alpha must be in [0, 1), got {alpha}")
        self.alpha = alpha
        self._average: np.ndarray | None = None

    def smooth(self, probability: np.ndarray) -> np.ndarray:
        """The smoothed map as a new float32 array (never changed later); the input itself when
        smoothing is off."""
        if self.alpha == 0:
            return probability
        if self._average is None or self._average.shape != probability.shape:
            self._average = probability.astype(np.float32)
        else:
            new = probability.astype(np.float32, copy=False)
            self._average = cv2.addWeighted(self._average, self.alpha, new, 1 - self.alpha, 0)
        return self._average


class SmoothedSegmenter:
    """A segmenter whose probability map is averaged over frames, its mask taken from the average.

    The pipeline puts one in front of the segmenter when ``FilterSettings.smoothing`` is set.
    """

    def __init__(self, segmenter: Segmenter, alpha: float) -> None:
        self.segmenter = segmenter
        self.smoother = ProbabilitySmoother(alpha)

    def __call__(self, frame: np.ndarray) -> Segmentation:
        probability = self.smoother.smooth(self.segmenter.undecided(frame).probability)
        return self.segmenter.from_probability(probability)


def _regions(
    mask: np.ndarray, probability: np.ndarray | None, min_area_fraction: float
) -> list[_Region]:
    """The mask's 8-connected regions of at least ``min_area_fraction`` of the frame, labelled
    at reduced resolution and scaled back."""
    height, width = mask.shape
    step = max(1, width // LABEL_WIDTH)
    small = np.ascontiguousarray(mask[::step, ::step])
    if small.dtype != np.uint8:
        small = (small != 0).view(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(small, connectivity=8)
    if count <= 1:
        return []
    areas = stats[:, cv2.CC_STAT_AREA]
    if probability is None:
        scores = np.ones(count)
    else:
        sampled = _sampled(probability, mask.shape, step, small.shape)
        sums = np.bincount(labels.ravel(), sampled.ravel(), minlength=count)
        scores = sums / np.maximum(areas, 1)  # the background (label 0) may have no pixels
    smallest = min_area_fraction * height * width / step**2
    regions = []
    for label in range(1, count):
        if areas[label] < smallest:
            continue
        x, y, w, h = (int(v) * step for v in stats[label, :4])
        box = (x, y, min(x + w, width), min(y + h, height))
        regions.append(_Region(box, int(areas[label]) * step**2, float(scores[label])))
    return regions


def _sampled(
    probability: np.ndarray, frame_shape: tuple[int, ...], step: int, grid: tuple[int, ...]
) -> np.ndarray:
    """The probability on the labelling ``grid``: every ``step``-th pixel of a map at the
    frame's size, or a map of another size (the model's, from the GPU backends) resized to it."""
    if probability.shape == frame_shape:
        return probability[::step, ::step]
    return cv2.resize(probability, (grid[1], grid[0]), interpolation=cv2.INTER_LINEAR)


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes."""
    inter_w = min(a[2], b[2]) - max(a[0], b[0])
    inter_h = min(a[3], b[3]) - max(a[1], b[1])
    if inter_w <= 0 or inter_h <= 0:
        return 0.0
    inter = inter_w * inter_h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union
