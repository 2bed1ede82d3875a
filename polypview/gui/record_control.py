"""Record toggle with its REC indicator, elapsed time and file size; the output folder; Snapshot;
Make report on the last recording."""

from __future__ import annotations

from pathlib import Path

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import (
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QLabel,
    QPushButton,
    QWidget,
)

REC_STYLE = "color: white; background-color: #c00000; font-weight: bold; padding: 1px 6px"


def file_size(size_bytes: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size_bytes >= scale:
            return f"{size_bytes / scale:.1f} {unit}"
    return f"{size_bytes} B"


def elapsed(seconds: float) -> str:
    minutes, whole = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{whole:02d}" if hours else f"{minutes:02d}:{whole:02d}"


class RecordControl(QGroupBox):
    """Emits what the user asks for; ``show_recording`` follows the recorder."""

    record_toggled = pyqtSignal(bool)
    snapshot_requested = pyqtSignal()
    folder_changed = pyqtSignal(Path)
    report_requested = pyqtSignal(Path)  # the recording to report on

    def __init__(self, folder: Path, parent: QWidget | None = None) -> None:
        super().__init__("Record", parent)
        self.folder = folder
        self.record_button = QPushButton("Record (R)")
        self.record_button.setCheckable(True)
        self.snapshot_button = QPushButton("Snapshot (S)")
        self.indicator = QLabel("REC")
        self.indicator.setStyleSheet(REC_STYLE)
        self.indicator.setVisible(False)
        self.progress = QLabel("")
        self.report_button = QPushButton("Make report")
        self.report_button.setToolTip("A procedure report on the last recording (HTML)")
        self.report_button.setEnabled(False)
        self.last_recording: Path | None = None
        self.folder_button = QPushButton()
        self.folder_button.setToolTip("Where recordings and snapshots are saved")
        buttons = (self.record_button, self.snapshot_button, self.report_button, self.folder_button)
        for button in buttons:
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        grid = QGridLayout(self)
        grid.addWidget(self.record_button, 0, 0)
        grid.addWidget(self.snapshot_button, 0, 1)
        grid.addWidget(self.indicator, 1, 0)
        grid.addWidget(self.progress, 1, 1)
        grid.addWidget(self.report_button, 1, 0)  # in the REC indicator's place: one at a time
        grid.addWidget(QLabel("Folder"), 2, 0)
        grid.addWidget(self.folder_button, 2, 1)
        self._show_folder()
        self.record_button.toggled.connect(self.record_toggled)
        self.snapshot_button.clicked.connect(self.snapshot_requested)
        self.folder_button.clicked.connect(self._choose_folder)
        self.report_button.clicked.connect(self._report_requested)

    def set_recording(self, on: bool) -> None:
        """Follow the controller (a refused or failed recording unchecks the button)."""
        self.record_button.blockSignals(True)
        self.record_button.setChecked(on)
        self.record_button.blockSignals(False)
        self.indicator.setVisible(on)
        self.report_button.setVisible(not on)
        self.folder_button.setEnabled(not on)
        if not on:
            self.progress.setText("")

    def set_last_recording(self, path: Path) -> None:
        """A recording finished: Make report now reports on it."""
        self.last_recording = path
        self.report_button.setEnabled(True)
        self.report_button.setToolTip(f"A procedure report on {path.name} (HTML)")

    def _report_requested(self) -> None:
        if self.last_recording is not None:
            self.report_requested.emit(self.last_recording)

    def show_recording(self, seconds: float, size_bytes: int) -> None:
        self.progress.setText(f"{elapsed(seconds)}  {file_size(size_bytes)}")

    def set_folder(self, folder: Path) -> None:
        self.folder = folder
        self._show_folder()
        self.folder_changed.emit(folder)

    def _show_folder(self) -> None:
        self.folder_button.setText(self.folder.name or str(self.folder))
        self.folder_button.setToolTip(str(self.folder))

    def _choose_folder(self) -> None:
        chosen = QFileDialog.getExistingDirectory(self, "Folder for recordings", str(self.folder))
        if chosen:
            self.set_folder(Path(chosen))
