"""The one data type that travels through the pipeline."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Frame:
    """A decoded picture and where it sits in its stream.

    ``pts`` is the presentation time in seconds from the start of the stream; ``capture_time`` is
    ``time.monotonic()`` when the source produced the frame, so later stages can measure delay.
    """

    index: int
    pts: float
    image: np.ndarray  # H x W x 3, BGR, uint8, C-contiguous
    capture_time: float
