"""Where work from other threads crosses into the GUI thread (the export dialog's job, which
reports its progress through queued signals of its own, is the one other place).

``ResultBridge`` takes the pipeline's results without ever waiting and hands the GUI the newest
one, through at most one queued event at a time, so a busy event loop is never flooded with
frames it would only skip. ``Background`` runs a blocking call (loading a model, opening a source,
stopping a pipeline, writing a snapshot) on a thread of its own and answers in the GUI thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from PyQt6.QtCore import QObject, Qt, pyqtSignal

from polypview.errors import PolypviewError
from polypview.pipeline import Result

logger = logging.getLogger(__name__)
T = TypeVar("T")


class ResultBridge(QObject):
    """A one-slot mailbox from the pipeline's capture thread to the GUI thread.

    ``post`` and ``report`` may be called from any thread and return at once; ``result_ready``
    and ``status`` are emitted in the GUI thread. ``replaced`` counts results that a newer one
    overwrote before the GUI took them (the GUI was busy for a frame period or more).
    """

    result_ready = pyqtSignal(object)  # Result
    status = pyqtSignal(str)
    _posted = pyqtSignal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._lock = threading.Lock()
        self._newest: Result | None = None
        self.replaced = 0
        self._posted.connect(self._deliver, Qt.ConnectionType.QueuedConnection)

    def post(self, result: Result) -> None:
        """A pipeline sink: keep ``result`` as the newest; wake the GUI unless it is already due."""
        with self._lock:
            waiting = self._newest is not None
            self.replaced += waiting
            self._newest = result
        if not waiting:
            self._posted.emit()

    def report(self, message: str) -> None:
        """The pipeline's ``on_status``: one line for the status bar."""
        self.status.emit(message)

    def _deliver(self) -> None:
        with self._lock:
            result, self._newest = self._newest, None
        if result is not None:
            self.result_ready.emit(result)


class Background(QObject):
    """Runs blocking calls on short-lived threads; their answers are delivered in the GUI thread.

    A ``PolypviewError`` reaches ``on_error`` as its one line; any other exception is logged with
    its traceback and reaches ``on_error`` as its type and message: never as a traceback.
    """

    _answer = pyqtSignal(object, object)  # callback, its argument

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._answer.connect(self._call, Qt.ConnectionType.QueuedConnection)
        self._running: set[threading.Thread] = set()

    @property
    def busy(self) -> bool:
        return any(thread.is_alive() for thread in self._running)

    def run(
        self,
        name: str,
        work: Callable[[], T],
        on_done: Callable[[T], Any],
        on_error: Callable[[str], Any],
    ) -> None:
        def body() -> None:
            try:
                value = work()
            except PolypviewError as error:
                self._answer.emit(on_error, str(error))
            except Exception as error:
                logger.exception("%s failed", name)
                self._answer.emit(on_error, f"{type(error).__name__}: {error}")
            else:
                self._answer.emit(on_done, value)

        thread = threading.Thread(target=body, name=f"polypview-{name}", daemon=True)
        self._running = {t for t in self._running if t.is_alive()} | {thread}
        thread.start()

    def wait(self, timeout: float | None = None) -> None:
        """Wait for every call started so far (at shutdown); their answers are not delivered."""
        for thread in list(self._running):
            thread.join(timeout)

    def _call(self, callback: Callable[[Any], Any], value: object) -> None:
        callback(value)


class CancellableJob(QObject):
    """One long job (an export, a report) on a thread of its own; ``_work`` checks ``_cancel``.

    Its result arrives as ``finished``, a failure as one line on ``failed``: Qt delivers both
    queued in the GUI thread."""

    finished = pyqtSignal(object)  # what _work returned
    failed = pyqtSignal(str)

    def __init__(self, name: str) -> None:
        super().__init__()
        self._name = name
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"polypview-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _work(self) -> object:
        """The job itself, on its thread; each subclass (ExportJob, ReportJob) defines it."""
        raise NotImplementedError

    def _run(self) -> None:
        try:
            result = self._work()
        except PolypviewError as error:
            self.failed.emit(str(error))
        except Exception as error:
            self.failed.emit(f"{self._name} failed: {type(error).__name__}: {error}")
        else:
            self.finished.emit(result)
