"""Video-level metrics on small hand-made sequences, each answer worked out in the test."""

from __future__ import annotations

import numpy as np
import pytest

from polypview.video_metrics import (
    FrameOutcome,
    appearances,
    judge_frame,
    link_boxes,
    runs,
    video_metrics,
)

FPS = 10  # one frame is 0.1 s: runs are easy to count in seconds


def frames(pattern: str, polyp: str = "A") -> list[FrameOutcome]:
    """One character a frame: ``.`` nothing; ``p`` polyp on screen, no alert; ``H`` polyp
    alerted (a hit); ``f`` no polyp, a false alert; ``m`` polyp on screen, a false alert
    beside it (alert on, no hit)."""
    outcomes = []
    for char in pattern:
        present = frozenset({polyp}) if char in "pHm" else frozenset()
        hits = frozenset({polyp}) if char == "H" else frozenset()
        outcomes.append(FrameOutcome(present, char in "Hfm", hits, char in "fm"))
    return outcomes


def test_runs_are_first_and_last_inclusive() -> None:
    assert runs([False, True, True, False, True]) == [(1, 2), (4, 4)]
    assert runs([]) == [] and runs([False]) == []


def test_a_polyp_detected_within_three_seconds_by_a_long_enough_run() -> None:
    # Polyp on screen for 5 s (50 frames); alerted from 1.0 s to 1.9 s: a 1 s run starting 1 s in.
    pattern = "p" * 10 + "H" * 10 + "p" * 30
    metrics = video_metrics(frames(pattern), FPS)
    assert metrics.appearances == 1 and metrics.polyp_sensitivity == 1.0
    assert metrics.first_detection_s == {"median": 1.0, "worst": 1.0, "missed": 0}
    # Alert switches on at frame 10 and off at frame 20, both with the polyp on screen: 2
    # switches in 5 s of polyp = 24 per minute.
    assert metrics.flicker_per_minute == 24.0


def test_a_run_starting_after_sigma_or_too_short_does_not_count() -> None:
    late = "p" * 31 + "H" * 10 + "p" * 9  # starts 3.1 s in: after sigma = 3 s
    short = "p" * 5 + "H" * 4 + "p" * 41  # 0.4 s: under τ = 0.5 s
    for pattern in (late, short):
        metrics = video_metrics(frames(pattern), FPS)
        assert metrics.polyp_sensitivity == 0.0
    # Both were alerted, so both have a latency: 3.1 s and 0.5 s.
    assert video_metrics(frames(late), FPS).first_detection_s["median"] == 3.1
    assert video_metrics(frames(short), FPS).first_detection_s["worst"] == 0.5
    # A 0.4 s run counts once τ is 0.4 s.
    assert video_metrics(frames(short), FPS, min_run_s=0.4).polyp_sensitivity == 1.0


def test_two_appearances_one_missed() -> None:
    # Polyp A for 2 s, detected at once; a gap; A again for 2 s, never alerted.
    outcomes = frames("H" * 20 + "." * 10 + "p" * 20)
    assert [(a.first, a.last) for a in appearances(outcomes)] == [(0, 19), (30, 49)]
    metrics = video_metrics(outcomes, FPS)
    assert metrics.polyp_sensitivity == 0.5
    assert metrics.first_detection_s == {"median": 0.0, "worst": 0.0, "missed": 1}
    # No switch while the polyp was on screen: the alert went off in the gap.
    assert metrics.flicker_per_minute == 0.0


def test_latency_median_and_worst_over_polyps() -> None:
    a = frames("p" * 2 + "H" * 8 + "." * 20, "A")  # A alerted 0.2 s after it appears
    b = frames("." * 10 + "p" * 6 + "H" * 14, "B")  # B alerted 0.6 s after it appears
    c = frames("." * 20 + "p" * 10, "C")  # C never
    merged = [
        FrameOutcome(x.present | y.present | z.present, x.alert or y.alert, x.hits | y.hits, False)
        for x, y, z in zip(a, b, c, strict=True)
    ]
    metrics = video_metrics(merged, FPS)
    assert metrics.appearances == 3 and metrics.detected == 2
    assert metrics.polyp_sensitivity == round(2 / 3, 4)
    assert metrics.first_detection_s == {"median": 0.4, "worst": 0.6, "missed": 1}


