"""The real window, offscreen, on a live source: frames painted per second and how late the GUI
thread answers while the pipeline segments at the backend's full speed.

    .venv/bin/python scripts/bench_gui.py                       # synthetic 1080p30, 10 s
    .venv/bin/python scripts/bench_gui.py --source assets/demo.mp4 --seconds 20 --model unet

Two probes of the event loop, the figure that bounds how fast a key press is handled:
- a posted event's delay: a helper thread posts a timestamped signal every 20 ms; the delay is
  from posting to the GUI thread running its slot (what a key press waits for);
- a 10 ms precise QTimer's lateness.
Prints figures; it is not a test and asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PyQt6.QtCore import QObject, Qt, QTimer, pyqtSignal
from PyQt6.QtWidgets import QApplication

from polypview.gui.app import build_window
from polypview.gui.settings import AppSettings
from polypview.modelfile import DEFAULT_MODEL

POST_EVERY_S = 0.020
TIMER_MS = 10


class LatencyProbe(QObject):
    """Posts timestamped signals from a thread; records how long each waited for the GUI."""

    _posted = pyqtSignal(float)

    def __init__(self) -> None:
        super().__init__()
        self.delays_ms: list[float] = []
        self.timer_late_ms: list[float] = []
        self._posted.connect(self._received, Qt.ConnectionType.QueuedConnection)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._post, daemon=True)
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.timeout.connect(self._tick)
        self._last_tick: float | None = None

    def start(self) -> None:
        self._thread.start()
        self._timer.start(TIMER_MS)

    def stop(self) -> None:
        self._stop.set()
        self._timer.stop()

    def _post(self) -> None:
        while not self._stop.wait(POST_EVERY_S):
            self._posted.emit(time.perf_counter())

    def _received(self, sent: float) -> None:
        self.delays_ms.append((time.perf_counter() - sent) * 1000)

    def _tick(self) -> None:
        now = time.perf_counter()
        if self._last_tick is not None:
            self.timer_late_ms.append(max(0.0, (now - self._last_tick) * 1000 - TIMER_MS))
        self._last_tick = now


def spread(values: list[float]) -> str:
    if not values:
        return "no samples"
    median, p99 = np.percentile(values, [50, 99])
    return f"median {median:.1f} ms, p99 {p99:.1f} ms, max {max(values):.1f} ms ({len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="synthetic:1920x1080@30")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--size", default="1280x800", help="window size, WxH")
    args = parser.parse_args()

    app = QApplication(sys.argv[:1])
    with tempfile.TemporaryDirectory(prefix="polypview-bench-gui-") as scratch:
        window = build_window(AppSettings.at(Path(scratch) / "settings.ini"), args.backend)
        width, height = (int(v) for v in args.size.split("x"))
        window.resize(width, height)
        window.show()
        controller = window.controller
        controller.load_model(args.model, args.backend)
        window.open_source(args.source, loop=True)
        probe = LatencyProbe()
        figures: dict[str, object] = {}

        def measure() -> None:
            if controller.model_card is None or controller.pipeline is None:
                QTimer.singleShot(200, measure)  # still loading
                return
            figures["painted"] = window.view.painted
            figures["started"] = time.monotonic()
            figures["replaced"] = controller._bridge.replaced
            probe.start()
            QTimer.singleShot(round(args.seconds * 1000), finish)

        def finish() -> None:
            probe.stop()
            seconds = time.monotonic() - figures["started"]
            painted = window.view.painted - figures["painted"]
            stats = controller.stats() or {}
            source = controller.source
            print(
                f"window {window.width()}x{window.height()} ({app.platformName()}), "
                f"{source.name if source else '-'}, model {controller.model_card.name} on "
                f"{controller.backend}, {seconds:.1f} s"
            )
            print(
                f"painted in the view  {painted / seconds:6.1f} frames/s "
                f"(source {source.fps if source else 0:g}); skipped by the GUI "
                f"{controller._bridge.replaced - figures['replaced']}"
            )
            print(
                f"pipeline             shown {stats.get('shown_fps', 0):.1f} frames/s, "
                f"segmented {stats.get('segmented_fps', 0):.1f} frames/s, "
                f"{stats.get('dropped')} dropped before segmentation"
            )
            for name in ("video", "annotation"):
                median, p99 = (stats.get(f"{name}_delay_ms_p{q}") for q in (50, 99))
                shown = "-" if median is None else f"median {median:.1f} ms, p99 {p99:.1f} ms"
                print(f"{name + ' delay':<20} {shown}")
            print(f"posted event delay   {spread(probe.delays_ms)}")
            print(f"10 ms timer lateness {spread(probe.timer_late_ms)}")
            window.close()

        QTimer.singleShot(1000, measure)
        app.exec()


if __name__ == "__main__":
    main()
