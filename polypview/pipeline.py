"""Capture -> segment -> overlay -> sinks: the wiring of the app, the exporter and the benchmark.

Two modes, one per use:

- ``live`` (the app, the benchmark): video is never held back for inference. The capture thread
  shows every frame at once with the newest mask the segmenter has finished; the segmenter takes
  only the newest frame from a one-slot ``Mailbox``, so frames it had no time for are dropped and
  counted, never queued. A mask older than ``stale_after_s`` is hidden and the result says so.
- ``lockstep`` (export, analysis): every frame is segmented and carries its own mask, in order,
  through a small bounded queue; a slow segmenter slows the reading (backpressure), nothing drops.

Threads and handoffs::

    live      capture thread:   source.read() -> Mailbox.put(frame), never blocks
                                -> draw the published Annotation (if fresh) -> stats -> sinks
              segmenter thread: Mailbox.get() -> segmenter -> tracker -> publish Annotation
                                (one reference swap: mask, frame index and capture time together)
    lockstep  capture thread:   source.read() -> bounded queue.put (blocks when full)
              segmenter thread: queue.get() -> segmenter -> tracker -> draw -> stats -> sinks

Sinks run on a pipeline thread, once per shown frame. In live mode they must return at once:
post the Result to your own mailbox (the GUI) or to a submit that never blocks (the recorder),
since a slow sink delays the video. In lockstep mode a sink may block; that is backpressure.

A source that fails (``VideoError``) is reported through ``on_status`` in one line; a live source
with ``try_reconnect`` is retried every ``reconnect_interval_s`` until it comes back
("reconnected") or the pipeline is stopped; any other source ends the pipeline. Meanwhile
``source_failed`` is True and ``last_frame`` keeps the last good frame; no extra Result is sent.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Generic, Literal, TypeVar

import numpy as np

from polypview.errors import PolypviewError, VideoError
from polypview.frame import Frame
from polypview.overlay import OverlayOptions, draw
from polypview.segmenter import Segmentation
from polypview.tracking import Detection, SmoothedSegmenter, Tracker

if TYPE_CHECKING:
    from polypview.sources import Source

Segment = Callable[[np.ndarray], Segmentation]  # a Segmenter, or anything called like one
Sink = Callable[["Result"], object]  # what it returns is ignored (Recorder.submit)
Clock = Callable[[], float]

DELAY_SAMPLES = 2000  # delays kept for the percentiles: half a minute at 60 frames/s
RATE_WINDOW_S = 3.0  # frame rates are averaged over this many seconds
LOCKSTEP_QUEUE_SIZE = 4  # frames read ahead of the segmenter in lockstep mode
RECONNECT_INTERVAL_S = 1.0
_POLL_S = 0.1  # how often a thread blocked on a bounded queue looks whether it should stop

logger = logging.getLogger(__name__)
T = TypeVar("T")


class Mailbox(Generic[T]):
    """A one-slot handoff that keeps only the newest item: the writer never waits, memory is flat.

    ``put`` overwrites an item nobody took yet, and ``close`` discards one; both count it in
    ``dropped``, so every item put is either got or dropped. ``get`` waits for an item; it returns
    None on timeout and, from ``close`` on, at once (so items must not be None).
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._item: T | None = None
        self._closed = False
        self.dropped = 0

    def put(self, item: T) -> bool:
        """Leave ``item`` for the reader; True when it replaced an unread one. No-op once closed."""
        with self._changed:
            if self._closed:
                return False
            replaced = self._item is not None
            self.dropped += replaced
            self._item = item
            self._changed.notify()
        return replaced

    def get(self, timeout: float | None = None) -> T | None:
        with self._changed:
            self._changed.wait_for(lambda: self._item is not None or self._closed, timeout)
            if self._closed:
                return None
            item, self._item = self._item, None
            return item

    def close(self) -> None:
        """Wake every waiter; later ``get`` calls return None and ``put`` calls are ignored."""
        with self._changed:
            if not self._closed:
                self.dropped += self._item is not None
                self._item, self._closed = None, True
            self._changed.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed


@dataclass(frozen=True, slots=True)
class Result:
    """What the pipeline hands to its sinks for every SHOWN frame.

    When ``stale`` is True the mask is hidden (``mask`` None, no detections, no alert) and
    ``mask_index``/``mask_capture_time`` still say how old the hidden one is.
    """

    frame: Frame  # the frame shown (the newest one, in live mode)
    annotated: np.ndarray  # frame.image with the overlay drawn (a new array)
    mask: np.ndarray | None  # the mask drawn, None when there is none or it is stale
    mask_index: int | None  # index of the frame the mask was computed on
    mask_capture_time: float | None  # capture_time of that frame
    stale: bool  # a mask exists but is older than the limit, so it is hidden
    detections: tuple[Detection, ...]
    alert: bool  # the persistence filter says: polyp
    shown_time: float  # clock() when handed to the sinks
    score: float | None = None  # the frame-level polyp score of the mask shown


