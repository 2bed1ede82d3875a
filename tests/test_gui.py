"""The desktop window, offscreen: real pipeline, short clips, untrained stand-in models."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QMessageBox

from conftest import make_stand_in
from polypview.backends import create_backend
from polypview.errors import OutputError, VideoError
from polypview.frame import Frame
from polypview.gui import controller as controller_module
from polypview.gui import report_dialog
from polypview.gui.chime import DetectionChime
from polypview.gui.controller import DEMO_CLIP, DeviceMode, PlayerController
from polypview.gui.device_dialog import DeviceDialog
from polypview.gui.main_window import MainWindow
from polypview.gui.overlay_panel import OverlayChoices
from polypview.gui.report_dialog import ReportDialog
from polypview.gui.settings import AppSettings
from polypview.gui.threads import CancellableJob, ResultBridge
from polypview.gui.video_view import as_qimage
from polypview.modelfile import ModelCard, installed_models, load_network
from polypview.overlay import OverlayStyle
from polypview.pipeline import Result
from polypview.segmenter import Segmentation, Segmenter
from polypview.sources import CaptureMode, DeviceInfo
from polypview.video import VideoSource
from videos import write_clip

WAIT_MS = 15_000  # generous: two shared cores; a passing test waits far less
RED = (0, 0, 255)  # BGR
RECT = (slice(30, 90), slice(40, 120))  # rows, columns of the fixed mask in a 160 x 120 clip


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("gui-models")
    for name in ("alpha", "beta"):
        make_stand_in(folder, "unet", name=name, metrics={"test120": {"dice": 0.25}})
    return folder


@pytest.fixture
def looping_clip(tmp_path: Path) -> Path:
    return write_clip(tmp_path / "clip.mp4", 25, size=(160, 120))


@pytest.fixture
def settings(tmp_path: Path) -> AppSettings:
    return AppSettings.at(tmp_path / "settings.ini")


def make_window(qtbot, settings: AppSettings, models: Path, **overrides) -> MainWindow:
    choices = replace(settings.overlay, **overrides)
    settings.overlay = choices
    settings.backend = "torch"  # the stand-ins convert to nothing: fast to load
    controller = PlayerController(
        overlay=choices.overlay_options(), tracking=choices.tracking, threshold=choices.threshold
    )
    window = MainWindow(controller, settings, lambda: installed_models(models), ["torch"])
    qtbot.addWidget(window)
    window.show()
    return window


@pytest.fixture
def window(qtbot, settings: AppSettings, models: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(MainWindow, "confirm_quit_while_recording", lambda self: True)
    window = make_window(qtbot, settings, models)
    yield window
    window.close()
    assert not window.controller.pipeline, "closing must stop the pipeline"


def wait_frames(qtbot, window: MainWindow, count: int) -> None:
    start = window.view.painted
    qtbot.waitUntil(lambda: window.view.painted >= start + count, timeout=WAIT_MS)


def play_into(qtbot, window: MainWindow, clip: Path, folder: Path) -> None:
    """The clip playing, looped, with recordings and snapshots going to ``folder``."""
    window.record_control.set_folder(folder)
    window.open_source(str(clip), loop=True)
    wait_frames(qtbot, window, 1)


def record_a_few_frames(qtbot, window: MainWindow, clip: Path, folder: Path):
    """A recording started with the Record button, once it has written a few frames."""
    play_into(qtbot, window, clip, folder)
    window.record_control.record_button.click()
    recording = window.controller.recording
    qtbot.waitUntil(lambda: recording.recorder.frames_written >= 3, timeout=WAIT_MS)
    return recording


def card(models: Path, name: str) -> ModelCard:
    return next(c for c in installed_models(models) if c.name == name)


class RectangleSegmenter(Segmenter):
    """A real segmenter whose answer is a fixed rectangle, so the overlay's place is known."""

    def __call__(self, frame: np.ndarray) -> Segmentation:
        mask = np.zeros(frame.shape[:2], np.uint8)
        mask[RECT] = 255
        return Segmentation(mask.astype(np.float32) / 255, mask)


