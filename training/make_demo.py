"""Build ``assets/demo.mp4``: Kvasir-SEG test images seen through a slowly moving virtual endoscope.

No shippable real clip has pixel masks, so the demo animates still test images instead: a virtual
camera pans, zooms and rolls smoothly over each image, which then dissolves into the next. The mask
gets the identical warp (nearest interpolation), so every frame has its exact ground truth, kept in
``demo.masks.npz``. During a cross-fade the ground truth is the mask of the dominant image (blend
weight >= 0.5; the incoming image at exactly 0.5). Only ids from ``splits/test120.txt`` are used, so
the demo never shows an image a network was trained on.

    python -m training.make_demo [--root DIR] [--out assets/demo.mp4] [--seconds 20] [--fps 25]
                                 [--size 720x576] [--seed 0]
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from polypview.video import ClipWriter
from training.data import DEFAULT_ROOT, load_pair, resolve_dataset

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "assets" / "demo.mp4"
SPLIT = "test120"
IMAGE_COUNT = 8
FADE_SECONDS = 0.8
MAX_ROLL_DEGREES = 4.0
# Eligible images: at most mild downscaling, one polyp that is clearly visible but not filling the
# view, and centred enough to stay in view while the camera moves.
MAX_SOURCE_WIDTH = 800
POLYP_AREA_RANGE = (0.05, 0.30)
MAX_CENTROID_OFFSET = 0.25  # of the image size, from the centre
WOBBLE_AMPLITUDE = 0.06  # of the free pan travel: a hand-held scope never rests completely
WOBBLE_PERIOD_SECONDS = 2.3


@dataclass(frozen=True, slots=True)
class Pose:
    """Virtual camera: pan as a fraction (-1..1) of the travel the zoom allows, zoom >= 1, roll."""

    pan_x: float
    pan_y: float
    zoom: float
    roll_degrees: float


@dataclass(frozen=True, slots=True)
class Shot:
    """A test image on screen from ``start`` to ``end`` seconds, the camera easing between poses."""

    image_id: str
    image: np.ndarray
    mask: np.ndarray
    start: float
    end: float
    start_pose: Pose
    end_pose: Pose
    wobble_phase: float

    def pose_at(self, time: float) -> Pose:
        progress = min(max((time - self.start) / (self.end - self.start), 0.0), 1.0)
        eased = (1 - math.cos(math.pi * progress)) / 2
        wobble_angle = 2 * math.pi * time / WOBBLE_PERIOD_SECONDS + self.wobble_phase
        a, b = self.start_pose, self.end_pose
        return Pose(
            a.pan_x + (b.pan_x - a.pan_x) * eased + WOBBLE_AMPLITUDE * math.sin(wobble_angle),
            a.pan_y + (b.pan_y - a.pan_y) * eased + WOBBLE_AMPLITUDE * math.cos(wobble_angle),
            a.zoom + (b.zoom - a.zoom) * eased,
            a.roll_degrees + (b.roll_degrees - a.roll_degrees) * eased,
        )


def view_geometry(
    zoom: float, source: tuple[int, int], out: tuple[int, int]
) -> tuple[float, np.ndarray]:
    """Scale, and how far (x, y in source pixels) the view's centre may travel from the image's.

    At zoom 1 the scale is the smallest at which the output rectangle, rolled by up to
    MAX_ROLL_DEGREES, still lies inside the image, so no frame ever samples outside it.
    """
    cos, sin = math.cos(math.radians(MAX_ROLL_DEGREES)), math.sin(math.radians(MAX_ROLL_DEGREES))
    (out_w, out_h), source_size = out, np.array(source, float)
    extent = np.array([out_w * cos + out_h * sin, out_w * sin + out_h * cos])
    scale = (extent / source_size).max() * zoom
    return scale, (source_size - extent / scale) / 2


def warp_matrix(pose: Pose, source: tuple[int, int], out: tuple[int, int]) -> np.ndarray:
    """2x3 affine taking source pixels to output pixels for this camera pose."""
    scale, travel = view_geometry(pose.zoom, source, out)
    centre_x, centre_y = np.array(source) / 2 + (pose.pan_x, pose.pan_y) * travel
    matrix = cv2.getRotationMatrix2D((centre_x, centre_y), pose.roll_degrees, scale)
    matrix[:, 2] += (out[0] / 2 - centre_x, out[1] / 2 - centre_y)
    return matrix


def is_eligible(mask: np.ndarray) -> bool:
    """Whether an image shows one clear polyp that stays in view while the camera moves."""
    height, width = mask.shape
    count, _, stats, centroids = cv2.connectedComponentsWithStats(mask.astype(np.uint8))
    if width > MAX_SOURCE_WIDTH or count != 2:  # background plus exactly one polyp
        return False
    low, high = POLYP_AREA_RANGE
    centre_offset = np.abs(centroids[1] / (width, height) - 0.5).max()
    return (
        low <= stats[1, cv2.CC_STAT_AREA] / mask.size <= high
        and centre_offset <= MAX_CENTROID_OFFSET
    )


def plan_shots(root: Path, seconds: float, out: tuple[int, int], seed: int) -> list[Shot]:
    """Pick test images and camera paths; the camera either approaches or backs off the polyp."""
    rng = np.random.default_rng(seed)
    pairs = {image_id: load_pair(root, image_id) for image_id in resolve_dataset(root, SPLIT)}
    eligible = sorted(image_id for image_id, pair in pairs.items() if is_eligible(pair[1]))
    if len(eligible) < IMAGE_COUNT:
        raise ValueError(f"only {len(eligible)} eligible {SPLIT} images, need {IMAGE_COUNT}")
    period = seconds / IMAGE_COUNT
    shots = []
    for index, image_id in enumerate(rng.choice(eligible, IMAGE_COUNT, replace=False)):
        image, mask = pairs[image_id]
        source = (mask.shape[1], mask.shape[0])
        wide = Pose(*rng.uniform(-0.5, 0.5, 2), rng.uniform(1.0, 1.08), rng.uniform(-3, 3))
        close_zoom = rng.uniform(1.3, 1.5)
        _, travel = view_geometry(close_zoom, source, out)
        polyp_offset = np.argwhere(mask).mean(axis=0)[::-1] - np.array(source) / 2
        toward_polyp = np.clip(polyp_offset / travel, -0.85, 0.85)
        close = Pose(*toward_polyp, close_zoom, rng.uniform(-3, 3))
        poses = (wide, close) if rng.random() < 0.5 else (close, wide)
        shots.append(
            Shot(
                str(image_id),
                image,
                mask,
                index * period - FADE_SECONDS / 2,
                (index + 1) * period + FADE_SECONDS / 2,
                *poses,
                rng.uniform(0, 2 * math.pi),
            )
        )
    return shots


def blend_weight(shot: Shot, time: float, first: bool, last: bool) -> float:
    """Cosine-eased fade in over the shot's first FADE_SECONDS and out over its last ones."""
    fade_in = 1.0 if first else (time - shot.start) / FADE_SECONDS
    fade_out = 1.0 if last else (shot.end - time) / FADE_SECONDS
    ramp = min(max(min(fade_in, fade_out), 0.0), 1.0)
    return (1 - math.cos(math.pi * ramp)) / 2


