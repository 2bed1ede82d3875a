"""The committed demo clip and its ground truth stay usable, and Kvasir-SEG access fails clearly."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from training.kvasir import DEFAULT_ROOT, load_pair, read_split
from training.make_demo import load_demo_masks, main, save_masks

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
    assert shown <= set(read_split(DEFAULT_ROOT, "test120"))
    assert not shown & set(read_split(DEFAULT_ROOT, "train880"))


def test_masks_round_trip_through_the_sidecar(tmp_path: Path) -> None:
    masks = np.random.default_rng(0).random((3, 5, 13)) < 0.5  # width not a multiple of 8
    path = tmp_path / "clip.masks.npz"
    save_masks(path, [np.packbits(mask, axis=-1) for mask in masks], 13, 25, [("a", "")] * 3)
    np.testing.assert_array_equal(load_demo_masks(path), masks)


def make_fake_kvasir(root: Path) -> Path:
    """A one-image dataset: a grey picture whose mask is a white square, JPEG like the real one."""
    for folder in ("images", "masks", "splits"):
        (root / folder).mkdir(parents=True)
    mask = np.zeros((40, 60), np.uint8)
    mask[10:30, 20:40] = 255
    cv2.imwrite(str(root / "images" / "a.jpg"), np.full((40, 60, 3), 90, np.uint8))
    cv2.imwrite(str(root / "masks" / "a.jpg"), mask)
    (root / "splits" / "tiny.txt").write_text("a\n\n")
    return root


def test_read_split_and_load_pair_read_a_dataset(tmp_path: Path) -> None:
    root = make_fake_kvasir(tmp_path / "kvasir")
    assert read_split(root, "tiny") == ["a"]
    assert read_split(root, root / "splits" / "tiny.txt") == ["a"]
    image, mask = load_pair(root, "a")
    assert image.shape == (40, 60, 3) and image.dtype == np.uint8
    assert mask.dtype == bool and mask.sum() == 400 and mask[10:30, 20:40].all()


def test_missing_folder_mask_or_split_fail_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="Kvasir-SEG not found"):
        load_pair(tmp_path / "absent", "a")
    root = make_fake_kvasir(tmp_path / "kvasir")
    with pytest.raises(FileNotFoundError, match=r"split file not found: .*other\.txt"):
        read_split(root, "other")
    (root / "masks" / "a.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"file not found: .*masks.a\.jpg"):
        load_pair(root, "a")


def test_unreadable_image_fails_naming_the_file(tmp_path: Path) -> None:
    root = make_fake_kvasir(tmp_path / "kvasir")
    (root / "images" / "a.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match=r"cannot decode image: .*images.a\.jpg"):
        load_pair(root, "a")


def test_make_demo_refuses_without_the_dataset(tmp_path: Path, capsys) -> None:
    assert main(["--root", str(tmp_path / "absent"), "--out", str(tmp_path / "demo.mp4")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "Kvasir-SEG not found" in error
    assert not (tmp_path / "demo.mp4").exists()