def rectangle_segmenter(model: ModelCard) -> RectangleSegmenter:
    return RectangleSegmenter(model, create_backend("torch", load_network(model), model))


def test_window_opens_on_the_demo_and_frames_advance(qtbot, window: MainWindow, models: Path):
    window.controller.load_model(str(card(models, "alpha").card_path), "torch")
    window.open_source(str(DEMO_CLIP), loop=True)
    wait_frames(qtbot, window, 8)
    first = window.view.result
    assert first is not None and first.frame.image.shape == (576, 720, 3)
    wait_frames(qtbot, window, 5)
    assert window.view.result.frame.index > first.frame.index
    assert window.windowTitle() == "polypview - demo.mp4"
    qtbot.waitUntil(lambda: window.controller.model_card is not None, timeout=WAIT_MS)
    assert "alpha on torch" in window.model_panel.in_use.text()


def test_overlay_pixels_appear_where_the_mask_is(qtbot, window: MainWindow, looping_clip, models):
    window.overlay_panel.style_box.setCurrentIndex(
        window.overlay_panel.style_box.findData(OverlayStyle.FILL)
    )
    window.overlay_panel.opacity.setValue(100)
    window.overlay_panel.set_colour(RED)
    window.controller.use_segmenter(rectangle_segmenter(card(models, "alpha")))
    window.open_source(str(looping_clip), loop=True)
    qtbot.waitUntil(
        lambda: window.view.result is not None and window.view.result.mask is not None,
        timeout=WAIT_MS,
    )
    result = window.view.result
    assert (result.annotated[RECT] == RED).all()
    outside = np.ones(result.mask.shape, bool)
    outside[RECT] = False
    assert not (result.annotated[outside] == RED).all(axis=-1).any()

    # On screen too: the picture's pixels inside and outside the rectangle, through the scaling.
    picture = window.view.grab().toImage()
    area = window.view.picture_rect()
    scale = area.width() / 160
    ratio = picture.devicePixelRatio()

    def on_screen(x: float, y: float) -> tuple[int, int, int]:
        colour = picture.pixelColor(
            round((area.x() + x * scale) * ratio), round((area.y() + y * scale) * ratio)
        )
        return colour.red(), colour.green(), colour.blue()

    assert on_screen(80, 60) == (255, 0, 0)
    assert on_screen(10, 10) != (255, 0, 0)


def test_a_frame_reaches_qt_without_a_copy():
    image = np.zeros((48, 64, 3), np.uint8)
    frame = Frame(0, 0.0, image, 0.0)
    result = Result(frame, image.copy(), None, None, None, False, (), False, 0.0)
    qimage = as_qimage(result)
    assert int(qimage.constBits()) == result.annotated.ctypes.data
    assert (qimage.width(), qimage.height()) == (64, 48)


def test_model_switch_mid_play_keeps_the_video_running(
    qtbot, window: MainWindow, looping_clip, models
):
    controller = window.controller
    controller.load_model(str(card(models, "alpha").card_path), "torch")
    window.open_source(str(looping_clip), loop=True)
    qtbot.waitUntil(lambda: controller.model_card is not None, timeout=WAIT_MS)
    wait_frames(qtbot, window, 5)
    pipeline = controller.pipeline
    window.model_panel.models.setCurrentIndex(
        window.model_panel.models.findData(str(card(models, "beta").card_path))
    )
    window.model_panel.models.activated.emit(window.model_panel.models.currentIndex())
    qtbot.waitUntil(lambda: controller.model_card.name == "beta", timeout=WAIT_MS)
    segmented = pipeline.stats.frames_segmented
    wait_frames(qtbot, window, 5)
    assert controller.pipeline is pipeline, "the switch must not restart the pipeline"
    assert pipeline.segmenter is controller._segmenter
    qtbot.waitUntil(lambda: pipeline.stats.frames_segmented > segmented, timeout=WAIT_MS)
    assert window.settings.model == str(card(models, "beta").card_path)

    # A model that fails to load leaves the running one and says why.
    window.choose_model(str(models / "missing.json"), "torch")
    qtbot.waitUntil(lambda: "could not load model" in window.messages[-1], timeout=WAIT_MS)
    assert "keeping beta" in window.messages[-1]
    assert controller.model_card.name == "beta" and pipeline.segmenter is controller._segmenter
    assert window.model_panel.models.currentData() == str(card(models, "beta").card_path)


