"""Overlay drawing: the outline is exactly the mask's boundary, fills and boxes touch only what
they should, and bad input fails with a clear message."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from polypview import overlay
from polypview.overlay import EdgeMarker, OverlayOptions, OverlayStyle

HEIGHT, WIDTH = 240, 320
GREY = 100  # background frame value; differs from every channel of the colours used below
COLOUR = (0, 255, 0)


def circle_and_rectangle() -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    cv2.circle(mask, (90, 120), 60, 255, -1)
    cv2.rectangle(mask, (190, 40), (290, 200), 255, -1)
    return mask


def rectangle_with_hole() -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    cv2.rectangle(mask, (60, 40), (260, 200), 255, -1)
    cv2.circle(mask, (160, 120), 45, 0, -1)
    return mask


MASKS = {"circle+rectangle": circle_and_rectangle, "hole": rectangle_with_hole}


def grey_frame() -> np.ndarray:
    return np.full((HEIGHT, WIDTH, 3), GREY, np.uint8)


def boundary(mask: np.ndarray) -> np.ndarray:
    """Mask pixels with a 4-neighbour outside the mask (mask XOR its erosion by a cross)."""
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    return (mask > 0) & ~(cv2.erode(mask, cross) > 0)


def is_outline_band(frame: np.ndarray, drawn: np.ndarray, mask: np.ndarray, reach: float) -> bool:
    """Every boundary pixel changed, and no pixel farther than ``reach`` from the boundary."""
    changed = (drawn != frame).any(axis=2)
    edge = boundary(mask)
    distance = cv2.distanceTransform((~edge).view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return bool(changed[edge].all()) and bool((distance[changed] <= reach).all())


@pytest.mark.parametrize("make_mask", MASKS.values(), ids=MASKS.keys())
def test_hard_one_pixel_outline_is_exactly_the_boundary(make_mask):
    mask, frame = make_mask(), grey_frame()
    drawn = overlay.draw_contours(frame, mask, colour=COLOUR, thickness=1, antialias=False)
    np.testing.assert_array_equal((drawn != frame).any(axis=2), boundary(mask))
    assert (drawn[boundary(mask)] == COLOUR).all()


@pytest.mark.parametrize("thickness", [None, 1, 2, 3, 4, 6])
@pytest.mark.parametrize("make_mask", MASKS.values(), ids=MASKS.keys())
def test_anti_aliased_outline_stays_on_the_boundary(make_mask, thickness):
    mask, frame = make_mask(), grey_frame()
    drawn = overlay.draw_contours(frame, mask, colour=COLOUR, thickness=thickness)
    width = thickness or overlay.auto_thickness(frame.shape)
    # One extra pixel for the anti-aliasing fringe.
    assert is_outline_band(frame, drawn, mask, reach=width + 1)


@pytest.mark.parametrize("make_mask", MASKS.values(), ids=MASKS.keys())
def test_outline_check_rejects_fill_and_boxes(make_mask):
    mask, frame = make_mask(), grey_frame()
    for drawn in (
        overlay.draw_fill(frame, mask, colour=COLOUR, opacity=1.0),
        overlay.draw_boxes(frame, mask, colour=COLOUR, thickness=1),
    ):
        assert not is_outline_band(frame, drawn, mask, reach=2)


@pytest.mark.parametrize("opacity", [0.0, 0.4, 0.75, 1.0])
def test_fill_blends_only_masked_pixels(opacity):
    frame = np.random.default_rng(0).integers(0, 256, (HEIGHT, WIDTH, 3), np.uint8)
    mask = rectangle_with_hole() > 0
    colour = (30, 200, 250)
    drawn = overlay.draw_fill(frame, mask, colour=colour, opacity=opacity)
    np.testing.assert_array_equal(drawn[~mask], frame[~mask])
    expected = np.rint(frame[mask] * (1 - opacity) + np.array(colour) * opacity)
    assert np.abs(drawn[mask].astype(int) - expected).max() <= 1


def test_any_nonzero_mask_value_is_foreground():
    frame, mask = grey_frame(), circle_and_rectangle()
    expected = overlay.draw_fill(frame, mask)
    for variant in (mask > 0, (mask > 0).astype(np.uint8), (mask > 0).astype(np.float32) * 0.5):
        np.testing.assert_array_equal(overlay.draw_fill(frame, variant), expected)


def blobs() -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    mask[20:60, 10:50] = 255  # 1600 px
    mask[100:130, 200:240] = 255  # two squares touching at a corner: one 8-connected region
    mask[130:150, 240:260] = 255
    mask[200:203, 300:303] = 255  # 9 px speck
    return mask


def test_boxes_bound_each_region():
    assert overlay.boxes(blobs()) == [(10, 20, 50, 60), (200, 100, 260, 150), (300, 200, 303, 203)]


def test_boxes_min_area_drops_small_regions():
    assert overlay.boxes(blobs(), min_area=10) == [(10, 20, 50, 60), (200, 100, 260, 150)]
    assert overlay.boxes(blobs(), min_area=9)[-1] == (300, 200, 303, 203)


def test_draw_boxes_draws_one_pixel_frames_on_the_outermost_pixels():
    frame = grey_frame()
    drawn = overlay.draw_boxes(frame, blobs(), colour=COLOUR, thickness=1, min_area=10)
    expected = np.zeros((HEIGHT, WIDTH), bool)
    for x1, y1, x2, y2 in [(10, 20, 50, 60), (200, 100, 260, 150)]:
        expected[[y1, y2 - 1], x1:x2] = True
        expected[y1:y2, [x1, x2 - 1]] = True
    np.testing.assert_array_equal((drawn != frame).any(axis=2), expected)


STYLES = list(OverlayStyle)


@pytest.mark.parametrize("style", STYLES)
def test_empty_mask_returns_an_unchanged_copy(style):
    frame = grey_frame()
    drawn = overlay.draw(frame, np.zeros((HEIGHT, WIDTH), np.uint8), OverlayOptions(style=style))
    assert drawn is not frame
    np.testing.assert_array_equal(drawn, grey_frame())
    assert overlay.boxes(np.zeros((HEIGHT, WIDTH), bool)) == []


@pytest.mark.parametrize("style", STYLES)
def test_out_receives_the_drawing_or_draws_in_place(style):
    options, mask = OverlayOptions(style=style), circle_and_rectangle()
    expected = overlay.draw(grey_frame(), mask, options)
    buffer = np.zeros_like(expected)
    assert overlay.draw(grey_frame(), mask, options, out=buffer) is buffer
    np.testing.assert_array_equal(buffer, expected)
    frame = grey_frame()
    assert overlay.draw(frame, mask, options, out=frame) is frame
    np.testing.assert_array_equal(frame, expected)


@pytest.mark.parametrize("style", STYLES)
def test_mask_of_another_size_is_rejected(style):
    with pytest.raises(ValueError, match=r"mask shape \(120, 160\) does not match frame size"):
        overlay.draw(grey_frame(), np.zeros((120, 160), np.uint8), OverlayOptions(style=style))


def test_style_off_leaves_the_picture_as_captured():
    frame, mask = grey_frame(), circle_and_rectangle()
    drawn = overlay.draw(frame, mask, OverlayOptions(style="off"))
    assert drawn is not frame
    np.testing.assert_array_equal(drawn, grey_frame())


@pytest.mark.parametrize(
    ("box", "expected"),
    [
        ((0, 40, 20, 60), EdgeMarker(0.0, 50.0, 1.0, 0.0)),  # touching the left border
        ((290, 100, 318, 130), EdgeMarker(320.0, 115.0, -1.0, 0.0)),  # near the right
        ((150, 2, 170, 20), EdgeMarker(160.0, 0.0, 0.0, 1.0)),  # near the top
        ((100, 220, 140, 240), EdgeMarker(120.0, 240.0, 0.0, -1.0)),  # on the bottom
        ((0, 0, 20, 20), EdgeMarker(0.0, 10.0, 1.0, 0.0)),  # a corner: left wins the tie
    ],
)
def test_edge_marker_points_from_the_nearest_border_at_the_polyp(box, expected):
    assert overlay.edge_markers([box], 320, 240) == [expected]


def test_edge_markers_skip_polyps_away_from_the_border():
    # 15% of the shorter side (240) is 36 px: a centre 37 px in is not near, 36 px is.
    assert overlay.edge_markers([(100, 100, 160, 140), (27, 100, 47, 120)], 320, 240) == []
    assert overlay.edge_markers([(26, 100, 46, 120)], 320, 240) == [
        EdgeMarker(0.0, 110.0, 1.0, 0.0)
    ]
    assert overlay.edge_markers([], 320, 240) == []


def test_draw_dispatches_to_the_style_function():
    frame, mask = grey_frame(), blobs()
    assert np.array_equal(
        overlay.draw(frame, mask, OverlayOptions(style="fill", colour=(1, 2, 3), opacity=0.5)),
        overlay.draw_fill(frame, mask, colour=(1, 2, 3), opacity=0.5),
    )
    assert np.array_equal(
        overlay.draw(frame, mask, OverlayOptions(style="box", thickness=2, min_area=10)),
        overlay.draw_boxes(frame, mask, thickness=2, min_area=10),
    )
    assert np.array_equal(
        overlay.draw(frame, mask, OverlayOptions()), overlay.draw_contours(frame, mask)
    )


@pytest.mark.parametrize(
    "kwargs", [{"style": "outline"}, {"opacity": 1.5}, {"thickness": 0}, {"colour": (0, 256, 0)}]
)
def test_invalid_options_are_rejected(kwargs):
    with pytest.raises(ValueError):
        OverlayOptions(**kwargs)


@pytest.mark.parametrize(("height", "thickness"), [(100, 1), (540, 2), (720, 3), (1080, 4)])
def test_auto_thickness_scales_with_the_frame(height, thickness):
    assert overlay.auto_thickness((height, height * 16 // 9, 3)) == thickness


@pytest.mark.parametrize(
    ("text", "bgr"),
    [
        ("#00ff00", (0, 255, 0)),
        ("#FF8000", (0, 128, 255)),
        ("green", (0, 255, 0)),
        (" Red ", (0, 0, 255)),
        ("0,255,0", (0, 255, 0)),
        ("10, 20, 30", (30, 20, 10)),
    ],
)
def test_parse_colour_reads_rgb_and_returns_bgr(text, bgr):
    assert overlay.parse_colour(text) == bgr


@pytest.mark.parametrize(
    "text", ["", "#12345", "#gggggg", "256,0,0", "1,2", "-1,0,0", "chartreuse"]
)
def test_parse_colour_rejects_nonsense(text):
    with pytest.raises(ValueError, match="invalid colour"):
        overlay.parse_colour(text)


def test_boxes_match_full_frame_labelling_on_random_masks():
    rng = np.random.default_rng(1)
    for _ in range(20):
        noise = cv2.GaussianBlur(rng.random((120, 160)).astype(np.float32), (0, 0), 1.5)
        mask = (noise > np.quantile(noise, rng.uniform(0.3, 0.9))).astype(np.uint8)
        _, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        for min_area in (0, 5, 40):
            expected = [(x, y, x + w, y + h) for x, y, w, h, area in stats[1:] if area >= min_area]
            assert overlay.boxes(mask, min_area) == sorted(expected)
