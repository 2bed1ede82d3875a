"""The committed demo clip and its ground truth stay usable, and Kvasir-SEG access fails clearly."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from training.data import DEFAULT_ROOT, resolve_dataset
from training.make_demo import load_demo_masks, save_masks

ASSETS = Path(__file__).resolve().parents[1] / "assets"
DEMO_CLIP = ASSETS / "demo.mp4"
DEMO_MASKS = ASSETS / "demo.masks.npz"


@pytest.fixture(scope="module")
def demo_frames() -> tuple[list[float], tuple[int, int]]:
    """Presentation times of every decoded frame, and the (height, width) they all share."""
    with av.open(str(DEMO_CLIP)) as container:
        frames = [(frame.time, (frame.height, frame.width)) for frame in container.decode(video=0)]
    sizes = {size for _, size in frames}
    assert len(sizes) == 1
    return [time for time, _ in frames], sizes.pop()


def test_demo_clip_is_10_to_30_seconds_and_under_5_mb(demo_frames) -> None:
    times, _ = demo_frames
    frame_duration = times[1] - times[0]
    assert 10 <= times[-1] - times[0] + frame_duration <= 30
    assert DEMO_CLIP.stat().st_size < 5_000_000


def test_sidecar_has_one_mask_per_frame_mostly_non_empty(demo_frames) -> None:
    times, size = demo_frames
    masks = load_demo_masks(DEMO_MASKS)
    assert masks.dtype == bool
    assert masks.shape == (len(times), *size)
    assert masks.any(axis=(1, 2)).mean() >= 0.9
    assert DEMO_MASKS.stat().st_size < 1_000_000


def test_demo_shows_only_test120_images() -> None:
    if not DEFAULT_ROOT.is_dir():
        pytest.skip(f"Kvasir-SEG absent at {DEFAULT_ROOT}: cannot check the demo's ids")
    with np.load(DEMO_MASKS) as sidecar:
        shown = set(sidecar["source_ids"].ravel()) - {""}
    assert shown
    assert shown <= set(resolve_dataset(DEFAULT_ROOT, "test120"))
    assert not shown & set(resolve_dataset(DEFAULT_ROOT, "train880"))


def test_masks_round_trip_through_the_sidecar(tmp_path: Path) -> None:
    masks = np.random.default_rng(0).random((3, 5, 13)) < 0.5  # width not a multiple of 8
    path = tmp_path / "clip.masks.npz"
    save_masks(path, [np.packbits(mask, axis=-1) for mask in masks], 13, 25, [("a", "")] * 3)
    np.testing.assert_array_equal(load_demo_masks(path), masks)