def test_record_produces_a_playable_file(qtbot, window: MainWindow, looping_clip, tmp_path):
    play_into(qtbot, window, looping_clip, tmp_path)
    qtbot.keyClick(window, Qt.Key.Key_R)
    recording = window.controller.recording
    assert recording is not None and window.record_control.indicator.isVisible()
    qtbot.waitUntil(lambda: recording.recorder.frames_written >= 15, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: "KB" in window.record_control.progress.text().upper(), timeout=WAIT_MS)
    qtbot.keyClick(window, Qt.Key.Key_R)
    assert window.controller.recording is None
    assert not window.record_control.indicator.isVisible()
    qtbot.waitUntil(lambda: window.messages[-1].startswith("recorded"), timeout=WAIT_MS)
    with VideoSource(recording.recorder.path) as video:
        frames = list(video)
    assert len(frames) >= 15 and frames[0].image.shape == (120, 160, 3)
    header, *lines = recording.recorder.detections_log.read_text().splitlines()
    assert header.startswith('{"about": ') and len(lines) == len(frames)  # the model, for reports


def test_recording_is_refused_when_the_disk_is_nearly_full(
    qtbot, window: MainWindow, looping_clip, tmp_path, monkeypatch
):
    def full(folder, needed_bytes=0):
        raise OutputError(f"not enough free disk space in {folder}: 12 MB free, need 500 MB")

    monkeypatch.setattr(controller_module, "check_free_space", full)
    play_into(qtbot, window, looping_clip, tmp_path)
    window.record_control.record_button.click()
    assert window.controller.recording is None
    assert not window.record_control.record_button.isChecked()
    assert "not enough free disk space" in window.messages[-1]
    assert list(tmp_path.glob("polypview-*.mp4")) == []


def test_recording_stops_cleanly_when_the_disk_fills(
    qtbot, window: MainWindow, looping_clip, tmp_path, monkeypatch
):
    recording = record_a_few_frames(qtbot, window, looping_clip, tmp_path)

    def filling(folder, needed_bytes=0):
        raise OutputError(f"not enough free disk space in {folder}: 90 MB free, need 100 MB")

    monkeypatch.setattr(controller_module, "check_free_space", filling)
    qtbot.waitUntil(lambda: window.controller.recording is None, timeout=WAIT_MS)
    assert not window.record_control.record_button.isChecked()
    qtbot.waitUntil(lambda: window.messages[-1].startswith("recorded"), timeout=WAIT_MS)
    assert "stopped: not enough free disk space" in window.messages[-1]
    with VideoSource(recording.recorder.path) as video:
        assert len(list(video)) >= 3


def test_snapshot_saves_the_annotated_and_the_raw_frame(qtbot, window, looping_clip, tmp_path):
    play_into(qtbot, window, looping_clip, tmp_path)
    qtbot.keyClick(window, Qt.Key.Key_S)
    qtbot.waitUntil(lambda: window.messages[-1].startswith("saved"), timeout=WAIT_MS)
    saved = sorted(tmp_path.glob("snapshot-*.png"))
    assert len(saved) == 2 and saved[0].name.endswith("-raw.png")


def test_export_dialog_writes_every_frame(qtbot, window: MainWindow, clip: Path, models, tmp_path):
    window.controller.load_model(str(card(models, "alpha").card_path), "torch")
    window.open_source(str(clip))
    qtbot.waitUntil(
        lambda: window.controller.model_card is not None and window.controller.seekable,
        timeout=WAIT_MS,
    )
    window.controller.toggle_play()  # paused at the start: the dialog's in point is 0
    window.controller.seek(0)
    window.open_export_dialog()
    dialog = window.export_dialog
    assert dialog is not None and dialog.start_box.value() == pytest.approx(0, abs=0.1)
    dialog.start_box.setValue(0)
    output = tmp_path / "exported.mp4"
    dialog.output.setText(str(output))
    dialog.export_button.click()
    qtbot.waitUntil(
        lambda: not dialog.running and bool(dialog.summary or dialog.error), timeout=WAIT_MS
    )
    assert dialog.error is None, dialog.error
    assert dialog.summary.frames == 12
    assert dialog.progress.value() == dialog.progress.maximum()
    with VideoSource(output) as video:
        assert len(list(video)) == 12
    dialog.close()


