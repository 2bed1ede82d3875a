"""The picture: the newest annotated frame, scaled to the widget with its aspect kept.

The frame reaches Qt without a copy: ``Result.annotated`` is a fresh array the Result owns, so a
QImage is wrapped around its memory and the Result is kept referenced for as long as that image
is shown. Scaling happens only in ``paintEvent``, at the widget's device pixel ratio, so a HiDPI
screen gets its full resolution.
"""

from __future__ import annotations

import time
from collections import deque

from PyQt6.QtCore import QPointF, QRectF, QSize, Qt, pyqtSignal
from PyQt6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPaintEvent, QPen, QPolygonF
from PyQt6.QtWidgets import QSizePolicy, QWidget

from polypview.overlay import EdgeMarker, boxes, edge_markers
from polypview.pipeline import Result

MARKER_COLOUR = QColor(255, 200, 0)
MARKER_SIZE = 0.04  # arrow length as a share of the picture's shorter side on screen
RATE_WINDOW_S = 2.0


def as_qimage(result: Result) -> QImage:
    """A QImage over ``result.annotated``'s memory (BGR, no copy); keep ``result`` alive with it."""
    image = result.annotated
    height, width = image.shape[:2]
    return QImage(image.data, width, height, image.strides[0], QImage.Format.Format_BGR888)


def fitted(picture: QSize, area: QRectF) -> QRectF:
    """The largest rectangle of ``picture``'s aspect centred in ``area``."""
    scale = min(area.width() / picture.width(), area.height() / picture.height())
    width, height = picture.width() * scale, picture.height() * scale
    return QRectF(
        area.x() + (area.width() - width) / 2,
        area.y() + (area.height() - height) / 2,
        width,
        height,
    )


class VideoView(QWidget):
    """Shows the newest Result; ``painted`` and ``painted_fps`` say what reached the screen."""

    double_clicked = pyqtSignal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(320, 180)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)  # every pixel is painted
        self.show_edge_markers = True
        self._result: Result | None = None  # owns the memory self._image points into
        self._image: QImage | None = None
        self._markers: list[EdgeMarker] = []
        self._markers_for: int | None = None  # mask_index the markers were computed from
        self._painted_at: deque[float] = deque(maxlen=512)
        self.painted = 0  # frames painted since the view was made
        self._shown_index: int | None = None

    @property
    def result(self) -> Result | None:
        return self._result

    @property
    def markers(self) -> list[EdgeMarker]:
        return self._markers

    def painted_fps(self) -> float:
        """Distinct frames painted per second over the last RATE_WINDOW_S."""
        now = time.monotonic()
        recent = [at for at in self._painted_at if at > now - RATE_WINDOW_S]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / (now - recent[0])

    def show_result(self, result: Result) -> None:
        self._result, self._image = result, as_qimage(result)
        self._markers = self._find_markers(result)
        self.update()

    def clear(self) -> None:
        self._result = self._image = None
        self._markers = []
        self.update()

    def picture_rect(self) -> QRectF | None:
        """Where the picture lies in the widget, in logical pixels."""
        if self._image is None:
            return None
        return fitted(self._image.size(), QRectF(self.rect()))

    def paintEvent(self, event: QPaintEvent | None) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), Qt.GlobalColor.black)
        target = self.picture_rect()
        if self._image is None or target is None:
            painter.end()
            return
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        painter.drawImage(target, self._image)
        if self.show_edge_markers and self._markers:
            self._draw_markers(painter, target)
        painter.end()
        if self._result is not None and self._result.frame.index != self._shown_index:
            self._shown_index = self._result.frame.index
            self.painted += 1
            self._painted_at.append(time.monotonic())

    def mouseDoubleClickEvent(self, event: QMouseEvent | None) -> None:
        self.double_clicked.emit()

    def _find_markers(self, result: Result) -> list[EdgeMarker]:
        """Markers for the detections (the filter's), or for the mask's regions without a filter;
        a mask's regions are found once, not once per frame that shows it."""
        if result.mask is None:
            self._markers_for = None
            return []
        if result.detections:
            regions = [detection.box for detection in result.detections]
        elif result.mask_index == self._markers_for:
            return self._markers
        else:
            regions = boxes(result.mask)
        self._markers_for = result.mask_index
        height, width = result.mask.shape
        return edge_markers(regions, width, height)

    def _draw_markers(self, painter: QPainter, target: QRectF) -> None:
        assert self._image is not None
        scale = target.width() / self._image.width()
        length = MARKER_SIZE * min(target.width(), target.height())
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(QPen(Qt.GlobalColor.black, 1))
        painter.setBrush(MARKER_COLOUR)
        for marker in self._markers:
            base = QPointF(target.x() + marker.x * scale, target.y() + marker.y * scale)
            tip = base + QPointF(marker.dx, marker.dy) * length
            side = QPointF(-marker.dy, marker.dx) * (length / 2)
            painter.drawPolygon(QPolygonF([tip, base + side, base - side]))
