"""The heads-up display: live figures over the corner of the picture, in one glance."""

from __future__ import annotations

from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QLabel, QWidget

HUD_STYLE = (
    "color: #e8e8e8; background-color: rgba(0, 0, 0, 150); font-family: monospace;"
    "font-size: 11px; padding: 4px 6px; border-radius: 3px"
)


def _ms(value: float | int | None) -> str:
    """Milliseconds, with a decimal where a whole number would hide the figure (video delay)."""
    if value is None:
        return "-"
    return f"{value:.1f} ms" if value < 10 else f"{value:.0f} ms"


def hud_text(
    stats: dict[str, float | int | None] | None, painted_fps: float, backend: str | None
) -> str:
    """The lines the HUD shows, from ``Pipeline.stats.snapshot()`` and the view's own rate."""
    if stats is None:
        return "no video"
    return "\n".join(
        [
            f"shown {painted_fps:5.1f} fps   segmented {stats['segmented_fps']:5.1f} fps",
            f"video delay {_ms(stats['video_delay_ms_p50'])}   "
            f"annotation delay {_ms(stats['annotation_delay_ms_p50'])}",
            f"dropped {stats['dropped']}   stale {stats['stale']}",
            backend or "no model loaded",
        ]
    )


class Hud(QLabel):
    """A translucent label in the top-left corner of its parent (the video view)."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setStyleSheet(HUD_STYLE)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.move(8, 8)

    def show_figures(
        self, stats: dict[str, float | int | None] | None, painted_fps: float, backend: str | None
    ) -> None:
        self.setText(hud_text(stats, painted_fps, backend))
        self.adjustSize()