def test_make_report_after_a_recording_writes_it_beside_and_opens_it(
    qtbot, window: MainWindow, looping_clip, tmp_path, monkeypatch: pytest.MonkeyPatch
):
    opened: list[Path] = []
    monkeypatch.setattr(report_dialog, "open_in_browser", opened.append)
    assert not window.record_control.report_button.isEnabled()
    recording = record_a_few_frames(qtbot, window, looping_clip, tmp_path)
    window.record_control.record_button.click()  # stop
    button = window.record_control.report_button
    qtbot.waitUntil(button.isEnabled, timeout=WAIT_MS)
    button.click()
    dialog = window.report_dialog
    assert dialog is not None
    qtbot.waitUntil(lambda: bool(dialog.report or dialog.error), timeout=WAIT_MS)
    assert dialog.error is None, dialog.error
    video = recording.recorder.path
    assert opened == [video.with_name(f"{video.stem}.report.html")]
    assert "Procedure report" in opened[0].read_text()
    dialog.close()


def test_a_cancelled_report_leaves_no_file(qtbot, tmp_path: Path):
    video = write_clip(tmp_path / "rec.mp4", 20, size=(160, 120))
    shown = {"track": 1, "box": [40, 30, 100, 90], "area": 2800, "score": 0.9}
    lines = [
        {"time": i / 25, "frame": i, "alert": i == 19, "detections": [shown] if i == 19 else []}
        for i in range(20)
    ]
    video.with_name("rec.detections.jsonl").write_text("".join(f"{json.dumps(x)}\n" for x in lines))
    opened: list[Path] = []
    dialog = ReportDialog(video, model=None, backend="torch", opener=opened.append)
    qtbot.addWidget(dialog)
    dialog.cancel()  # Cancel before the first frame is read: the same path as any later one
    dialog.start()
    qtbot.waitUntil(lambda: bool(dialog.report or dialog.error), timeout=WAIT_MS)
    assert "cancelled" in (dialog.error or "") and opened == []
    assert not any(path.suffix == ".html" for path in tmp_path.iterdir())
    dialog.reject()  # not running: closes


class FailingJob(CancellableJob):
    def __init__(self, error: Exception) -> None:
        super().__init__("export")
        self.error = error

    def _work(self) -> object:
        raise self.error


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (VideoError("clip.mp4 is not a video"), "clip.mp4 is not a video"),
        (KeyError("x"), "export failed: KeyError: 'x'"),
    ],
)
def test_a_failing_job_reports_one_line_and_nothing_finished(qtbot, error, line):
    job = FailingJob(error)
    finished: list[object] = []
    job.finished.connect(finished.append)
    with qtbot.waitSignal(job.failed, timeout=WAIT_MS) as failure:
        job.start()
    job.wait()
    assert failure.args == [line] and finished == []


def test_a_bad_file_says_so_and_the_video_plays_on(qtbot, window, looping_clip, tmp_path):
    window.open_source(str(looping_clip), loop=True)
    wait_frames(qtbot, window, 2)
    bad = tmp_path / "notes.mp4"
    bad.write_text("these are my notes, not a video\n" * 20)
    window.open_source(str(bad))
    qtbot.waitUntil(
        lambda: "is not a video FFmpeg can read" in window.messages[-1], timeout=WAIT_MS
    )
    assert "Traceback" not in window.messages[-1]
    wait_frames(qtbot, window, 3)  # the old video still plays
    assert window.controller.source_spec == str(looping_clip)
    assert window.isVisible()


