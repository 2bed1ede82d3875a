"""Start the window:
``polypview [SOURCE] [--device N|PATH|NAME] [--screenshot FILE [--after S]]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PyQt6.QtCore import QTimer
from PyQt6.QtWidgets import QApplication

from polypview.backends import backend_names
from polypview.errors import OutputError, PolypviewError
from polypview.gui.controller import DEMO_CLIP, PlayerController
from polypview.gui.main_window import MainWindow
from polypview.gui.settings import AppSettings
from polypview.modelfile import DEFAULT_MODEL, installed_models


def build_window(settings: AppSettings, backend: str | None = None) -> MainWindow:
    """The window and its controller, set up as the settings say (not yet playing)."""
    choices = settings.overlay
    controller = PlayerController(
        overlay=choices.overlay_options(), tracking=choices.tracking, threshold=choices.threshold
    )
    if backend is not None:
        settings.backend = backend
    return MainWindow(controller, settings, installed_models, backend_names())


def source_spec(args: argparse.Namespace) -> tuple[str, bool]:
    """What to open first, and whether to loop it (the demo loops)."""
    if args.device is not None:
        return f"device:{args.device}", False
    if args.source is not None:
        return args.source, False
    if not DEMO_CLIP.is_file():
        raise PolypviewError(f"the demo clip is missing ({DEMO_CLIP}); give a video to open")
    return str(DEMO_CLIP), True


def save_screenshot(window: MainWindow, path: Path) -> None:
    if not window.grab().save(str(path)):
        raise OutputError(f"cannot write the screenshot {path}")


def run_window(args: argparse.Namespace) -> int:
    """Open the window and run until it closes; with ``--screenshot``, save it and quit."""
    spec, loop = source_spec(args)
    if args.screenshot is not None and not args.screenshot.parent.is_dir():
        raise OutputError(f"screenshot folder does not exist: {args.screenshot.parent}")
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("polypview")
    window = build_window(AppSettings.default(), args.backend)
    model = args.model or window.settings.model or DEFAULT_MODEL
    window.show()
    window.controller.load_model(model, window.settings.backend)
    window.open_source(spec, loop=loop)
    failure: list[PolypviewError] = []
    if args.screenshot is not None:

        def shoot() -> None:
            try:
                save_screenshot(window, args.screenshot)
            except PolypviewError as error:
                failure.append(error)
            window.close()

        QTimer.singleShot(round(args.after * 1000), shoot)
    app.exec()
    if failure:
        raise failure[0]
    return 0
