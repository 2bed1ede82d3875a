"""The frame-level decision: a score per frame, the mask cleared where the card's rule says no."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from polypview.decision import FrameDecision, frame_score, top_quantiles
from polypview.errors import ModelError
from polypview.modelfile import ModelCard
from polypview.segmenter import Segmenter
from polypview.tracking import SmoothedSegmenter
from training.calibrate import OperatingPoint, choose, curve


class ConstantBackend:
    name = "constant"
    device = "test"

    def __init__(self, logits: np.ndarray) -> None:
        self.logits = logits

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return self.logits[None, None]


def speck_logits(side: int) -> np.ndarray:
    """64 x 64 logits: confident (p 0.88) on a side x side square, sure background elsewhere."""
    logits = np.full((64, 64), -8.0, np.float32)
    logits[10 : 10 + side, 10 : 10 + side] = 2.0
    return logits


def test_score_is_the_probability_the_top_area_reaches() -> None:
    probability = np.zeros((100, 100), np.float32)
    probability[:5, :10] = 0.9  # 0.5% of the frame
    probability[0, 0] = 1.0
    assert frame_score(probability, 0.0) == 1.0  # the peak
    assert frame_score(probability, 0.005) == pytest.approx(0.9)
    assert frame_score(probability, 0.01) == 0.0  # no 1% region reaches anything
    np.testing.assert_allclose(top_quantiles(probability, [0.0, 0.005, 0.01]), [1.0, 0.9, 0.0])


def test_a_speck_is_cleared_and_a_region_kept(stand_in_model: ModelCard) -> None:
    card = replace(stand_in_model, decision={"area_fraction": 0.01, "threshold": 0.8})
    frame = np.zeros((128, 128, 3), np.uint8)
    speck = Segmenter(card, ConstantBackend(speck_logits(3)))(frame)  # 0.2% of the frame
    assert not speck.has_polyp and not speck.mask.any() and speck.score < 0.8
    assert speck.probability.max() > 0.8  # the map itself is left as the model made it
    region = Segmenter(card, ConstantBackend(speck_logits(16)))(frame)  # 6% of the frame
    assert region.has_polyp and region.score == pytest.approx(0.88, abs=0.01)


def test_smoothing_decides_once_on_the_averaged_map(
    stand_in_model: ModelCard, monkeypatch: pytest.MonkeyPatch
) -> None:
    card = replace(stand_in_model, decision={"area_fraction": 0.01, "threshold": 0.8})
    segmenter = Segmenter(card, ConstantBackend(speck_logits(16)))
    scored = []
    score = FrameDecision.score
    monkeypatch.setattr(FrameDecision, "score", lambda self, p: scored.append(1) or score(self, p))
    smoothed = SmoothedSegmenter(segmenter, alpha=0.5)
    frame = np.zeros((128, 128, 3), np.uint8)
    results = [smoothed(frame) for _ in range(3)]
    assert len(scored) == 3 and all(result.has_polyp for result in results)


def test_without_a_decision_any_pixel_over_the_threshold_makes_a_polyp_frame(
    stand_in_model: ModelCard,
) -> None:
    segmenter = Segmenter(stand_in_model, ConstantBackend(speck_logits(3)))
    assert segmenter.decision == FrameDecision(0.0, stand_in_model.threshold)
    assert segmenter(np.zeros((128, 128, 3), np.uint8)).has_polyp


@pytest.mark.parametrize(
    "decision",
    [{"threshold": 0.7}, {"area_fraction": 0.01, "threshold": 1.5}, {"area_fraction": "x"}],
)
def test_a_malformed_decision_is_one_clear_error(
    stand_in_model: ModelCard, tmp_path, decision: dict
) -> None:
    record = replace(stand_in_model, folder=tmp_path).to_json() | {"decision": decision}
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(record))
    with pytest.raises(ModelError, match="malformed decision"):
        ModelCard.from_file(path)


def test_calibration_takes_the_point_with_most_margin_and_falls_back_honestly() -> None:
    rng = np.random.default_rng(0)
    polyp = rng.uniform(0.85, 1.0, (200, 6))  # confident on every polyp frame
    negative = rng.uniform(0.0, 0.7, (200, 6))  # never confident on a clean frame
    chosen = choose(curve(polyp, negative), 0.05, 0.05)
    assert chosen.frames_flagged == 0 and chosen.frames_missed == 0
    assert 0.7 <= chosen.threshold <= 0.85

    points = [OperatingPoint(0.01, 0.5, 0.20, 0.00), OperatingPoint(0.01, 0.9, 0.04, 0.30)]
    assert choose(points, 0.05, 0.05).threshold == 0.9  # false alarms first, misses reported
    assert choose(points, 0.01, 0.05).frames_flagged == 0.04  # the quietest there is


def test_calibration_refuses_decisions_resting_on_one_pixel_unless_asked() -> None:
    points = [OperatingPoint(0.0, 0.6, 0.03, 0.10), OperatingPoint(0.001, 0.5, 0.05, 0.20)]
    assert choose(points, 0.05, 0.05).area_fraction == 0.001
    assert choose(points, 0.05, 0.05, min_area=0.0).area_fraction == 0.0
    with pytest.raises(ValueError, match="no candidate area"):
        choose(points, 0.05, 0.05, min_area=0.5)
