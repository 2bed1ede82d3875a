"""Which model segments, on which backend: the installed models with their test Dice."""

from __future__ import annotations

from collections.abc import Callable

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import QComboBox, QFormLayout, QGroupBox, QLabel, QWidget

from polypview.modelfile import ModelCard


def describe_card(card: ModelCard) -> str:
    """``name  Dice 0.457``: the test figure from the card, where it has one."""
    dice = next(
        (
            figures["dice"]
            for figures in card.metrics.values()
            if isinstance(figures, dict) and "dice" in figures
        ),
        None,
    )
    score = f"Dice {dice:.3f}" if isinstance(dice, int | float) else "no test Dice"
    return f"{card.name}  {score}"


class ModelPanel(QGroupBox):
    """Emits ``model_requested(reference, backend)`` when the user picks a model or backend;
    ``show_model`` follows what the controller actually runs (a failed load reverts the choice)."""

    model_requested = pyqtSignal(str, str)

    def __init__(
        self,
        catalogue: Callable[[], list[ModelCard]],
        backends: list[str],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__("Model", parent)
        self._catalogue = catalogue
        self.models = QComboBox()
        self.backends = QComboBox()
        for box in (self.models, self.backends):
            box.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.backends.addItems(["auto", *backends])
        self.in_use = QLabel("no model loaded")
        self.in_use.setWordWrap(True)
        form = QFormLayout(self)
        form.addRow("Model", self.models)
        form.addRow("Backend", self.backends)
        form.addRow(self.in_use)
        self.refresh()
        self.models.activated.connect(self._request)
        self.backends.activated.connect(self._request)

    def refresh(self) -> None:
        """List the installed models again (one may have been added)."""
        current = self.models.currentData()
        self.models.clear()
        for card in self._catalogue():
            self.models.addItem(describe_card(card), str(card.card_path))
            self.models.setItemData(
                self.models.count() - 1,
                f"{card.status}; {card.card_path}",
                Qt.ItemDataRole.ToolTipRole,
            )
        if current is not None:
            self._select(current)

    def show_model(
        self, card: ModelCard | None, backend: str | None, loading: str | None = None
    ) -> None:
        if card is not None:
            if self.models.findData(str(card.card_path)) < 0:  # loaded from elsewhere
                self.models.addItem(describe_card(card), str(card.card_path))
            self._select(str(card.card_path))
        if loading:
            self.in_use.setText(f"loading {loading} ...")
        elif card is None:
            self.in_use.setText("no model loaded: the video plays without segmentation")
        else:
            self.in_use.setText(f"{card.name} on {backend}")

    def set_backend(self, backend: str) -> None:
        index = self.backends.findText(backend)
        if index >= 0:
            self.backends.setCurrentIndex(index)

    def _select(self, card_path: str) -> None:
        index = self.models.findData(card_path)
        if index >= 0:
            self.models.setCurrentIndex(index)

    def _request(self) -> None:
        reference = self.models.currentData()
        if reference is not None:
            self.model_requested.emit(reference, self.backends.currentText())