def render(
    shots: list[Shot], seconds: float, fps: int, out: tuple[int, int]
) -> Iterator[tuple[np.ndarray, np.ndarray, tuple[str, str]]]:
    """Yield (BGR frame, ground-truth mask, (dominant id, fading id or "")) for every frame."""
    for frame_index in range(round(seconds * fps)):
        time = frame_index / fps
        weighted = [
            (blend_weight(shot, time, index == 0, index == len(shots) - 1), shot)
            for index, shot in enumerate(shots)
        ]
        visible = [(weight, shot) for weight, shot in weighted if weight > 0]
        # Later shots win ties, so at exactly 0.5 the incoming image is the dominant one.
        dominant = max(reversed(visible), key=lambda pair: pair[0])[1]
        picture = np.zeros((out[1], out[0], 3), np.float32)
        for weight, shot in visible:
            picture += weight * warp(shot.image, shot, time, out, cv2.INTER_LINEAR)
        mask = warp(dominant.mask.astype(np.uint8), dominant, time, out, cv2.INTER_NEAREST)
        fading = next((shot.image_id for _, shot in visible if shot is not dominant), "")
        yield np.clip(picture + 0.5, 0, 255).astype(np.uint8), mask > 0, (dominant.image_id, fading)


def warp(
    pixels: np.ndarray, shot: Shot, time: float, out: tuple[int, int], flags: int
) -> np.ndarray:
    """Film ``pixels`` (the shot's image or mask) with the shot's camera at ``time``."""
    matrix = warp_matrix(shot.pose_at(time), (shot.mask.shape[1], shot.mask.shape[0]), out)
    return cv2.warpAffine(pixels, matrix, out, flags=flags, borderMode=cv2.BORDER_REFLECT_101)


def save_masks(
    path: Path,
    packed_masks: list[np.ndarray],
    width: int,
    fps: int,
    source_ids: list[tuple[str, str]],
) -> None:
    """Masks bit-packed along each row, then deflated: a 20 s clip's ground truth stays small."""
    np.savez_compressed(
        path,
        packed_masks=np.stack(packed_masks),
        shape=np.array((len(packed_masks), packed_masks[0].shape[0], width)),
        fps=np.array(fps),
        source_ids=np.array(source_ids),
    )


def load_demo_masks(path: Path | str) -> np.ndarray:
    """The (N, H, W) bool ground truth of the demo clip, one mask per video frame."""
    with np.load(path) as sidecar:
        width = int(sidecar["shape"][2])
        return np.unpackbits(sidecar["packed_masks"], axis=-1, count=width).astype(bool)


def parse_size(text: str) -> tuple[int, int]:
    width, _, height = text.partition("x")
    if not (width.isdigit() and height.isdigit()) or int(width) % 2 or int(height) % 2:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT with even numbers, got {text!r}")
    return int(width), int(height)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="Kvasir-SEG folder")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--size", type=parse_size, default=(720, 576), help="WIDTHxHEIGHT")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        shots = plan_shots(args.root, args.seconds, args.size, args.seed)
    except (FileNotFoundError, ValueError) as error:
        print(f"make_demo: {error}", file=sys.stderr)
        return 2

    packed_masks, source_ids = [], []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    width, height = args.size
    frame_rate = Fraction(args.fps)
    with ClipWriter(args.out, width=width, height=height, frame_rate=frame_rate) as writer:
        for picture, mask, ids in render(shots, args.seconds, args.fps, args.size):
            writer.write(picture)
            packed_masks.append(np.packbits(mask, axis=-1))
            source_ids.append(ids)
    save_masks(args.out.with_suffix(".masks.npz"), packed_masks, width, args.fps, source_ids)
    shown = ", ".join(shot.image_id for shot in shots)
    print(f"wrote {args.out} and its masks: {len(packed_masks)} frames showing {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
