"""How the mask is shown: style, threshold, opacity, colour, the persistence filter, edge markers
and the detection sound, as one value (``OverlayChoices``) that the settings remember."""

from __future__ import annotations

from dataclasses import dataclass, replace

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtGui import QColor
from PyQt6.QtWidgets import (
    QCheckBox,
    QColorDialog,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QPushButton,
    QSlider,
    QWidget,
)

from polypview.overlay import DEFAULT_COLOUR, DEFAULT_OPACITY, Colour, OverlayOptions, OverlayStyle

STYLE_LABELS = {
    OverlayStyle.CONTOUR: "Contour",
    OverlayStyle.FILL: "Fill",
    OverlayStyle.BOX: "Box",
    OverlayStyle.OFF: "Off",
}
PERCENT = 100


@dataclass(frozen=True, slots=True)
class OverlayChoices:
    """Everything the panel sets. ``colour`` is BGR, as the overlay draws it."""

    style: OverlayStyle = OverlayStyle.CONTOUR
    colour: Colour = DEFAULT_COLOUR
    opacity: float = DEFAULT_OPACITY
    threshold: float = 0.5
    tracking: bool = True  # the persistence filter
    edge_markers: bool = True
    sound: bool = False

    def overlay_options(self) -> OverlayOptions:
        return OverlayOptions(style=self.style, colour=self.colour, opacity=self.opacity)


def _percent_slider(low: int, high: int, tip: str) -> QSlider:
    slider = QSlider(Qt.Orientation.Horizontal)
    slider.setRange(low, high)
    slider.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    slider.setToolTip(tip)
    return slider


class OverlayPanel(QGroupBox):
    """Emits ``changed`` with the new ``OverlayChoices`` whenever the user changes one."""

    changed = pyqtSignal(object)  # OverlayChoices

    def __init__(self, choices: OverlayChoices, parent: QWidget | None = None) -> None:
        super().__init__("Overlay", parent)
        self._choices = choices
        self.style_box = QComboBox()
        self.style_box.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        for style, label in STYLE_LABELS.items():
            self.style_box.addItem(label, style)
        self.threshold = _percent_slider(5, 95, "Probability above which a pixel is polyp")
        self.opacity = _percent_slider(0, 100, "Opacity of the fill style")
        self.colour_button = QPushButton()
        self.colour_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.tracking = QCheckBox("Persistence filter")
        self.tracking.setToolTip("Raise a detection only for a region seen in 3 of 6 frames")
        self.edge_markers = QCheckBox("Edge markers")
        self.edge_markers.setToolTip("Arrows on the border pointing at a polyp close to it")
        self.sound = QCheckBox("Sound on a new detection")
        for box in (self.tracking, self.edge_markers, self.sound):
            box.setFocusPolicy(Qt.FocusPolicy.NoFocus)

        form = QFormLayout(self)
        form.addRow("Style", self.style_box)
        form.addRow("Threshold", self.threshold)
        form.addRow("Opacity", self.opacity)
        form.addRow("Colour", self.colour_button)
        form.addRow(self.tracking)
        form.addRow(self.edge_markers)
        form.addRow(self.sound)
        self._show(choices)

        self.style_box.currentIndexChanged.connect(
            lambda index: self._set(style=self.style_box.itemData(index))
        )
        self.threshold.valueChanged.connect(lambda value: self._set(threshold=value / PERCENT))
        self.opacity.valueChanged.connect(lambda value: self._set(opacity=value / PERCENT))
        self.colour_button.clicked.connect(self._pick_colour)
        self.tracking.toggled.connect(lambda on: self._set(tracking=on))
        self.edge_markers.toggled.connect(lambda on: self._set(edge_markers=on))
        self.sound.toggled.connect(lambda on: self._set(sound=on))

    @property
    def choices(self) -> OverlayChoices:
        return self._choices

    def set_colour(self, colour: Colour) -> None:
        self._set(colour=colour)
        self._show_colour(colour)

    def _set(self, **changes: object) -> None:
        self._choices = replace(self._choices, **changes)
        self.changed.emit(self._choices)

    def _show(self, choices: OverlayChoices) -> None:
        self.style_box.setCurrentIndex(self.style_box.findData(choices.style))
        self.threshold.setValue(round(choices.threshold * PERCENT))
        self.opacity.setValue(round(choices.opacity * PERCENT))
        self.tracking.setChecked(choices.tracking)
        self.edge_markers.setChecked(choices.edge_markers)
        self.sound.setChecked(choices.sound)
        self._show_colour(choices.colour)

    def _show_colour(self, colour: Colour) -> None:
        blue, green, red = colour
        name = QColor(red, green, blue).name()
        self.colour_button.setText(name)
        self.colour_button.setStyleSheet(f"background-color: {name}")

    def _pick_colour(self) -> None:
        blue, green, red = self._choices.colour
        picked = QColorDialog.getColor(QColor(red, green, blue), self, "Overlay colour")
        if picked.isValid():
            self.set_colour((picked.blue(), picked.green(), picked.red()))