def test_keys_pause_and_step(qtbot, window: MainWindow, looping_clip):
    window.open_source(str(looping_clip), loop=True)
    wait_frames(qtbot, window, 2)
    qtbot.keyClick(window, Qt.Key.Key_Space)
    assert window.controller.paused
    time.sleep(0.1)  # let a frame released before the pause arrive
    qtbot.wait(100)
    index = window.view.result.frame.index
    qtbot.keyClick(window, Qt.Key.Key_Right)
    qtbot.waitUntil(lambda: window.view.result.frame.index == index + 1, timeout=WAIT_MS)
    qtbot.keyClick(window, Qt.Key.Key_F)
    assert window.isFullScreen() and not window.side_panel.isVisible()
    qtbot.keyClick(window, Qt.Key.Key_Escape)
    assert not window.isFullScreen() and window.side_panel.isVisible()
    qtbot.keyClick(window, Qt.Key.Key_Space)
    assert not window.controller.paused


def test_settings_persist_between_runs(qtbot, settings: AppSettings, models: Path, looping_clip):
    first = make_window(qtbot, settings, models)
    first.overlay_panel.style_box.setCurrentIndex(
        first.overlay_panel.style_box.findData(OverlayStyle.BOX)
    )
    first.overlay_panel.set_colour(RED)
    first.overlay_panel.threshold.setValue(70)
    first.overlay_panel.tracking.setChecked(False)
    first.overlay_panel.sound.setChecked(True)
    first.record_control.set_folder(looping_clip.parent)
    first.open_source(str(looping_clip))
    first.choose_model(str(card(models, "beta").card_path), "torch")
    first.resize(700, 500)
    first.close()

    reopened = AppSettings.at(Path(settings.path))
    expected = OverlayChoices(
        style=OverlayStyle.BOX, colour=RED, threshold=0.7, tracking=False, sound=True
    )
    assert reopened.overlay == expected
    assert reopened.output_folder == looping_clip.parent
    assert reopened.recent_files == [str(looping_clip.resolve())]
    assert reopened.model == str(card(models, "beta").card_path)
    second = make_window(qtbot, reopened, models)
    assert second.overlay_panel.choices == expected
    assert second.overlay_panel.style_box.currentText() == "Box"
    assert second.record_control.folder == looping_clip.parent
    assert (second.width(), second.height()) == (700, 500)
    second.close()


def test_quitting_while_recording_asks_and_finishes_the_file(
    qtbot, settings, models, looping_clip, tmp_path, monkeypatch
):
    window = make_window(qtbot, settings, models)
    answers = iter([QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes])
    monkeypatch.setattr(QMessageBox, "question", lambda *args: next(answers))
    recording = record_a_few_frames(qtbot, window, looping_clip, tmp_path)
    window.close()
    assert window.isVisible() and window.controller.recording is recording  # "No": stays
    window.close()
    assert not window.isVisible()
    summary = recording.recorder.stop()  # already finished by the close: the same summary
    assert summary.frames_written >= 3 and summary.error is None
    with VideoSource(recording.recorder.path) as video:
        assert len(list(video)) == summary.frames_written


def test_the_bridge_hands_over_only_the_newest_result(qtbot):
    bridge = ResultBridge()
    received: list[Result] = []
    bridge.result_ready.connect(received.append)
    image = np.zeros((4, 4, 3), np.uint8)
    results = [
        Result(Frame(i, 0.0, image, 0.0), image, None, None, None, False, (), False, 0.0)
        for i in range(50)
    ]
    poster = threading.Thread(target=lambda: [bridge.post(r) for r in results])
    poster.start()
    poster.join()
    qtbot.waitUntil(lambda: bool(received), timeout=WAIT_MS)
    qtbot.wait(50)
    assert received == [results[-1]] and bridge.replaced == 49


def test_the_chime_sounds_once_per_new_detection_and_never_fails(qtbot):
    image = np.zeros((4, 4, 3), np.uint8)

    def result(alert: bool) -> Result:
        return Result(Frame(0, 0.0, image, 0.0), image, None, None, None, False, (), alert, 0.0)

    chime = DetectionChime(enabled=True)
    for alert in (False, True, True, False, True, True):
        chime.on_result(result(alert))
    assert chime.played == 2  # offscreen, with no audio device: silent, and no error
    chime.enabled = False
    for alert in (False, True):
        chime.on_result(result(alert))
    assert chime.played == 2