def test_false_positive_events_by_duration() -> None:
    # 60 s of video: false-alarm runs of 0.3, 0.6, 1.2 and 2.5 s, the rest quiet.
    pattern = "f" * 3 + "." * 7 + "f" * 6 + "." * 4 + "f" * 12 + "." * 8 + "m" * 25
    pattern += "." * (600 - len(pattern))
    metrics = video_metrics(frames(pattern), FPS)
    # Per minute of video (1 minute): ≥ 0.5 s: 3 runs; ≥ 1 s: 2; ≥ 2 s: 1.
    assert metrics.fp_events_per_minute == {"0.5": 3.0, "1": 2.0, "2": 1.0}


def test_flicker_counts_every_switch_while_a_polyp_is_on_screen() -> None:
    # 3 s of polyp, alert on/off every 0.5 s: switches at 0.5, 1.0, 1.5, 2.0, 2.5 s = 5 in
    # 3 s of polyp on screen = 100 per minute; the switch at the polyp's end does not count.
    pattern = ("p" * 5 + "H" * 5) * 3 + "." * 10
    assert video_metrics(frames(pattern), FPS).flicker_per_minute == 100.0


def test_no_polyp_no_sensitivity() -> None:
    metrics = video_metrics(frames("." * 50), FPS)
    assert metrics.polyp_sensitivity is None and metrics.flicker_per_minute is None
    assert metrics.first_detection_s == {"median": None, "worst": None, "missed": 0}
    with pytest.raises(ValueError, match="frame_rate"):
        video_metrics(frames("."), 0)


def test_judging_a_frame_against_boxes_and_masks() -> None:
    truth_box = {"A": (10, 10, 30, 30)}
    # IoU of (12, 12, 32, 32) with (10, 10, 30, 30): 324 / 476 = 0.68 > 0.2: a hit.
    assert judge_frame(truth_box, [(12, 12, 32, 32)], True).hits == {"A"}
    # IoU of (25, 25, 45, 45): 25 / 775 = 0.03: a false positive, the polyp missed.
    outcome = judge_frame(truth_box, [(25, 25, 45, 45)], True)
    assert outcome.false_positive and not outcome.hits and outcome.present == {"A"}
    # The alert off: nothing is shown, so nothing is a hit or a false positive.
    assert judge_frame(truth_box, [(12, 12, 32, 32)], False) == FrameOutcome(
        frozenset({"A"}), False, frozenset(), False
    )
    mask = np.zeros((40, 40), bool)
    mask[20:25, 20:25] = True
    assert judge_frame({"A": mask}, [(18, 18, 22, 22)], True).hits == {"A"}
    predicted = np.zeros((40, 40), np.uint8)
    predicted[18:20, 18:20] = 255  # the predicted region inside the box misses the polyp
    assert judge_frame({"A": mask}, [(18, 18, 22, 22)], True, predicted).false_positive


def test_linking_boxes_into_polyps() -> None:
    named = link_boxes(
        [
            [(0, 0, 10, 10), (50, 50, 60, 60)],
            [(51, 51, 61, 61)],  # the second polyp moves; the first is gone
            [(1, 1, 11, 11), (52, 52, 62, 62)],  # the first comes back: a new appearance
        ]
    )
    assert [sorted(frame) for frame in named] == [
        ["polyp 1", "polyp 2"],
        ["polyp 2"],
        ["polyp 2", "polyp 3"],
    ]
    # A 30 px polyp moving 30 px a frame (boxes that do not overlap) stays one polyp; one 3
    # sizes away is another.
    moving = link_boxes([[(0, 0, 30, 30)], [(30, 0, 60, 30)], [(150, 0, 180, 30)]])
    assert [list(frame) for frame in moving] == [["polyp 1"], ["polyp 1"], ["polyp 2"]]
