"""Export clip: in and out points, style, output file, progress and cancel.

The export is the CLI's own (``export_annotated``, lockstep: every frame segmented, none dropped)
on a thread of its own, with a segmenter of its own (a backend serves one thread), so the live
video goes on meanwhile. A cancelled export leaves no file behind.
"""

from __future__ import annotations

from pathlib import Path

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QWidget,
)

from polypview.export import ExportSummary, export_annotated
from polypview.gui.overlay_panel import STYLE_LABELS
from polypview.gui.threads import CancellableJob
from polypview.overlay import OverlayOptions, OverlayStyle
from polypview.segmenter import Segmenter
from polypview.video import VideoSource


class ExportJob(CancellableJob):
    """One export on its own thread; ``progress``, ``finished`` and ``failed`` arrive queued."""

    progress = pyqtSignal(int)  # frames written so far; finished: the ExportSummary

    def __init__(
        self,
        video: Path,
        output: Path,
        model: str,
        backend: str,
        threshold: float,
        overlay: OverlayOptions,
        start: float,
        end: float | None,
    ) -> None:
        super().__init__("export")
        self._arguments = (video, output, model, backend, threshold, overlay, start, end)

    def _work(self) -> ExportSummary:
        video, output, model, backend, threshold, overlay, start, end = self._arguments
        with VideoSource(video, start=start, end=end) as source:
            segmenter = Segmenter.open(model, backend, threshold=threshold)
            return export_annotated(
                source,
                segmenter,
                output,
                overlay,
                on_frame=self.progress.emit,
                cancelled=self._cancel.is_set,
            )


class ExportDialog(QDialog):
    """Export part of the open video with the running model; stays open to show the outcome."""

    exported = pyqtSignal(object)  # ExportSummary

    def __init__(
        self,
        video: Path,
        *,
        duration: float | None,
        fps: float,
        model: str,
        backend: str,
        threshold: float,
        overlay: OverlayOptions,
        start: float = 0.0,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export annotated clip")
        self._video, self._fps = video, fps
        self._model, self._backend, self._threshold = model, backend, threshold
        self._overlay = overlay
        self._job: ExportJob | None = None
        self.summary: ExportSummary | None = None
        self.error: str | None = None

        limit = duration or 24 * 3600.0
        self.start_box = self._seconds(limit, start)
        self.end_box = self._seconds(limit, limit)
        self.style_box = QComboBox()
        for style, label in STYLE_LABELS.items():
            if style is not OverlayStyle.OFF:
                self.style_box.addItem(label, style)
        index = self.style_box.findData(overlay.style)
        self.style_box.setCurrentIndex(max(0, index))
        self.output = QLineEdit(str(video.with_name(f"{video.stem}-annotated.mp4")))
        browse = QPushButton("Browse ...")
        browse.clicked.connect(self._browse)
        where = QHBoxLayout()
        where.addWidget(self.output, 1)
        where.addWidget(browse)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.outcome = QLabel(f"model {Path(model).stem} on {backend}")
        self.outcome.setWordWrap(True)
        self.buttons = QDialogButtonBox()
        self.export_button = self.buttons.addButton(
            "Export", QDialogButtonBox.ButtonRole.AcceptRole
        )
        self.cancel_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        assert self.export_button is not None and self.cancel_button is not None
        self.export_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self._cancel_or_close)

        form = QFormLayout(self)
        form.addRow("Video", QLabel(video.name))
        form.addRow("In (s)", self.start_box)
        form.addRow("Out (s)", self.end_box)
        form.addRow("Style", self.style_box)
        form.addRow("Output", where)
        form.addRow(self.progress)
        form.addRow(self.outcome)
        form.addRow(self.buttons)

    @property
    def running(self) -> bool:
        return self._job is not None and self._job.running

    def start(self) -> None:
        start, end = self.start_box.value(), self.end_box.value()
        if end <= start:
            self.outcome.setText("the out point must come after the in point")
            return
        self.summary, self.error = None, None
        expected = max(1, round((end - start) * self._fps))
        self.progress.setRange(0, expected)
        self.progress.setValue(0)
        self.outcome.setText("exporting ...")
        overlay = OverlayOptions(
            style=self.style_box.currentData(),
            colour=self._overlay.colour,
            opacity=self._overlay.opacity,
        )
        self._job = ExportJob(
            self._video,
            Path(self.output.text()),
            self._model,
            self._backend,
            self._threshold,
            overlay,
            start,
            None if end >= self.end_box.maximum() else end,
        )
        self._job.progress.connect(self._advance)
        self._job.finished.connect(self._finished)
        self._job.failed.connect(self._failed)
        self.export_button.setEnabled(False)
        self._job.start()

    def cancel(self) -> None:
        if self._job is not None:
            self._job.cancel()

    def reject(self) -> None:
        """Esc or closing the dialog cancels a running export first."""
        if self.running:
            self.cancel()
            return
        super().reject()

    def _cancel_or_close(self) -> None:
        if self.running:
            self.cancel()
        else:
            self.reject()

    def _advance(self, frames: int) -> None:
        if frames > self.progress.maximum():
            self.progress.setMaximum(frames)
        self.progress.setValue(frames)

    def _finished(self, summary: ExportSummary) -> None:
        self.summary = summary
        self.progress.setValue(self.progress.maximum())
        self.outcome.setText(
            f"wrote {summary.frames} frames to {summary.output} ({summary.fps:.1f} frames/s)"
        )
        self.export_button.setEnabled(True)
        self.exported.emit(summary)

    def _failed(self, message: str) -> None:
        self.error = message
        self.outcome.setText(message)
        self.progress.setValue(0)
        self.export_button.setEnabled(True)

    def _browse(self) -> None:
        chosen, _ = QFileDialog.getSaveFileName(
            self, "Export to", self.output.text(), "MP4 video (*.mp4)"
        )
        if chosen:
            self.output.setText(chosen)

    @staticmethod
    def _seconds(limit: float, value: float) -> QDoubleSpinBox:
        box = QDoubleSpinBox()
        box.setRange(0.0, limit)
        box.setDecimals(2)
        box.setSingleStep(1.0)
        box.setValue(value)
        box.setAlignment(Qt.AlignmentFlag.AlignRight)
        return box