def test_the_device_dialog_lists_the_modes_each_device_offers(qtbot):
    devices = [
        DeviceInfo("USB Capture HDMI 4K+", "V4L2", 0, "/dev/video0", 0x2935, 0x0006),
        DeviceInfo("HD USB Camera", "V4L2", 2, "/dev/video2"),
        DeviceInfo("Cam Link 4K", "DirectShow", 1, r"\\?\usb#vid_0fd9&pid_0066"),
    ]
    offered = [CaptureMode("MJPG", 1920, 1080, 60.0), CaptureMode("YUYV", 1280, 720, None)]
    release = threading.Event()

    def listed(device: int | str) -> list[CaptureMode]:
        if device not in ("/dev/video2", 1):
            raise VideoError(f"cannot list the modes of {device}: not a V4L2 device")
        return offered

    def probed(device: int | str) -> list[CaptureMode]:
        assert device == "/dev/video0" and release.wait(WAIT_MS / 1000)
        return [CaptureMode("MJPG", 1280, 720, 30.0)]

    dialog = DeviceDialog(devices, list_modes=listed, probe_modes=probed)
    qtbot.addWidget(dialog)

    def shown() -> list[str]:
        return [dialog.modes.itemText(index) for index in range(dialog.modes.count())]

    assert [dialog.device_list.item(row).text() for row in range(3)] == [
        "USB Capture HDMI 4K+  (V4L2 /dev/video0)",
        "HD USB Camera  (V4L2 /dev/video2)",
        "Cam Link 4K  (DirectShow 1)",
    ]

    assert shown() == ["the device's own mode"]  # the first device lists none: it says why
    assert dialog.note.text() == "cannot list the modes of /dev/video0: not a V4L2 device."
    assert not dialog.probe_button.isHidden()
    dialog.device_list.setCurrentRow(1)
    assert shown() == [
        "the device's own mode",
        "1920 x 1080 at 60 frames/s, MJPG (compressed)",
        "1280 x 720 at the device's rate, YUYV (uncompressed)",
    ]
    assert dialog.probe_button.isHidden() and dialog.note.isHidden()
    dialog.modes.setCurrentIndex(2)
    assert dialog.chosen() == ("device:/dev/video2", DeviceMode(1280, 720, None, "YUYV"))

    dialog.device_list.setCurrentRow(0)
    qtbot.mouseClick(dialog.probe_button, Qt.MouseButton.LeftButton)
    assert not dialog.open_button.isEnabled()  # the probe holds the device until it answers
    assert dialog.note.text().startswith("Asking USB Capture HDMI 4K+ for the common modes")
    release.set()
    qtbot.waitUntil(lambda: dialog.modes.count() == 2, timeout=WAIT_MS)
    assert shown()[1] == "1280 x 720 at 30 frames/s, MJPG (compressed)"
    assert dialog.open_button.isEnabled() and dialog.probe_button.isHidden()
    dialog.modes.setCurrentIndex(1)
    assert dialog.chosen() == ("device:/dev/video0", DeviceMode(1280, 720, 30.0, "MJPG"))
    dialog.device_list.setCurrentRow(2)  # off Linux a device opens by its index
    assert dialog.chosen() == ("device:1", DeviceMode())

    empty = DeviceDialog([])
    qtbot.addWidget(empty)
    assert empty.chosen() is None and not empty.open_button.isEnabled()


def test_the_hud_keeps_small_delays_readable():
    from polypview.gui.hud import hud_text

    stats = {
        "segmented_fps": 12.6,
        "video_delay_ms_p50": 1.09,
        "annotation_delay_ms_p50": 134.4,
        "dropped": 3,
        "stale": 0,
    }
    text = hud_text(stats, 29.7, "openvino-bf16")
    assert "video delay 1.1 ms" in text and "annotation delay 134 ms" in text
    assert hud_text(None, 0.0, None) == "no video"
