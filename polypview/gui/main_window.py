"""The window: composes the widgets and wires them to the controller, all in one place.

Reading ``MainWindow.__init__`` top to bottom shows every widget and every connection; the widgets
know nothing of each other or of the pipeline.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PyQt6.QtCore import QTimer
from PyQt6.QtGui import (
    QAction,
    QCloseEvent,
    QDragEnterEvent,
    QDropEvent,
    QGuiApplication,
    QKeySequence,
    QScreen,
)
from PyQt6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QMainWindow,
    QMenu,
    QMessageBox,
    QVBoxLayout,
    QWidget,
)

from polypview.gui.chime import DetectionChime
from polypview.gui.controller import DEMO_CLIP, PlayerController
from polypview.gui.device_dialog import DeviceDialog
from polypview.gui.export_dialog import ExportDialog
from polypview.gui.hud import Hud
from polypview.gui.model_panel import ModelPanel
from polypview.gui.overlay_panel import OverlayChoices, OverlayPanel
from polypview.gui.playback_bar import PlaybackBar
from polypview.gui.record_control import RecordControl
from polypview.gui.report_dialog import ReportDialog
from polypview.gui.settings import AppSettings
from polypview.gui.video_view import VideoView
from polypview.modelfile import ModelCard
from polypview.pipeline import Result
from polypview.recorder import RecordingSummary

REFRESH_MS = 200  # timecode, HUD and recording figures
SIDE_PANEL_WIDTH = 290
VIDEO_FILTER = "Videos (*.mp4 *.mov *.mkv *.avi *.webm *.mpg *.mpeg *.m4v);;All files (*)"


class MainWindow(QMainWindow):
    def __init__(
        self,
        controller: PlayerController,
        settings: AppSettings,
        catalogue: Callable[[], list[ModelCard]],
        backends: list[str],
    ) -> None:
        super().__init__()
        self.controller, self.settings = controller, settings
        self.messages: list[str] = []  # what the status bar has said, newest last
        self.export_dialog: ExportDialog | None = None
        self.report_dialog: ReportDialog | None = None
        self.setWindowTitle("polypview")
        self.setAcceptDrops(True)
        self.resize(1280, 800)

        choices = settings.overlay
        self.view = VideoView()
        self.view.show_edge_markers = choices.edge_markers
        self.hud = Hud(self.view)
        self.playback = PlaybackBar()
        self.model_panel = ModelPanel(catalogue, backends)
        self.model_panel.set_backend(settings.backend)
        self.overlay_panel = OverlayPanel(choices)
        self.record_control = RecordControl(settings.output_folder)
        self.chime = DetectionChime(enabled=choices.sound)

        self.side_panel = QWidget()
        self.side_panel.setFixedWidth(SIDE_PANEL_WIDTH)
        side = QVBoxLayout(self.side_panel)
        for panel in (self.model_panel, self.overlay_panel, self.record_control):
            side.addWidget(panel)
        side.addStretch(1)
        centre = QWidget()
        picture = QVBoxLayout()
        picture.setContentsMargins(0, 0, 0, 0)
        picture.addWidget(self.view, 1)
        picture.addWidget(self.playback)
        layout = QVBoxLayout(centre)
        layout.setContentsMargins(0, 0, 0, 0)
        row = QWidget()
        columns = QHBoxLayout(row)
        columns.setContentsMargins(0, 0, 0, 0)
        columns.addLayout(picture, 1)
        columns.addWidget(self.side_panel)
        layout.addWidget(row)
        self.setCentralWidget(centre)
        self._build_menus()

        # The controller's news, shown.
        controller.frame_shown.connect(self._show_result)
        controller.message.connect(self.show_message)
        controller.source_changed.connect(self._source_changed)
        controller.playback_changed.connect(self._playback_changed)
        controller.model_changed.connect(self._model_changed)
        controller.recording_changed.connect(self.record_control.set_recording)
        controller.recorded.connect(self._recorded)
        # The user's requests, passed on.
        self.playback.play_toggled.connect(controller.toggle_play)
        self.playback.step_requested.connect(controller.step)
        self.playback.step_back_requested.connect(controller.step_back)
        self.playback.seek_requested.connect(controller.seek)
        self.playback.speed_changed.connect(controller.set_speed)
        self.model_panel.model_requested.connect(self.choose_model)
        self.overlay_panel.changed.connect(self.apply_overlay)
        self.record_control.record_toggled.connect(self.set_recording)
        self.record_control.snapshot_requested.connect(self.snapshot)
        self.record_control.folder_changed.connect(self._folder_changed)
        self.record_control.report_requested.connect(self.make_report)
        self.view.double_clicked.connect(self.toggle_full_screen)

        self._refresh = QTimer(self)
        self._refresh.timeout.connect(self._refresh_figures)
        self._refresh.start(REFRESH_MS)
        geometry = settings.geometry
        if geometry is not None:
            self.restoreGeometry(geometry)
        self._playback_changed()

    # --- menus and shortcuts -----------------------------------------------------------------

    def _build_menus(self) -> None:
        bar = self.menuBar()
        assert bar is not None
        file_menu = bar.addMenu("&File")
        view_menu = bar.addMenu("&View")
        play_menu = bar.addMenu("&Playback")
        assert file_menu is not None and view_menu is not None and play_menu is not None
        self.recent_menu = QMenu("Open &recent", self)
        self.full_screen_menu = QMenu("Full screen &on", self)
        entries: list[tuple[QMenu, str, object, Callable[[], object]]] = [
            (file_menu, "&Open video ...", "O", self.open_video_dialog),
            (file_menu, "Open &capture device ...", "Ctrl+D", self.open_device_dialog),
            (file_menu, "&Demo clip", None, lambda: self.open_source(str(DEMO_CLIP), loop=True)),
            (file_menu, "&Export clip ...", "Ctrl+E", self.open_export_dialog),
            (file_menu, "Procedure re&port ...", None, self.report_on_open_file),
            (file_menu, "&Snapshot", "S", self.snapshot),
            (file_menu, "&Record", "R", self.record_control.record_button.toggle),
            (file_menu, "&Quit", QKeySequence.StandardKey.Quit, self.close),
            (play_menu, "&Play / pause", "Space", self.controller.toggle_play),
            (play_menu, "Step / seek &back", "Left", self.controller.step_back),
            (play_menu, "Step / seek &on", "Right", self.controller.step),
            (view_menu, "&Full screen", "F", self.toggle_full_screen),
            (view_menu, "&Leave full screen", "Esc", self.leave_full_screen),
            (view_menu, "&Heads-up display", "H", self.toggle_hud),
        ]
        for menu, label, shortcut, slot in entries:
            action = QAction(label, self)
            if shortcut is not None:
                action.setShortcut(QKeySequence(shortcut))
            action.triggered.connect(slot)
            menu.addAction(action)
            self.addAction(action)  # shortcuts work in full screen, with the menus hidden
            if menu is file_menu and label == "&Demo clip":
                file_menu.addMenu(self.recent_menu)
        view_menu.addMenu(self.full_screen_menu)
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        self.full_screen_menu.aboutToShow.connect(self._fill_screen_menu)

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        for path in self.settings.recent_files:
            action = self.recent_menu.addAction(path)
            assert action is not None
            action.triggered.connect(lambda _=False, chosen=path: self.open_source(chosen))
        self.recent_menu.setEnabled(bool(self.settings.recent_files))

    def _fill_screen_menu(self) -> None:
        self.full_screen_menu.clear()
        for screen in QGuiApplication.screens():
            action = self.full_screen_menu.addAction(
                f"{screen.name()} ({screen.size().width()} x {screen.size().height()})"
            )
            assert action is not None
            action.triggered.connect(lambda _=False, chosen=screen: self.enter_full_screen(chosen))

    # --- sources -----------------------------------------------------------------------------

    def open_source(self, spec: str, *, loop: bool = False) -> None:
        if Path(spec).exists() and Path(spec).resolve() != DEMO_CLIP.resolve():
            self.settings.add_recent(str(Path(spec).resolve()))
        self.controller.open(spec, loop=loop)

    def open_video_dialog(self) -> None:
        recent = self.settings.recent_files
        folder = str(Path(recent[0]).parent) if recent else str(Path.home())
        path, _ = QFileDialog.getOpenFileName(self, "Open video", folder, VIDEO_FILTER)
        if path:
            self.open_source(path)

    def open_device_dialog(self) -> None:
        dialog = DeviceDialog(parent=self)
        if dialog.exec() == DeviceDialog.DialogCode.Accepted and (chosen := dialog.chosen()):
            spec, mode = chosen
            self.controller.open(spec, mode)

    def dragEnterEvent(self, event: QDragEnterEvent | None) -> None:
        if event is not None and (mime := event.mimeData()) is not None and mime.hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent | None) -> None:
        mime = event.mimeData() if event is not None else None
        paths = [url.toLocalFile() for url in mime.urls()] if mime is not None else []
        if paths and paths[0]:
            self.open_source(paths[0])

    # --- model, overlay ----------------------------------------------------------------------

    def choose_model(self, reference: str, backend: str) -> None:
        self.settings.model, self.settings.backend = reference, backend
        self.controller.load_model(reference, backend)

    def apply_overlay(self, choices: OverlayChoices) -> None:
        before = self.settings.overlay
        self.settings.overlay = choices
        self.controller.set_overlay(choices.overlay_options())
        if choices.threshold != before.threshold:
            self.controller.set_threshold(choices.threshold)
        if choices.tracking != before.tracking:
            self.controller.set_tracking(choices.tracking)
        self.view.show_edge_markers = choices.edge_markers
        self.chime.enabled = choices.sound
        self.view.update()

    # --- recording, snapshot, export ---------------------------------------------------------

    def set_recording(self, on: bool) -> None:
        if on:
            self.controller.start_recording(self.record_control.folder)
        else:
            self.controller.stop_recording()

    def snapshot(self) -> None:
        self.controller.snapshot(self.record_control.folder)

    def open_export_dialog(self) -> None:
        source, card = self.controller.source, self.controller.model_card
        spec = self.controller.source_spec
        if not self.controller.seekable or spec is None or source is None:
            self.show_message("export needs a video file: open one first")
            return
        if card is None:
            self.show_message("export needs a model: none is loaded yet")
            return
        choices = self.overlay_panel.choices
        position = getattr(source, "position", 0.0)
        self.export_dialog = ExportDialog(
            Path(spec),
            duration=getattr(source, "duration", None),
            fps=source.fps,
            model=str(card.card_path),
            backend=self.settings.backend,
            threshold=choices.threshold,
            overlay=choices.overlay_options(),
            start=round(position, 2),
            parent=self,
        )
        self.export_dialog.exported.connect(
            lambda done: self.show_message(f"exported {done.frames} frames to {done.output}")
        )
        self.export_dialog.show()

    def report_on_open_file(self) -> None:
        """File > Procedure report: on the open video (a recording's log is read, not redone)."""
        spec = self.controller.source_spec
        if not self.controller.seekable or spec is None:
            self.show_message("a report needs a video file: open one first")
            return
        self.make_report(Path(spec))

    def make_report(self, video: Path) -> None:
        """Write the procedure report beside ``video`` and open it in the browser when done."""
        if self.report_dialog is not None and self.report_dialog.running:
            self.show_message("a report is being made: wait for it or cancel it first")
            return
        card = self.controller.model_card
        self.report_dialog = ReportDialog(
            video,
            model=str(card.card_path) if card else None,
            backend=self.settings.backend,
            parent=self,
        )
        self.report_dialog.made.connect(lambda path: self.show_message(f"report written: {path}"))
        self.report_dialog.show()
        self.report_dialog.start()

    def _recorded(self, summary: RecordingSummary) -> None:
        self.record_control.set_last_recording(summary.path)

    # --- full screen -------------------------------------------------------------------------

    def toggle_hud(self) -> None:
        self.hud.setVisible(not self.hud.isVisible())

    def toggle_full_screen(self) -> None:
        if self.isFullScreen():
            self.leave_full_screen()
        else:
            self.enter_full_screen(self.screen())

    def enter_full_screen(self, screen: QScreen | None) -> None:
        """The picture alone, full screen on ``screen`` (a second monitor for the room)."""
        handle = self.windowHandle()
        if screen is not None and handle is not None and handle.screen() is not screen:
            handle.setScreen(screen)
            self.setGeometry(screen.geometry())
        for widget in (self.side_panel, self.playback, self.menuBar(), self.statusBar()):
            if widget is not None:
                widget.hide()
        self.showFullScreen()

    def leave_full_screen(self) -> None:
        if not self.isFullScreen():
            return
        for widget in (self.side_panel, self.playback, self.menuBar(), self.statusBar()):
            if widget is not None:
                widget.show()
        self.showNormal()

    # --- what the controller says ------------------------------------------------------------

    def show_message(self, text: str) -> None:
        self.messages = [*self.messages[-49:], text]
        status = self.statusBar()
        if status is not None:
            status.showMessage(text)

    def _show_result(self, result: Result) -> None:
        self.view.show_result(result)
        self.chime.on_result(result)

    def _source_changed(self) -> None:
        source = self.controller.source
        self.setWindowTitle(f"polypview - {source.name}" if source is not None else "polypview")
        self._playback_changed()

    def _playback_changed(self) -> None:
        source = self.controller.source
        self.playback.show_state(
            seekable=self.controller.seekable,
            paused=self.controller.paused or self.controller.ended,
            duration=getattr(source, "duration", None),
        )

    def _model_changed(self) -> None:
        controller = self.controller
        self.model_panel.show_model(
            controller.model_card, controller.backend, controller.loading_model
        )

    def _folder_changed(self, folder: Path) -> None:
        self.settings.output_folder = folder

    def _refresh_figures(self) -> None:
        source = self.controller.source
        if self.controller.seekable and source is not None:
            self.playback.show_position(getattr(source, "position", 0.0))
        if self.hud.isVisible():
            self.hud.show_figures(
                self.controller.stats(), self.view.painted_fps(), self.controller.backend
            )
        recording = self.controller.recording
        if recording is not None:
            self.record_control.show_recording(recording.elapsed_s, recording.size_bytes)

    # --- quitting ----------------------------------------------------------------------------

    def confirm_quit_while_recording(self) -> bool:
        answer = QMessageBox.question(
            self,
            "Quit polypview",
            "A recording is running. Stop it, save the file and quit?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    def closeEvent(self, event: QCloseEvent | None) -> None:
        if event is None:
            return
        if self.controller.recording is not None and not self.confirm_quit_while_recording():
            event.ignore()
            return
        if self.export_dialog is not None and self.export_dialog.running:
            self.export_dialog.cancel()
        self.leave_full_screen()
        self.settings.geometry = self.saveGeometry()
        self.settings.sync()
        self.controller.shutdown()
        event.accept()
