"""Whether a frame holds a polyp at all, and how sure the model is: the frame-level decision.

A mask with a few confident pixels on a fold is the typical false alarm; a real polyp lights up
a region. So a frame's score is the probability that at least ``area_fraction`` of the frame
reaches: the ``area_fraction`` quantile from the top of its probability map (with
``area_fraction`` 0, the peak). The frame holds a polyp when its score reaches ``threshold``;
otherwise its mask is cleared, so the overlay, the alert, the recorder's log and the export's
count all see the same decision.

Both numbers are chosen per model on validation data by ``python -m training.calibrate``
(polyp frames from Kvasir-SEG and PolypGen, polyp-free frames from a centre never trained on) and
stored in the model card's ``decision``. A card without one gets the plain rule (any pixel above
the mask threshold), which is what the app did before frames were scored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

# The score is taken on at most about this many pixels a side: 1080p maps are sampled with a
# stride, which moves a quantile of a smooth probability map by far less than its calibration.
SCORE_SIDE = 256


@dataclass(frozen=True, slots=True)
class FrameDecision:
    area_fraction: float  # the share of the frame that must reach the score
    threshold: float  # the score at which a frame holds a polyp

    def __post_init__(self) -> None:
        if not 0 <= self.area_fraction < 1:
            raise ValueError(f"area_fraction must be in [0, 1), got {self.area_fraction}")
        if not 0 <= self.threshold <= 1:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")

    @classmethod
    def from_card(cls, decision: dict[str, Any], mask_threshold: float) -> FrameDecision:
        """The card's calibrated decision, or the plain rule where it has none."""
        if not decision:
            return cls(0.0, mask_threshold)
        return cls(float(decision["area_fraction"]), float(decision["threshold"]))

    def score(self, probability: np.ndarray) -> float:
        """How sure the model is that the frame holds a polyp, in [0, 1]."""
        return frame_score(probability, self.area_fraction)

    def holds_polyp(self, score: float) -> bool:
        return score >= self.threshold


def sampled(probability: np.ndarray) -> np.ndarray:
    """The probability map's pixels, strided so that neither side exceeds about SCORE_SIDE."""
    height, width = probability.shape[:2]
    step = max(1, math.ceil(max(height, width) / SCORE_SIDE))
    return probability[::step, ::step].ravel()


def frame_score(probability: np.ndarray, area_fraction: float) -> float:
    """The probability that the top ``area_fraction`` of the frame's pixels reach."""
    pixels = sampled(probability)
    rank = min(len(pixels), max(1, math.ceil(area_fraction * len(pixels))))
    return float(np.partition(pixels, len(pixels) - rank)[len(pixels) - rank])


def top_quantiles(probability: np.ndarray, area_fractions: list[float]) -> np.ndarray:
    """``frame_score`` for several area fractions at once (calibration scores every frame so)."""
    pixels = np.sort(sampled(probability))[::-1]
    ranks = [min(len(pixels), max(1, math.ceil(a * len(pixels)))) for a in area_fractions]
    return pixels[np.array(ranks) - 1].astype(np.float64)