@dataclass(frozen=True, slots=True)
class Annotation:
    """The segmenter's answer for one frame, published as one object so no reader sees a mix."""

    mask: np.ndarray
    frame_index: int
    capture_time: float
    detections: tuple[Detection, ...]
    alert: bool
    score: float = 0.0  # the frame-level polyp score (polypview.decision)


def analyse(frame: Frame, segmenter: Segment, tracker: Tracker | None) -> Annotation:
    """Segment one frame and, with a tracker, update the tracks from its mask."""
    segmentation = segmenter(frame.image)
    detections: tuple[Detection, ...] = ()
    alert = False
    if tracker is not None:
        update = tracker.update(segmentation.mask, segmentation.probability_map, frame.capture_time)
        detections, alert = update.detections, update.alert
    return Annotation(
        segmentation.mask, frame.index, frame.capture_time, detections, alert, segmentation.score
    )


def annotate(
    frame: Frame,
    annotation: Annotation | None,
    overlay: OverlayOptions,
    clock: Clock,
    stale_after_s: float = math.inf,
) -> Result:
    """``frame`` with ``annotation`` drawn on it unless that is older than ``stale_after_s``.

    Age is measured from the annotated frame's capture to now; ``shown_time`` is taken after
    drawing, so the video delay includes the drawing.
    """
    if annotation is None:
        return Result(frame, frame.image.copy(), None, None, None, False, (), False, clock())
    fresh = clock() - annotation.capture_time <= stale_after_s
    return Result(
        frame=frame,
        annotated=draw(frame.image, annotation.mask, overlay) if fresh else frame.image.copy(),
        mask=annotation.mask if fresh else None,
        mask_index=annotation.frame_index,
        mask_capture_time=annotation.capture_time,
        stale=not fresh,
        detections=annotation.detections if fresh else (),
        alert=annotation.alert and fresh,
        shown_time=clock(),
        score=annotation.score if fresh else None,
    )


def lockstep_results(
    source: Source,
    segmenter: Segment,
    overlay: OverlayOptions,
    tracker: Tracker | None = None,
    *,
    clock: Clock = time.monotonic,
) -> Iterator[Result]:
    """Every frame of ``source`` in order with its own mask, computed in the caller's thread.

    The exporter's loop: no thread is started (a file source already decodes ahead in its own),
    and a ``VideoError`` from the source or an error from the segmenter reaches the caller as is.
    Offline, time is the video's: each frame's ``capture_time`` is its ``pts``, so the tracker's
    hold counts video seconds and a rerun, fast or slow, here or on another machine, finds the
    same tracks.
    """
    while (frame := source.read()) is not None:
        frame = replace(frame, capture_time=frame.pts)
        yield annotate(frame, analyse(frame, segmenter, tracker), overlay, clock)


class _Ring:
    """The last ``size`` samples of one figure in a fixed array: O(1) to add."""

    def __init__(self, size: int) -> None:
        self._values = np.zeros(size)
        self._added = 0

    def add(self, value: float) -> None:
        self._values[self._added % len(self._values)] = value
        self._added += 1

    def percentile(self, q: float) -> float | None:
        held = self._values[: min(self._added, len(self._values))]
        return float(np.percentile(held, q)) if len(held) else None


