"""Make report: a procedure report beside a recording or video, with progress and cancel.

The work is the CLI's own (``make_procedure`` then ``write_report``) on a thread of its own, with
a segmenter of its own when the video must be segmented, so the live video goes on meanwhile. A
finished report is opened in the system browser; a cancelled or failed one leaves no file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PyQt6.QtCore import QUrl, pyqtSignal
from PyQt6.QtGui import QDesktopServices
from PyQt6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QProgressBar, QVBoxLayout, QWidget

from polypview.gui.threads import CancellableJob
from polypview.procedure import make_procedure
from polypview.report import default_report_path, write_report


def open_in_browser(path: Path) -> None:
    QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))


class ReportJob(CancellableJob):
    """One report on its own thread; ``progress``, ``finished`` and ``failed`` arrive queued."""

    progress = pyqtSignal(int, int)  # frames done, of how many (0: not known); finished: the Path

    def __init__(self, video: Path, output: Path, model: str | None, backend: str) -> None:
        super().__init__("report")
        self._arguments = (video, output, model, backend)

    def _work(self) -> Path:
        video, output, model, backend = self._arguments
        procedure = make_procedure(
            video,
            model,
            backend,
            on_progress=lambda done, total: self.progress.emit(done, total or 0),
            cancelled=self._cancel.is_set,
        )
        return write_report(procedure, output)


class ReportDialog(QDialog):
    """Starts at once; shows progress, cancels on Cancel or Esc, opens the report when done."""

    made = pyqtSignal(object)  # the report's Path

    def __init__(
        self,
        video: Path,
        *,
        model: str | None,
        backend: str,
        opener: Callable[[Path], None] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Procedure report")
        self.output = default_report_path(video)
        self.report: Path | None = None
        self.error: str | None = None
        self._opener = opener or open_in_browser
        self._job = ReportJob(video, self.output, model, backend)
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)  # busy until the first frame says how many
        self.outcome = QLabel(f"making the report on {video.name} ...")
        self.outcome.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(f"Report: {self.output}"))
        layout.addWidget(self.progress)
        layout.addWidget(self.outcome)
        layout.addWidget(self.buttons)
        self._job.progress.connect(self._advance)
        self._job.finished.connect(self._finished)
        self._job.failed.connect(self._failed)

    def start(self) -> None:
        self._job.start()

    @property
    def running(self) -> bool:
        return self._job.running

    def cancel(self) -> None:
        self._job.cancel()

    def wait(self, timeout: float | None = None) -> None:
        self._job.wait(timeout)

    def reject(self) -> None:
        """Cancel, Esc or closing the dialog cancels a running report first."""
        if self.running:
            self.cancel()
            self.outcome.setText("cancelling ...")
            return
        super().reject()

    def _advance(self, done: int, total: int) -> None:
        if total:
            self.progress.setRange(0, max(total, done))
            self.progress.setValue(done)

    def _finished(self, path: Path) -> None:
        self.report = path
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        self.outcome.setText(f"wrote {path}")
        self._close_button()
        self.made.emit(path)
        self._opener(path)

    def _failed(self, message: str) -> None:
        self.error = message
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.outcome.setText(message)
        self._close_button()

    def _close_button(self) -> None:
        self.buttons.setStandardButtons(QDialogButtonBox.StandardButton.Close)
