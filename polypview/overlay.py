"""Draw a segmentation mask over a video frame: outline, translucent fill or bounding boxes.

Also the geometry of the edge markers (``edge_markers``): arrows on the picture's border that point
at a polyp close to it, where the eye, held on the centre of the screen, is slowest to find one.

Everything here runs once per displayed frame (1080p60 leaves ~16 ms for the whole pipeline), so
each function copies the frame at most once (none with ``out=frame``), works on the mask's bounding
rectangle where it can, and leaves the per-pixel work to OpenCV.

Frames are H x W x 3 BGR uint8; masks are H x W, foreground wherever non-zero (0/255 uint8, bool,
or any numeric dtype). Colours are BGR tuples, as OpenCV expects.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

import cv2
import numpy as np

Colour = tuple[int, int, int]
Box = tuple[int, int, int, int]

DEFAULT_COLOUR: Colour = (0, 255, 0)
DEFAULT_OPACITY = 0.4
EDGE_MARGIN = 0.15  # a polyp whose centre is this close to the border (share of the shorter side)

# Pure primaries rather than CSS values (CSS "green" is a dull 0,128,0); RGB like the other forms.
_NAMED_COLOURS_RGB: dict[str, Colour] = {
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "yellow": (255, 255, 0),
    "cyan": (0, 255, 255),
    "magenta": (255, 0, 255),
    "orange": (255, 165, 0),
}


class OverlayStyle(StrEnum):
    CONTOUR = "contour"
    FILL = "fill"
    BOX = "box"
    OFF = "off"  # the picture as captured: the segmenter and tracker still run


@dataclass(frozen=True, slots=True)
class OverlayOptions:
    """How the mask is shown, as one validated value the CLI and GUI can pass around.

    ``style`` also accepts its plain string ("contour", "fill", "box"); ``thickness`` None means
    scaled to the frame (see ``auto_thickness``); ``opacity`` is used by the fill style and
    ``min_area`` (pixels) by the box style.
    """

    style: OverlayStyle = OverlayStyle.CONTOUR
    colour: Colour = DEFAULT_COLOUR
    opacity: float = DEFAULT_OPACITY
    thickness: int | None = None
    min_area: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "style", OverlayStyle(self.style))
        if len(self.colour) != 3 or not all(0 <= int(c) <= 255 for c in self.colour):
            raise ValueError(f"colour must be three 0-255 values (B, G, R), got {self.colour!r}")
        _check_opacity(self.opacity)
        if self.thickness is not None:
            _check_thickness(self.thickness)


def auto_thickness(frame_shape: tuple[int, ...]) -> int:
    """Line width that looks the same at every resolution: 2 px at 540p, 3 at 720p, 4 at 1080p."""
    return max(1, round(min(frame_shape[:2]) / 270))


def contours(mask: np.ndarray) -> list[np.ndarray]:
    """Outlines of every region and every hole, as int32 (N, 1, 2) arrays of (x, y) points.

    Holes are kept (RETR_LIST) because a mask with a hole must look like one. CHAIN_APPROX_SIMPLE
    only drops the inner points of straight horizontal, vertical and diagonal runs, which a line
    redraws pixel for pixel, so the outline stays exact at a fraction of the points.
    """
    found, _ = cv2.findContours(_as_uint8(mask), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    return list(found)


def boxes(mask: np.ndarray, min_area: int = 0) -> list[Box]:
    """Bounding box of each 8-connected region with at least ``min_area`` pixels, left to right.

    Boxes are (x1, y1, x2, y2) with x2 and y2 exclusive, so ``mask[y1:y2, x1:x2]`` crops a region.
    Regions come from their outer borders; pixels are counted only when ``min_area`` needs it, and
    then only inside the region's own box: labelling a whole 1080p frame takes 6-12 ms.
    """
    mask = _as_uint8(mask)
    # RETR_CCOMP puts the outer border of every region at the top level, even inside a hole.
    found, hierarchy = cv2.findContours(mask, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    result = []
    for outline, (*_, parent) in zip(found, hierarchy[0] if found else (), strict=True):
        if parent >= 0:
            continue
        rect = cv2.boundingRect(outline)
        x, y, width, height = rect
        # Every region has a pixel, and none has more pixels than its box.
        if min_area <= 1 or (width * height >= min_area and _area(mask, outline, rect) >= min_area):
            result.append((x, y, x + width, y + height))
    return sorted(result)


def draw_contours(
    frame: np.ndarray,
    mask: np.ndarray,
    *,
    colour: Colour = DEFAULT_COLOUR,
    thickness: int | None = None,
    antialias: bool = True,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Outline the mask, centred on its boundary pixels; the default style, as it hides no tissue.

    ``antialias=False`` draws hard 8-connected lines, which at thickness 1 are exactly the mask's
    boundary pixels. ``out`` receives the result (pass ``frame`` to draw in place).
    """
    mask, out = _prepare(frame, mask, out)
    width = _resolve_thickness(out, thickness)
    outlines = contours(mask)
    if outlines:
        line_type = cv2.LINE_AA if antialias else cv2.LINE_8
        cv2.drawContours(out, outlines, -1, colour, width, line_type)
    return out