class Stats:
    """Delays and rates of the shown frames, for the status bar and the benchmark.

    Each update is O(1) and memory is fixed: percentiles are taken over the last ``samples``
    delays and rates over the last ``window_s`` seconds, both only when ``snapshot`` asks.
    Video delay is shown_time - frame.capture_time; annotation delay is shown_time -
    mask_capture_time, for frames that show a mask.
    """

    def __init__(
        self,
        clock: Clock = time.monotonic,
        samples: int = DELAY_SAMPLES,
        window_s: float = RATE_WINDOW_S,
    ) -> None:
        self._clock = clock
        self._window_s = window_s
        self._lock = threading.Lock()
        self._video_delay = _Ring(samples)
        self._annotation_delay = _Ring(samples)
        self._shown_at: deque[float] = deque(maxlen=samples)
        self._segmented_at: deque[float] = deque(maxlen=samples)
        self.frames_shown = 0
        self.frames_segmented = 0
        self.dropped = 0
        self.stale = 0

    def record_shown(self, result: Result) -> None:
        with self._lock:
            self.frames_shown += 1
            self.stale += result.stale
            self._shown_at.append(result.shown_time)
            self._video_delay.add(result.shown_time - result.frame.capture_time)
            if result.mask is not None and result.mask_capture_time is not None:
                self._annotation_delay.add(result.shown_time - result.mask_capture_time)

    def record_segmented(self, at: float) -> None:
        with self._lock:
            self.frames_segmented += 1
            self._segmented_at.append(at)

    def record_dropped(self) -> None:
        with self._lock:
            self.dropped += 1

    def snapshot(self) -> dict[str, float | int | None]:
        """Median and p99 delays in ms (None before the first sample), rates in frames/s."""
        with self._lock:
            now = self._clock()
            figures: dict[str, float | int | None] = {}
            for name, ring in (
                ("video", self._video_delay),
                ("annotation", self._annotation_delay),
            ):
                for q in (50, 99):
                    value = ring.percentile(q)
                    figures[f"{name}_delay_ms_p{q}"] = None if value is None else value * 1000
            figures["shown_fps"] = self._rate(self._shown_at, now)
            figures["segmented_fps"] = self._rate(self._segmented_at, now)
            return figures | {
                "dropped": self.dropped,
                "frames_shown": self.frames_shown,
                "frames_segmented": self.frames_segmented,
                "stale": self.stale,
            }

    def _rate(self, times: deque[float], now: float) -> float:
        """Events per second from the oldest event in the window to now: it falls in a stall."""
        recent = [at for at in times if at > now - self._window_s]
        if len(recent) < 2 or now <= recent[0]:
            return 0.0
        return (len(recent) - 1) / (now - recent[0])


