"""The one owner of the running pipeline: its source, model, overlay, tracker and recording.

Widgets never touch the pipeline; they call the controller, which changes it without stopping the
video (a model loads on a background thread and is swapped in; overlay and tracker are reference
swaps), and they listen to its signals. Everything here runs in the GUI thread; what would block
(opening a source, loading a model, stopping a pipeline, finishing a recording, writing a snapshot)
goes through ``Background``.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
from PyQt6.QtCore import QObject, QTimer, pyqtSignal

from polypview import __version__
from polypview.errors import OutputError, PolypviewError
from polypview.gui.threads import Background, ResultBridge
from polypview.modelfile import ModelCard
from polypview.overlay import OverlayOptions
from polypview.pipeline import Pipeline, Result, Segment
from polypview.recorder import MB, Recorder, RecordingSummary, check_free_space
from polypview.segmenter import Segmentation, Segmenter
from polypview.sources import FileSource, Source, open_source
from polypview.tracking import Tracker

DEMO_CLIP = Path(__file__).resolve().parents[2] / "assets" / "demo.mp4"
MIN_FREE_WHILE_RECORDING = 100 * MB  # below this a recording stops, before the disk is full
POLL_MS = 500  # how often the recording and the pipeline's end are looked at
SEEK_STEP_S = 5.0  # Left/Right while playing


@dataclass(frozen=True, slots=True)
class DeviceMode:
    """What to ask a capture device for; None leaves that part to the device."""

    width: int | None = None
    height: int | None = None
    fps: float | None = None
    fourcc: str | None = None  # None: DeviceSource's own choice (MJPG)

    @property
    def label(self) -> str:
        if self.width is None:
            return "the device's own mode"
        rate = f"{self.fps:g} frames/s" if self.fps else "the device's rate"
        pixel_format = f", {self.fourcc}" if self.fourcc else ""
        return f"{self.width} x {self.height} at {rate}{pixel_format}"


def open_any(spec: str, mode: DeviceMode | None = None, loop: bool = False) -> Source:
    """The source ``spec`` names: a file or image folder (played in real time), a device
    (``device:N``, ``device:PATH`` or ``device:NAME``, with ``mode``), or anything else
    ``open_source`` reads."""
    if spec.startswith("device:"):
        mode = mode or DeviceMode()
        pixel_format = {"fourcc": mode.fourcc} if mode.fourcc else {}
        return open_source(spec, width=mode.width, height=mode.height, fps=mode.fps, **pixel_format)
    if "://" not in spec and not spec.startswith("synthetic:") and Path(spec).exists():
        return FileSource(spec, loop=loop)
    return open_source(spec)


class Unsegmented:
    """What segments until a model has loaded, or when none can: nothing; the video still plays."""

    def __call__(self, image: np.ndarray) -> Segmentation:
        shape = image.shape[:2]
        return Segmentation(np.zeros(shape, np.float32), np.zeros(shape, np.uint8))


class RecorderSlot:
    """A pipeline sink that hands each result to the current recorder, if any.

    The GUI thread sets ``recorder``; the capture thread reads it once per frame (one reference).
    """

    def __init__(self) -> None:
        self.recorder: Recorder | None = None

    def __call__(self, result: Result) -> None:
        recorder = self.recorder
        if recorder is not None:
            recorder.submit(result)


@dataclass(frozen=True, slots=True)
class Recording:
    recorder: Recorder
    folder: Path
    started: float  # time.monotonic()

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    @property
    def size_bytes(self) -> int:
        try:
            return self.recorder.path.stat().st_size
        except OSError:
            return 0


def write_snapshot(result: Result, stem: Path) -> tuple[Path, Path]:
    """The annotated picture and the raw frame beside it, as PNG."""
    paths = (stem.with_name(f"{stem.name}.png"), stem.with_name(f"{stem.name}-raw.png"))
    for path, image in zip(paths, (result.annotated, result.frame.image), strict=True):
        try:
            written = cv2.imwrite(str(path), image)
        except cv2.error:
            written = False
        if not written:
            raise OutputError(f"cannot write {path}")
    return paths


class PlayerController(QObject):
    """Plays one source at a time through the live pipeline; see the module doc."""

    frame_shown = pyqtSignal(object)  # the newest Result, for the view
    message = pyqtSignal(str)  # one plain line for the status bar
    source_changed = pyqtSignal()  # a new source plays
    playback_changed = pyqtSignal()  # paused, resumed, or the source ended
    model_changed = pyqtSignal()  # a model loaded or failed to: ask ``model_card``
    recording_changed = pyqtSignal(bool)
    recorded = pyqtSignal(object)  # the RecordingSummary of a finished recording with frames

    def __init__(
        self,
        *,
        overlay: OverlayOptions | None = None,
        tracking: bool = True,
        threshold: float = 0.5,
        tracker_factory: Callable[[], Tracker] = Tracker,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._bridge = ResultBridge(self)
        self._bridge.result_ready.connect(self._show)
        self._bridge.status.connect(self.message)
        self._background = Background(self)
        self._overlay = overlay or OverlayOptions()
        self._tracking = tracking
        self._threshold = threshold
        self._tracker_factory = tracker_factory
        self._segmenter: Segment = Unsegmented()
        self._model_card: ModelCard | None = None
        self._model_requests = itertools.count(1)
        self._model_wanted = 0  # the request whose answer counts; older answers are ignored
        self._loading: str | None = None
        self._source: Source | None = None
        self._spec: str | None = None
        self._pipeline: Pipeline | None = None
        self._ended = False
        self._recorder_slot = RecorderSlot()
        self._recording: Recording | None = None
        self._last_result: Result | None = None
        self._shut_down = False  # answers arriving after shutdown are turned away
        self._poll = QTimer(self)
        self._poll.timeout.connect(self._check)
        self._poll.start(POLL_MS)

    # --- what the widgets read ---------------------------------------------------------------

    @property
    def source(self) -> Source | None:
        return self._source

    @property
    def source_spec(self) -> str | None:
        return self._spec

    @property
    def seekable(self) -> bool:
        return isinstance(self._source, FileSource)

    @property
    def paused(self) -> bool:
        return isinstance(self._source, FileSource) and self._source.paused

    @property
    def ended(self) -> bool:
        return self._ended

    @property
    def model_card(self) -> ModelCard | None:
        return self._model_card

    @property
    def loading_model(self) -> str | None:
        return self._loading

    @property
    def backend(self) -> str | None:
        """The backend in use and what it runs on, in words; None before a model has loaded."""
        if not isinstance(self._segmenter, Segmenter):
            return None
        backend = self._segmenter.backend
        return f"{backend.name} {backend.precision} on {backend.device}"

    @property
    def recording(self) -> Recording | None:
        return self._recording

    @property
    def last_result(self) -> Result | None:
        return self._last_result

    @property
    def pipeline(self) -> Pipeline | None:
        return self._pipeline

    def stats(self) -> dict[str, float | int | None] | None:
        return None if self._pipeline is None else self._pipeline.stats.snapshot()

    # --- sources and playback ----------------------------------------------------------------

    def open(self, spec: str, mode: DeviceMode | None = None, *, loop: bool = False) -> None:
        """Open ``spec`` in the background; the current video plays on until it has opened, and
        keeps playing when it cannot be."""
        self.message.emit(f"opening {spec} ...")
        self._background.run(
            "open-source",
            lambda: open_any(spec, mode, loop),
            lambda source: self._replace_source(source, spec),
            self.message.emit,
        )

    def toggle_play(self) -> None:
        if self._ended and self.seekable and self._spec is not None:
            self.open(self._spec)  # play again from the start
            return
        if isinstance(self._source, FileSource):
            if self._source.paused:
                self._source.resume()
            else:
                self._source.pause()
            self.playback_changed.emit()

    def step(self) -> None:
        """One frame forward when paused; SEEK_STEP_S forward when playing."""
        if isinstance(self._source, FileSource):
            if self._source.paused:
                self._source.step()
            else:
                self.seek(self._source.position + SEEK_STEP_S)

    def step_back(self) -> None:
        """One frame back when paused; SEEK_STEP_S back when playing."""
        if isinstance(self._source, FileSource):
            back = 1 / self._source.fps if self._source.paused else SEEK_STEP_S
            self.seek(self._source.position - back)

    def seek(self, seconds: float) -> None:
        """Play from ``seconds``; when paused, show the frame there. Tracks start afresh."""
        source = self._source
        if not isinstance(source, FileSource):
            return
        duration = source.duration or 0.0
        target = max(0.0, min(seconds, max(0.0, duration - 1 / source.fps)))
        try:
            source.seek(target)
        except PolypviewError as error:
            self.message.emit(str(error))
            return
        if source.paused:
            source.step()
        if self._pipeline is not None and self._tracking:
            self._pipeline.replace_tracker(self._tracker_factory())

    def set_speed(self, speed: float) -> None:
        if isinstance(self._source, FileSource):
            self._source.speed = speed

    # --- model, overlay, filter --------------------------------------------------------------

    def load_model(self, reference: str, backend: str = "auto") -> None:
        """Load a model (installed name or card path) in the background and swap it in; a model
        that fails to load leaves the current one running."""
        request = self._model_wanted = next(self._model_requests)
        self._loading = reference
        self.model_changed.emit()
        threshold = self._threshold
        self._background.run(
            "load-model",
            lambda: Segmenter.open(reference, backend, threshold=threshold),
            lambda segmenter: self._answered(request, segmenter),
            lambda why: self._model_failed(request, reference, why),
        )

    def set_overlay(self, overlay: OverlayOptions) -> None:
        self._overlay = overlay
        if self._pipeline is not None:
            self._pipeline.overlay = overlay

    def set_threshold(self, threshold: float) -> None:
        self._threshold = threshold
        if isinstance(self._segmenter, Segmenter):
            self._segmenter.threshold = threshold  # a float swap, read once per frame

    def set_tracking(self, on: bool) -> None:
        self._tracking = on
        if self._pipeline is not None:
            self._pipeline.replace_tracker(self._tracker_factory() if on else None)

    # --- recording and snapshots -------------------------------------------------------------

    def start_recording(self, folder: Path) -> bool:
        """Record the annotated view into ``folder``; False (and a message) when it cannot."""
        source = self._source
        if source is None or self._recording is not None:
            return self._recording is not None
        path = folder / f"polypview-{time.strftime('%Y%m%d-%H%M%S')}.mp4"
        try:
            if not folder.is_dir():
                raise OutputError(f"output folder does not exist: {folder}")
            check_free_space(folder)
            recorder = Recorder(
                path,
                width=source.width,
                height=source.height,
                frame_rate=source.fps,
                about=self._about_recording(),
            )
        except PolypviewError as error:
            self.message.emit(f"cannot record: {error}")
            self.recording_changed.emit(False)
            return False
        self._recording = Recording(recorder, folder, time.monotonic())
        self._recorder_slot.recorder = recorder
        self.message.emit(f"recording to {path}")
        self.recording_changed.emit(True)
        return True

    def _about_recording(self) -> dict:
        """What the recording's log says saw the video: for the report made from it later."""
        card = self._model_card
        about: dict = {
            "polypview": __version__,
            "started": datetime.now().astimezone().isoformat(timespec="seconds"),
            "source": self._spec,
            "model": card.name if card else None,
            "weights_sha256": (card.sha256 or None) if card else None,
            "backend": self.backend,
        }
        if self._tracking:
            about["filter"] = asdict(self._tracker_factory().settings)
        return about

    def stop_recording(self, reason: str | None = None, *, wait: bool = False) -> None:
        """Stop feeding the recorder and finish its file (in the background unless ``wait``)."""
        recording, self._recording = self._recording, None
        if recording is None:
            return
        self._recorder_slot.recorder = None
        self.recording_changed.emit(False)
        if wait:
            self._recorded(recording.recorder.stop(), reason)
            return
        self._background.run(
            "finish-recording",
            recording.recorder.stop,
            lambda summary: self._recorded(summary, reason),
            self.message.emit,
        )

    def snapshot(self, folder: Path) -> None:
        """Save the picture on screen, annotated and raw, as two PNGs in ``folder``."""
        result = self._last_result
        if result is None:
            self.message.emit("no picture to save yet")
            return
        stem = folder / f"snapshot-{time.strftime('%Y%m%d-%H%M%S')}-frame{result.frame.index}"
        self._background.run(
            "snapshot",
            lambda: write_snapshot(result, stem),
            lambda paths: self.message.emit(f"saved {paths[0].name} and {paths[1].name}"),
            lambda why: self.message.emit(f"cannot save the snapshot: {why}"),
        )

    def shutdown(self) -> None:
        """Finish the recording, stop the pipeline and wait for the background work (quitting)."""
        self._shut_down = True
        self._poll.stop()
        self.stop_recording(wait=True)
        if self._pipeline is not None:
            self._pipeline.source.close()
            self._pipeline.stop()
            self._pipeline = None
        self._background.wait(timeout=5.0)
        if self._source is not None:
            self._source.close()

    # --- the GUI thread's side of the pipeline -----------------------------------------------

    def _show(self, result: Result) -> None:
        self._last_result = result
        self.frame_shown.emit(result)

    def _replace_source(self, source: Source, spec: str) -> None:
        """Retire the running pipeline, then start one on ``source`` once the old one has stopped
        (the two never segment at once: a backend serves one thread)."""
        if self._shut_down:
            source.close()
            return
        if self._recording is not None:
            self.stop_recording("the video source changed")
        old, self._pipeline = self._pipeline, None
        self._source, self._spec, self._ended = source, spec, False

        def retire() -> None:
            if old is not None:
                old.source.close()
                old.stop()

        self._background.run(
            "stop-pipeline", retire, lambda _: self._start(source), self.message.emit
        )

    def _start(self, source: Source) -> None:
        if source is not self._source or self._shut_down:  # another one was opened meanwhile
            return
        self._pipeline = Pipeline(
            source,
            self._segmenter,
            overlay=self._overlay,
            tracker=self._tracker_factory() if self._tracking else None,
            sinks=[self._bridge.post, self._recorder_slot],
            on_status=self._bridge.report,
        ).start()
        self.message.emit(f"playing {source.name}")
        self.source_changed.emit()

    def use_segmenter(self, segmenter: Segmenter) -> None:
        """Segment from the next frame on with ``segmenter``, the video playing on."""
        self._model_wanted = next(self._model_requests)  # a load still running is outdated
        segmenter.threshold = self._threshold
        self._segmenter, self._model_card, self._loading = segmenter, segmenter.card, None
        if self._pipeline is not None:
            self._pipeline.replace_segmenter(segmenter)
        self.message.emit(f"model {segmenter.card.name} running on {self.backend}")
        self.model_changed.emit()

    def _answered(self, request: int, segmenter: Segmenter) -> None:
        if request == self._model_wanted and not self._shut_down:
            self.use_segmenter(segmenter)

    def _model_failed(self, request: int, reference: str, why: str) -> None:
        if request != self._model_wanted:
            return
        self._loading = None
        kept = self._model_card.name if self._model_card else "no model"
        self.message.emit(f"could not load model {reference}: {why} (keeping {kept})")
        self.model_changed.emit()

    def _recorded(self, summary: RecordingSummary, reason: str | None) -> None:
        line = (
            f"recorded {summary.frames_written} frames ({summary.seconds:.1f} s) to {summary.path}"
        )
        if summary.dropped:
            line += f", {summary.dropped} frames dropped"
        if reason or summary.error:
            line += f"; stopped: {reason or summary.error}"
        self.message.emit(line)
        if summary.frames_written:
            self.recorded.emit(summary)

    def _check(self) -> None:
        """Every POLL_MS: end a recording that failed or is about to fill the disk; notice the
        end of the source."""
        recording = self._recording
        if recording is not None:
            if recording.recorder.error is not None:
                self.stop_recording(recording.recorder.error)
            else:
                try:
                    check_free_space(recording.folder, MIN_FREE_WHILE_RECORDING)
                except OutputError as error:
                    self.stop_recording(str(error))
        pipeline = self._pipeline
        if pipeline is not None and not pipeline.running and not self._ended:
            self._ended = True
            self.playback_changed.emit()