def draw_fill(
    frame: np.ndarray,
    mask: np.ndarray,
    *,
    colour: Colour = DEFAULT_COLOUR,
    opacity: float = DEFAULT_OPACITY,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Tint the masked pixels: ``frame * (1 - opacity) + colour * opacity``, rounded.

    Pixels outside the mask keep their exact values. ``out`` as for ``draw_contours``.
    """
    _check_opacity(opacity)
    mask, out = _prepare(frame, mask, out)
    left, top, width, height = cv2.boundingRect(mask)
    if width:
        roi = out[top : top + height, left : left + width]
        # One affine map per pixel (scale by 1 - opacity, add colour * opacity), rounded once.
        blend = np.hstack([np.eye(3) * (1 - opacity), np.array(colour, float)[:, None] * opacity])
        cv2.copyTo(cv2.transform(roi, blend), mask[top : top + height, left : left + width], roi)
    return out


def draw_boxes(
    frame: np.ndarray,
    mask: np.ndarray,
    *,
    colour: Colour = DEFAULT_COLOUR,
    thickness: int | None = None,
    min_area: int = 0,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Frame each region of at least ``min_area`` pixels, centring the line on its outermost pixels.

    Lines are not anti-aliased: axis-aligned edges are already crisp. ``out`` as for
    ``draw_contours``.
    """
    mask, out = _prepare(frame, mask, out)
    width = _resolve_thickness(out, thickness)
    for x1, y1, x2, y2 in boxes(mask, min_area):
        cv2.rectangle(out, (x1, y1), (x2 - 1, y2 - 1), colour, width, cv2.LINE_8)
    return out


def draw(
    frame: np.ndarray, mask: np.ndarray, options: OverlayOptions, *, out: np.ndarray | None = None
) -> np.ndarray:
    """Draw the mask in the style ``options`` selects (``off``: an unchanged copy, or ``out``)."""
    match options.style:
        case OverlayStyle.OFF:
            return _prepare(frame, mask, out)[1]
        case OverlayStyle.CONTOUR:
            return draw_contours(
                frame, mask, colour=options.colour, thickness=options.thickness, out=out
            )
        case OverlayStyle.FILL:
            return draw_fill(frame, mask, colour=options.colour, opacity=options.opacity, out=out)
        case OverlayStyle.BOX:
            return draw_boxes(
                frame,
                mask,
                colour=options.colour,
                thickness=options.thickness,
                min_area=options.min_area,
                out=out,
            )


@dataclass(frozen=True, slots=True)
class EdgeMarker:
    """Where to point at a polyp near the border: the point of the border nearest to it, and the
    unit direction from there to the polyp's centre (into the picture). Frame pixels."""

    x: float
    y: float
    dx: float
    dy: float


def edge_markers(
    regions: Iterable[Box], width: int, height: int, margin: float = EDGE_MARGIN
) -> list[EdgeMarker]:
    """A marker for each box whose centre lies within ``margin`` x the shorter side of the
    ``width`` x ``height`` picture's border, on its nearest side (left, right, top, bottom on a
    tie)."""
    reach = margin * min(width, height)
    markers = []
    for x1, y1, x2, y2 in regions:
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        sides = [
            (cx, EdgeMarker(0.0, cy, 1.0, 0.0)),
            (width - cx, EdgeMarker(float(width), cy, -1.0, 0.0)),
            (cy, EdgeMarker(cx, 0.0, 0.0, 1.0)),
            (height - cy, EdgeMarker(cx, float(height), 0.0, -1.0)),
        ]
        distance, marker = min(sides, key=lambda side: side[0])
        if distance <= reach:
            markers.append(marker)
    return markers


def parse_colour(text: str) -> Colour:
    """Read a colour as people write it, in RGB order, and return it in OpenCV's BGR order.

    Accepts "#rrggbb", "r,g,b" (0-255 each) and a few names ("green", "yellow", ...).
    """
    spec = text.strip().lower()
    rgb: Colour | None = _NAMED_COLOURS_RGB.get(spec)
    if re.fullmatch(r"#[0-9a-f]{6}", spec):
        rgb = (int(spec[1:3], 16), int(spec[3:5], 16), int(spec[5:7], 16))
    elif re.fullmatch(r"\d{1,3}\s*,\s*\d{1,3}\s*,\s*\d{1,3}", spec):
        r, g, b = (int(part) for part in spec.split(","))
        rgb = (r, g, b) if max(r, g, b) <= 255 else None
    if rgb is None:
        names = ", ".join(_NAMED_COLOURS_RGB)
        raise ValueError(
            f"invalid colour {text!r}: use '#rrggbb', 'r,g,b' with values 0-255, or one of {names}"
        )
    return rgb[2], rgb[1], rgb[0]


def _as_uint8(mask: np.ndarray) -> np.ndarray:
    """The mask as uint8 without a copy where possible; OpenCV treats any non-zero as foreground."""
    mask = np.asarray(mask)
    if mask.dtype == np.uint8:
        return mask
    return (mask if mask.dtype == np.bool_ else mask != 0).view(np.uint8)


def _area(mask: np.ndarray, outline: np.ndarray, rect: tuple[int, int, int, int]) -> int:
    """Pixel count of the 8-connected region that ``outline`` borders, labelled within ``rect``."""
    x, y, width, height = rect
    _, labels, stats, _ = cv2.connectedComponentsWithStats(
        mask[y : y + height, x : x + width], connectivity=8
    )
    px, py = outline[0, 0]
    return int(stats[labels[py - y, px - x], cv2.CC_STAT_AREA])


def _prepare(
    frame: np.ndarray, mask: np.ndarray, out: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Check the inputs; return the uint8 mask and the array to draw into, holding the frame."""
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(
            f"frame must be an H x W x 3 uint8 BGR image, got shape {frame.shape} {frame.dtype}"
        )
    mask = np.asarray(mask)
    if mask.shape != frame.shape[:2]:
        raise ValueError(
            f"mask shape {mask.shape} does not match frame size {frame.shape[:2]} (height, width)"
        )
    if out is None:
        out = frame.copy()
    elif out.shape != frame.shape or out.dtype != np.uint8 or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous uint8 array of shape {frame.shape}")
    elif out is not frame:
        np.copyto(out, frame)
    return _as_uint8(mask), out


def _resolve_thickness(frame: np.ndarray, thickness: int | None) -> int:
    if thickness is None:
        return auto_thickness(frame.shape)
    _check_thickness(thickness)
    return thickness


def _check_thickness(thickness: int) -> None:
    if thickness < 1:
        raise ValueError(f"thickness must be at least 1 pixel, got {thickness}")


def _check_opacity(opacity: float) -> None:
    if not 0 <= opacity <= 1:
        raise ValueError(f"opacity must be between 0 and 1, got {opacity}")