class Pipeline:
    """Runs one source through one segmenter to the sinks on two threads; see the module doc.

    ``start``/``stop`` or ``with``; ``wait`` returns once the source has ended or failed for good.
    ``clock`` must be the clock the source stamps ``capture_time`` with (``time.monotonic``).

    While it runs, another thread (the GUI's) may assign ``overlay`` and call
    ``replace_segmenter`` and ``replace_tracker``: each is a reference swap, atomic under the GIL,
    that the pipeline's threads read once per frame, so a change applies from the next frame on
    and the frame in progress finishes with what it started with.
    """

    def __init__(
        self,
        source: Source,
        segmenter: Segment,
        *,
        overlay: OverlayOptions,
        tracker: Tracker | None = None,
        mode: Literal["live", "lockstep"] = "live",
        stale_after_s: float = 0.25,
        sinks: Sequence[Sink] = (),
        on_status: Callable[[str], None] | None = None,
        reconnect_interval_s: float = RECONNECT_INTERVAL_S,
        queue_size: int = LOCKSTEP_QUEUE_SIZE,
        clock: Clock = time.monotonic,
    ) -> None:
        if mode not in ("live", "lockstep"):
            raise ValueError(f"mode must be 'live' or 'lockstep', got {mode!r}")
        if queue_size < 1:  # queue.Queue(0) would be unbounded
            raise ValueError(f"queue_size must be at least 1, got {queue_size}")
        self.source = source
        self._unsmoothed = segmenter
        self.segmenter = _smoothed(segmenter, tracker)
        self.overlay = overlay
        self.tracker = tracker
        self.mode = mode
        self.stale_after_s = stale_after_s
        self.sinks = tuple(sinks)
        self.stats = Stats(clock)
        self._report = on_status or logger.warning
        self._reconnect_interval_s = reconnect_interval_s
        self._clock = clock
        self._stop = threading.Event()
        self._newest_frame: Mailbox[Frame] = Mailbox()  # live: capture -> segmenter
        self._frames: queue.Queue[Frame | None] = queue.Queue(queue_size)  # lockstep; None: end
        self._annotation: Annotation | None = None  # live: segmenter -> capture
        self._segmenter_failing = False
        self._last_frame: Frame | None = None
        self._source_failed = False
        self._threads: list[threading.Thread] = []

    @property
    def last_frame(self) -> Frame | None:
        """The last frame the source delivered: the picture to keep showing when it fails."""
        return self._last_frame

    @property
    def source_failed(self) -> bool:
        """The source has failed and has not (yet) reconnected."""
        return self._source_failed

    @property
    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def replace_segmenter(self, segmenter: Segment) -> None:
        """Segment the next frames with ``segmenter`` (a model switch) without stopping the video.

        The mask on screen stays until the new segmenter's first one replaces it (or it goes
        stale); the tracker keeps its tracks, since the polyp on screen has not moved.
        """
        self._unsmoothed = segmenter
        self.segmenter = _smoothed(segmenter, self.tracker)

    def replace_tracker(self, tracker: Tracker | None) -> None:
        """Filter the next masks with ``tracker`` (None: no persistence filter, no detections).

        Its ``smoothing`` applies at once: the segmenter is wrapped anew, its average restarted.
        """
        self.segmenter = _smoothed(self._unsmoothed, tracker)
        self.tracker = tracker

    def start(self) -> Pipeline:
        if self._threads:
            raise RuntimeError("a pipeline runs once; make a new one")
        live = self.mode == "live"
        loops = {
            "capture": self._capture_live if live else self._capture_lockstep,
            "segmenter": self._segment_live if live else self._segment_lockstep,
        }
        self._threads = [
            threading.Thread(
                target=self._guarded, args=(loop,), name=f"polypview-{name}", daemon=True
            )
            for name, loop in loops.items()
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop both threads and wait for them.

        The capture thread first finishes the ``read`` it is in: a frame period for a device, a
        stream's stall timeout at worst. A paused ``FileSource`` blocks until resumed or closed,
        so close such a source first (every source's ``close`` may come from another thread).
        """
        self._stop.set()
        self._newest_frame.close()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the pipeline ends by itself; True when it has."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not self.running

    def __enter__(self) -> Pipeline:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _guarded(self, loop: Callable[[], None]) -> None:
        """Run a thread's loop; an unexpected error is reported and stops the whole pipeline."""
        try:
            loop()
        except Exception as error:
            self._report(f"pipeline stopped: {_describe(error)}")
            self._stop.set()
            self._newest_frame.close()

    def _read_frames(self) -> Iterator[Frame]:
        """The source's frames until it ends, fails for good, or the pipeline stops."""
        retry = self.source.live and hasattr(self.source, "try_reconnect")
        while not self._stop.is_set():
            try:
                frame = self.source.read()
            except VideoError as error:
                self._source_failed = True
                if not retry:
                    self._report(f"video lost: {error}")
                    return
                every = f"{self._reconnect_interval_s:g}"
                self._report(f"video lost: {error}; reconnecting every {every} s")
                if not self._reconnect():
                    return
                self._source_failed = False
                self._report(f"reconnected to {self.source.name}")
                continue
            if frame is None:
                self._report(f"end of {self.source.name}")
                return
            self._last_frame = frame
            yield frame

    def _reconnect(self) -> bool:
        while not self._stop.wait(self._reconnect_interval_s):
            if self.source.try_reconnect():
                self._annotation = None  # a mask of the old video never shows on the new one
                return True
        return False

    def _deliver(self, result: Result) -> None:
        self.stats.record_shown(result)
        for sink in self.sinks:
            sink(result)

    def _analyse_reported(self, frame: Frame) -> Annotation | None:
        """The frame's annotation, or None after reporting the failure (once per run of them)."""
        try:
            annotation = analyse(frame, self.segmenter, self.tracker)
        except Exception as error:
            if not self._segmenter_failing:
                self._report(f"segmentation failed: {_describe(error)}")
            self._segmenter_failing = True
            return None
        if self._segmenter_failing:
            self._report("segmentation resumed")
        self._segmenter_failing = False
        return annotation

    def _capture_live(self) -> None:
        try:
            for frame in self._read_frames():
                if self._newest_frame.put(frame):
                    self.stats.record_dropped()
                self._deliver(
                    annotate(frame, self._annotation, self.overlay, self._clock, self.stale_after_s)
                )
        finally:
            self._newest_frame.close()

    def _segment_live(self) -> None:
        while (frame := self._newest_frame.get()) is not None:
            annotation = self._analyse_reported(frame)
            if annotation is not None:
                self._annotation = annotation
                self.stats.record_segmented(self._clock())

    def _capture_lockstep(self) -> None:
        try:
            for frame in self._read_frames():
                if not self._offer(frame):
                    return
        finally:
            self._offer(None)

    def _segment_lockstep(self) -> None:
        while (frame := self._take()) is not None:
            annotation = self._analyse_reported(frame)
            if annotation is None:  # in lockstep every frame needs its own mask: give up
                self._stop.set()
                return
            self.stats.record_segmented(self._clock())
            self._deliver(annotate(frame, annotation, self.overlay, self._clock))

    def _offer(self, item: Frame | None) -> bool:
        """Put into the bounded queue, waiting for room; False when the pipeline stops first."""
        while not self._stop.is_set():
            try:
                self._frames.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _take(self) -> Frame | None:
        """The next frame from the bounded queue; None at its end or when the pipeline stops."""
        while not self._stop.is_set():
            try:
                return self._frames.get(timeout=_POLL_S)
            except queue.Empty:
                continue
        return None


def _smoothed(segmenter: Segment, tracker: Tracker | None) -> Segment:
    """``segmenter`` behind the probability smoothing that ``tracker``'s settings ask for."""
    if tracker is not None and tracker.settings.smoothing > 0:
        return SmoothedSegmenter(segmenter, tracker.settings.smoothing)
    return segmenter


def _describe(error: Exception) -> str:
    """One line: our own errors already read as sentences; others need their type."""
    if isinstance(error, PolypviewError):
        return str(error)
    return f"{type(error).__name__}: {error}"
