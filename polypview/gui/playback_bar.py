"""Play/pause, step, the seek slider with its timecode, and the playback speed."""

from __future__ import annotations

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import (
    QAbstractSlider,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QSlider,
    QStyle,
    QToolButton,
    QWidget,
)

SPEEDS = (0.25, 0.5, 1.0, 1.5, 2.0, 4.0)
SLIDER_UNITS_PER_S = 10  # the slider counts tenths of a second


def timecode(seconds: float) -> str:
    """h:mm:ss.t, or m:ss.t under an hour."""
    tenths = max(0, round(seconds * 10))
    minutes, tenth_seconds = divmod(tenths, 600)
    hours, minutes = divmod(minutes, 60)
    clock = f"{minutes:02d}:{tenth_seconds / 10:04.1f}"
    return f"{hours}:{clock}" if hours else clock


class PlaybackBar(QWidget):
    """Emits what the user asks for; ``show_position`` and ``show_state`` follow the video."""

    play_toggled = pyqtSignal()
    step_back_requested = pyqtSignal()
    step_requested = pyqtSignal()
    seek_requested = pyqtSignal(float)
    speed_changed = pyqtSignal(float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        style = self.style()
        assert style is not None
        self._icons = {
            "play": style.standardIcon(QStyle.StandardPixmap.SP_MediaPlay),
            "pause": style.standardIcon(QStyle.StandardPixmap.SP_MediaPause),
        }
        self.play_button = self._button(self._icons["pause"], "Play or pause (Space)")
        self.back_button = self._button(
            style.standardIcon(QStyle.StandardPixmap.SP_MediaSeekBackward),
            "A frame back when paused, 5 s back when playing (Left)",
        )
        self.step_button = self._button(
            style.standardIcon(QStyle.StandardPixmap.SP_MediaSeekForward),
            "A frame on when paused, 5 s on when playing (Right)",
        )
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # arrow keys belong to the window
        self.time_label = QLabel(timecode(0))
        self.speed = QComboBox()
        self.speed.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        for speed in SPEEDS:
            self.speed.addItem(f"{speed:g}x", speed)
        self.speed.setCurrentIndex(SPEEDS.index(1.0))
        self.speed.setToolTip("Playback speed")

        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        for widget in (self.play_button, self.back_button, self.step_button):
            layout.addWidget(widget)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.time_label)
        layout.addWidget(self.speed)

        self.play_button.clicked.connect(self.play_toggled)
        self.back_button.clicked.connect(self.step_back_requested)
        self.step_button.clicked.connect(self.step_requested)
        self.slider.sliderReleased.connect(self._seek_to_slider)
        self.slider.actionTriggered.connect(self._slider_action)
        self.speed.currentIndexChanged.connect(
            lambda index: self.speed_changed.emit(float(self.speed.itemData(index)))
        )
        self._duration = 0.0

    def show_state(self, *, seekable: bool, paused: bool, duration: float | None) -> None:
        """Enable what the source allows (a device cannot pause or seek)."""
        for widget in (self.play_button, self.back_button, self.step_button, self.slider):
            widget.setEnabled(seekable)
        self.speed.setEnabled(seekable)
        self.play_button.setIcon(self._icons["play" if paused else "pause"])
        self._duration = duration or 0.0
        self.slider.setRange(0, round(self._duration * SLIDER_UNITS_PER_S))

    def show_position(self, seconds: float) -> None:
        if not self.slider.isSliderDown():
            self.slider.setValue(round(seconds * SLIDER_UNITS_PER_S))
        total = f" / {timecode(self._duration)}" if self._duration else ""
        self.time_label.setText(timecode(seconds) + total)

    def _seek_to_slider(self) -> None:
        self.seek_requested.emit(self.slider.value() / SLIDER_UNITS_PER_S)

    def _slider_action(self, action: int) -> None:
        """A click on the groove or a key on the slider seeks at once; a drag seeks on release."""
        if action != QAbstractSlider.SliderAction.SliderMove.value:
            self.seek_requested.emit(self.slider.sliderPosition() / SLIDER_UNITS_PER_S)

    @staticmethod
    def _button(icon, tip: str) -> QToolButton:
        button = QToolButton()
        button.setIcon(icon)
        button.setToolTip(tip)
        button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        return button
