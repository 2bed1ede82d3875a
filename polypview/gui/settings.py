"""What the window remembers between runs, in one QSettings store, a section per panel.

The app uses the user's store; tests and ``POLYPVIEW_SETTINGS`` give a file of their own.
"""

from __future__ import annotations

import os
from pathlib import Path

from PyQt6.QtCore import QByteArray, QSettings

from polypview.gui.overlay_panel import OverlayChoices
from polypview.overlay import OverlayStyle, parse_colour

SETTINGS_ENV = "POLYPVIEW_SETTINGS"
RECENT_FILES = 8


class AppSettings:
    def __init__(self, store: QSettings) -> None:
        self._store = store

    @classmethod
    def at(cls, path: Path) -> AppSettings:
        return cls(QSettings(str(path), QSettings.Format.IniFormat))

    @classmethod
    def default(cls) -> AppSettings:
        """The file ``$POLYPVIEW_SETTINGS`` names, else the user's own store."""
        path = os.environ.get(SETTINGS_ENV)
        return cls.at(Path(path)) if path else cls(QSettings("polypview", "polypview"))

    @property
    def path(self) -> str:
        return self._store.fileName()

    # --- model ---
    @property
    def model(self) -> str | None:
        return self._store.value("model/reference", None, type=str) or None

    @model.setter
    def model(self, reference: str) -> None:
        self._store.setValue("model/reference", reference)

    @property
    def backend(self) -> str:
        return self._store.value("model/backend", "auto", type=str)

    @backend.setter
    def backend(self, name: str) -> None:
        self._store.setValue("model/backend", name)

    # --- overlay ---
    @property
    def overlay(self) -> OverlayChoices:
        store, default = self._store, OverlayChoices()
        try:
            style = OverlayStyle(store.value("overlay/style", default.style.value, type=str))
            colour = parse_colour(store.value("overlay/colour", _rgb(default.colour), type=str))
        except ValueError:
            return default
        return OverlayChoices(
            style=style,
            colour=colour,
            opacity=_within(store.value("overlay/opacity", default.opacity, type=float)),
            threshold=_within(
                store.value("overlay/threshold", default.threshold, type=float), 0.05, 0.95
            ),
            tracking=store.value("overlay/tracking", default.tracking, type=bool),
            edge_markers=store.value("overlay/edge_markers", default.edge_markers, type=bool),
            sound=store.value("overlay/sound", default.sound, type=bool),
        )

    @overlay.setter
    def overlay(self, choices: OverlayChoices) -> None:
        values = {
            "style": choices.style.value,
            "colour": _rgb(choices.colour),
            "opacity": choices.opacity,
            "threshold": choices.threshold,
            "tracking": choices.tracking,
            "edge_markers": choices.edge_markers,
            "sound": choices.sound,
        }
        for key, value in values.items():
            self._store.setValue(f"overlay/{key}", value)

    # --- files ---
    @property
    def output_folder(self) -> Path:
        folder = self._store.value("record/folder", "", type=str)
        return Path(folder) if folder else default_output_folder()

    @output_folder.setter
    def output_folder(self, folder: Path) -> None:
        self._store.setValue("record/folder", str(folder))

    @property
    def recent_files(self) -> list[str]:
        return [name for name in self._store.value("files/recent", [], type=list) if name]

    def add_recent(self, path: str) -> list[str]:
        recent = [path, *(name for name in self.recent_files if name != path)][:RECENT_FILES]
        self._store.setValue("files/recent", recent)
        return recent

    # --- window ---
    @property
    def geometry(self) -> QByteArray | None:
        value = self._store.value("window/geometry", None)
        return value if isinstance(value, QByteArray) else None

    @geometry.setter
    def geometry(self, value: QByteArray) -> None:
        self._store.setValue("window/geometry", value)

    def sync(self) -> None:
        self._store.sync()


def default_output_folder() -> Path:
    videos = Path.home() / "Videos"
    return videos if videos.is_dir() else Path.home()


def _rgb(bgr: tuple[int, int, int]) -> str:
    blue, green, red = bgr
    return f"#{red:02x}{green:02x}{blue:02x}"


def _within(value: float, low: float = 0.0, high: float = 1.0) -> float:
    return min(high, max(low, float(value)))
