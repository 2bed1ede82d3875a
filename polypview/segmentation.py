"""One frame's segmentation: the mask at the frame's size and the probability map behind it."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np


@dataclass(frozen=True, slots=True)
class Segmentation:
    """The mask, and the probability it was thresholded from.

    ``probability_map`` is at the frame's size from the CPU backends, and at the model's size
    from the GPU ones, which bring back only that and the mask; ``probability`` is always at the
    frame's size, resized (bilinear, as the mask was made) on first use. Consumers that only
    average it over regions can take ``probability_map`` at whatever size it has.
    """

    probability_map: np.ndarray  # float32 in [0, 1], at the frame's size or the model's
    mask: np.ndarray  # H x W uint8, 255 where polyp, 0 elsewhere; empty when the frame has none
    score: float = 0.0  # how sure the model is that the frame holds a polyp (polypview.decision)
    _probability: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def probability(self) -> np.ndarray:
        """H x W float32 in [0, 1], at the frame's size."""
        full = self._probability
        if full is None:
            height, width = self.mask.shape
            full = self.probability_map
            if full.shape != (height, width):
                full = cv2.resize(full, (width, height), interpolation=cv2.INTER_LINEAR)
            object.__setattr__(self, "_probability", full)  # a cache, not a change of value
        return full

    @property
    def has_polyp(self) -> bool:
        """The frame-level decision: the segmenter clears the mask of a frame it rules out."""
        return bool(self.mask.any())
