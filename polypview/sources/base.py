"""What every source is: the protocol the pipeline reads through, and the clock types it is
tested with."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from polypview.frame import Frame

FALLBACK_FPS = 30.0  # what a live source is assumed to deliver when it reports no rate

Clock = Callable[[], float]
Sleep = Callable[[float], object]


class Source(Protocol):
    name: str  # in words, for the GUI and logs
    width: int
    height: int
    fps: float  # nominal rate (what the device or file says)
    live: bool  # frames are dropped, never queued

    def read(self) -> Frame | None: ...  # blocks until the next frame; None at the end

    def close(self) -> None: ...
