"""The persistence filter: flicker never alerts, polyps alert after k frames and are held after
loss, tracks keep their ids, and the probability smoother's arithmetic."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from polypview.modelfile import ModelCard
from polypview.segmenter import Segmenter
from polypview.tracking import (
    Detection,
    FilterSettings,
    ProbabilitySmoother,
    SmoothedSegmenter,
    Tracker,
    TrackUpdate,
)

WIDTH, HEIGHT = 320, 240
FPS = 25
SETTINGS = FilterSettings(persist_frames=4, window_frames=6, hold_s=0.5, min_area_fraction=0.001)


def mask_with(*discs: tuple[int, int, int]) -> np.ndarray:
    """A 0/255 mask with a filled disc for each (x, y, radius)."""
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    for x, y, radius in discs:
        cv2.circle(mask, (x, y), radius, 255, -1)
    return mask


def run(tracker: Tracker, masks: list[np.ndarray], start: int = 0) -> list[TrackUpdate]:
    """Feed the masks as frames ``start``, ``start + 1``... of a 25 fps stream."""
    return [tracker.update(mask, None, (start + index) / FPS) for index, mask in enumerate(masks)]


EMPTY = mask_with()
POLYP = mask_with((100, 120, 30))


def test_flicker_of_one_or_two_frames_never_alerts() -> None:
    # Lone flashes every third frame, then pairs every sixth: never more than 2 in any 6 frames.
    pattern = [POLYP, EMPTY, EMPTY] * 6 + [POLYP, POLYP, EMPTY, EMPTY, EMPTY, EMPTY] * 4
    updates = run(Tracker(SETTINGS), pattern)
    assert not any(update.alert or update.detections for update in updates)


def test_a_persistent_polyp_is_raised_on_its_fourth_frame() -> None:
    updates = run(Tracker(SETTINGS), [EMPTY, EMPTY, *[POLYP] * 6])
    assert [update.alert for update in updates] == [False] * 5 + [True] * 3
    (detection,) = updates[5].detections
    assert isinstance(detection, Detection)
    assert detection.first_seen == pytest.approx(2 / FPS)  # the track began on frame 2
    x1, y1, x2, y2 = detection.box
    assert abs(x1 - 70) <= 1 and abs(y1 - 90) <= 1 and abs(x2 - 131) <= 1 and abs(y2 - 151) <= 1
    assert detection.area == pytest.approx(np.pi * 30**2, rel=0.05)
    assert detection.score == 1.0  # no probability map given


def test_k_of_n_tolerates_missed_frames() -> None:
    # Present in 4 of the last 6 frames at frame 5, though missed twice.
    updates = run(Tracker(SETTINGS), [POLYP, EMPTY, POLYP, EMPTY, POLYP, POLYP])
    assert [update.alert for update in updates] == [False] * 5 + [True]


def test_the_alert_is_held_for_hold_s_after_loss_then_drops() -> None:
    tracker = Tracker(SETTINGS)
    raised = run(tracker, [POLYP] * 6)
    last_box = raised[-1].detections[0].box
    lost = run(tracker, [EMPTY] * 20, start=6)  # last seen at 5/25 = 0.2 s
    # Held while capture_time - 0.2 <= 0.5: frames 6..17 (0.24..0.68 s), dropped from 0.72 s.
    assert [update.alert for update in lost] == [True] * 12 + [False] * 8
    assert all(update.detections[0].box == last_box for update in lost[:12])
    assert all(update.detections == () for update in lost[12:])


def test_the_hold_follows_capture_times_not_frame_counts() -> None:
    tracker = Tracker(SETTINGS)
    for index in range(6):
        tracker.update(POLYP, None, 10.0 + index * 0.04)  # last seen at 10.2
    assert tracker.update(EMPTY, None, 10.65).alert  # a late frame: 0.45 s since last seen
    assert not tracker.update(EMPTY, None, 10.75).alert  # 0.55 s


def test_new_alert_is_true_exactly_once_per_raise() -> None:
    tracker = Tracker(SETTINGS)
    first = run(tracker, [POLYP] * 8 + [EMPTY] * 20)
    second = run(tracker, [POLYP] * 8, start=28)
    assert [update.new_alert for update in first] == [False] * 3 + [True] + [False] * 24
    assert [update.new_alert for update in second] == [False] * 3 + [True] + [False] * 4


def test_two_polyps_keep_their_own_stable_ids_while_moving() -> None:
    tracker = Tracker(SETTINGS)
    masks = [mask_with((60 + 2 * i, 60 + i, 25), (240 - 2 * i, 170, 20)) for i in range(30)]
    updates = run(tracker, masks)
    ids = [tuple(d.track_id for d in update.detections) for update in updates[3:]]
    assert len(set(ids)) == 1 and len(ids[0]) == 2
    left, right = updates[-1].detections
    assert left.box[0] < right.box[0]  # the ids follow their own polyp, left and right
    assert left.first_seen == right.first_seen == 0.0


def test_a_polyp_gone_longer_than_the_hold_comes_back_as_a_new_track() -> None:
    tracker = Tracker(SETTINGS)
    before = run(tracker, [POLYP] * 6)[-1].detections[0]
    brief_gap = run(tracker, [EMPTY] * 5 + [POLYP], start=6)[-1].detections[0]
    assert brief_gap.track_id == before.track_id  # back within the hold: the same track
    run(tracker, [EMPTY] * 15, start=12)  # 0.6 s: longer than the hold and the window
    after = run(tracker, [POLYP] * 6, start=27)
    assert not after[2].alert  # a new track must persist again
    assert after[-1].detections[0].track_id != before.track_id
    assert after[-1].detections[0].first_seen == pytest.approx(27 / FPS)


def test_regions_below_the_minimum_area_are_ignored() -> None:
    speck = mask_with((200, 60, 4))  # ~50 px, under 0.001 of 320 x 240 (77 px)
    updates = run(Tracker(SETTINGS), [speck] * 8)
    assert not any(update.alert for update in updates)
    updates = run(Tracker(SETTINGS), [mask_with((200, 60, 4), (100, 120, 30))] * 8)
    assert [len(update.detections) for update in updates[3:]] == [1] * 5


def test_the_score_is_the_mean_probability_inside_the_region() -> None:
    probability = np.zeros((HEIGHT, WIDTH), np.float32)
    probability[POLYP > 0] = 0.8
    probability[:, :100][POLYP[:, :100] > 0] = 0.6  # the left half less sure
    tracker = Tracker(SETTINGS)
    for index in range(4):
        update = tracker.update(POLYP, probability, index / FPS)
    assert update.detections[0].score == pytest.approx(0.7, abs=0.02)


def test_a_1080p_mask_gives_boxes_in_frame_pixels() -> None:
    mask = np.zeros((1080, 1920), np.uint8)
    cv2.rectangle(mask, (400, 300), (799, 599), 255, -1)  # x 400..799, y 300..599 inclusive
    tracker = Tracker(SETTINGS)
    for index in range(4):
        update = tracker.update(mask, None, index / FPS)
    (detection,) = update.detections
    assert all(abs(a - b) <= 4 for a, b in zip(detection.box, (400, 300, 800, 600), strict=True))
    assert detection.area == pytest.approx(400 * 300, rel=0.02)


def test_a_new_frame_size_starts_afresh() -> None:
    tracker = Tracker(SETTINGS)
    run(tracker, [POLYP] * 6)
    larger = np.zeros((HEIGHT * 2, WIDTH * 2), np.uint8)
    assert not tracker.update(larger, None, 1.0).alert


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="persist_frames"):
        FilterSettings(persist_frames=7, window_frames=6)
    with pytest.raises(ValueError, match="hold_s"):
        FilterSettings(hold_s=-1)


def test_smoothing_is_an_exponential_moving_average() -> None:
    smoother = ProbabilitySmoother(0.75)
    ones = np.ones((4, 6), np.float32)
    first = smoother.smooth(ones * 0.8)
    np.testing.assert_allclose(first, 0.8)  # the first map starts the average
    second = smoother.smooth(ones * 0.0)
    np.testing.assert_allclose(second, 0.75 * 0.8, rtol=1e-6)
    third = smoother.smooth(ones * 1.0)
    np.testing.assert_allclose(third, 0.75 * 0.6 + 0.25, rtol=1e-6)
    np.testing.assert_allclose(second, 0.6, rtol=1e-6)  # earlier results are not overwritten
    np.testing.assert_allclose(smoother.smooth(np.full((2, 2), 0.3, np.float32)), 0.3)


def test_smoothing_off_passes_the_map_through() -> None:
    probability = np.full((4, 6), 0.5, np.float32)
    assert ProbabilitySmoother(0.0).smooth(probability) is probability
    with pytest.raises(ValueError, match="alpha"):
        ProbabilitySmoother(1.0)


def test_smoothed_segmenter_thresholds_the_average_over_frames(
    stand_in_model: ModelCard,
) -> None:
    class Flicker:
        """Probability 0.9 on even calls, 0.2 on odd ones, everywhere."""

        def __init__(self) -> None:
            self.calls = 0

        def infer(self, batch: np.ndarray) -> np.ndarray:
            self.calls += 1
            value = 0.9 if self.calls % 2 else 0.2
            return np.full((1, 1, 64, 64), np.log(value / (1 - value)), np.float32)

    segmenter = Segmenter(stand_in_model, Flicker())
    frame = np.zeros((48, 64, 3), np.uint8)
    smoothed = SmoothedSegmenter(segmenter, alpha=0.5)
    averages = [float(smoothed(frame).probability.mean()) for _ in range(4)]
    assert averages == pytest.approx([0.9, 0.55, 0.725, 0.4625], abs=1e-4)
    assert smoothed(frame).mask.all()  # the fifth average, 0.68, is above the 0.5 threshold
