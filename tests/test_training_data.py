"""Training data: splits, the resized cache, dataset errors, and paired augmentation."""

from __future__ import annotations

import random
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from training.data import (
    MIN_CROP_FRACTION,
    DatasetSpec,
    background_square,
    load_cached,
    resolve_dataset,
    validation_split,
    write_compact_copy,
)

SIZE = (24, 32)


def write_dataset(
    root: Path, shapes: dict[str, tuple[int, int]], mask_extension: str = ".png"
) -> Path:
    """A tiny dataset: a blue image with a white square in its mask, per id and (height, width)."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for image_id, (height, width) in shapes.items():
        image = np.zeros((height, width, 3), np.uint8)
        image[:, :, 0] = 200  # blue in OpenCV's BGR order
        mask = np.zeros((height, width), np.uint8)
        mask[height // 4 : height // 2, width // 4 : width // 2] = 255
        cv2.imwrite(str(root / "images" / f"{image_id}.jpg"), image)
        cv2.imwrite(str(root / "masks" / f"{image_id}{mask_extension}"), mask)
    return root


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "data", {"a": (48, 64), "b": (60, 50), "c": (30, 40)})


def test_kvasir_train_and_test_ids_never_overlap(kvasir_root: Path) -> None:
    train = resolve_dataset(kvasir_root, "train880")
    test = resolve_dataset(kvasir_root, "test120")
    assert (len(train), len(test)) == (880, 120)
    assert not set(train) & set(test)


def test_validation_split_is_fixed_whatever_the_order_and_disjoint() -> None:
    ids = [f"id{number:03d}" for number in range(100)]
    train, val = validation_split(ids, 0.1, seed=0)
    assert (train, val) == validation_split(list(reversed(ids)), 0.1, seed=0)
    assert len(val) == 10 and not set(train) & set(val)
    assert sorted(train + val) == ids
    assert validation_split(ids, 0.1, seed=1)[1] != val


def test_cache_round_trip_resizes_to_rgb_and_binary_masks(dataset: Path, tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    built = load_cached(dataset, ["c", "a", "b"], SIZE, cache_dir)
    assert built.ids == ["a", "b", "c"]
    assert built.images.shape == (3, *SIZE, 3) and built.images.dtype == np.uint8
    assert built.masks.shape == (3, *SIZE) and set(np.unique(built.masks)) == {0, 1}
    assert built.images[..., 2].min() > 150 and built.images[..., 0].max() < 50  # RGB
    for image_file in (dataset / "images").iterdir():
        image_file.unlink()  # the second read must come from the cache alone
    loaded = load_cached(dataset, ["a", "b", "c"], SIZE, cache_dir)
    assert np.array_equal(loaded.images, built.images)
    assert np.array_equal(loaded.masks, built.masks)
    images, masks = loaded.to_dataset()[1]
    assert images.shape == (3, *SIZE) and masks.shape == (1, *SIZE)
    assert images.dtype == masks.dtype == torch.uint8
    assert [path.suffix for path in cache_dir.iterdir()] == [".npz"]


def test_cache_key_changes_with_size_and_ids(dataset: Path, tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    load_cached(dataset, ["a", "b"], SIZE, cache_dir)
    load_cached(dataset, ["b", "a"], SIZE, cache_dir)
    assert len(list(cache_dir.iterdir())) == 1
    assert load_cached(dataset, ["a", "b"], (16, 16), cache_dir).images.shape[1:3] == (16, 16)
    assert len(load_cached(dataset, ["a"], SIZE, cache_dir)) == 1
    assert len(list(cache_dir.iterdir())) == 3


def test_any_folder_of_pairs_reads_with_its_split_files(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "clinic", {"1": (20, 20), "2": (20, 20)}, ".bmp")
    assert resolve_dataset(root) == ["1", "2"]
    split_file = tmp_path / "mine.txt"
    split_file.write_text("2\n")
    assert resolve_dataset(root, split_file) == ["2"]
    (root / "splits").mkdir()
    (root / "splits" / "small.txt").write_text("1\n")
    assert resolve_dataset(root, "small") == ["1"]


def test_missing_folders_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"dataset folder not found: .*nowhere"):
        resolve_dataset(tmp_path / "nowhere")
    (tmp_path / "only-images" / "images").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"folder not found: .*only-images.masks"):
        resolve_dataset(tmp_path / "only-images")


def test_unpaired_files_are_named(dataset: Path) -> None:
    (dataset / "masks" / "b.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"1 images .* have no mask: b\.jpg"):
        resolve_dataset(dataset)
    (dataset / "images" / "b.jpg").unlink()
    (dataset / "images" / "c.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"1 masks .* have no image: c\.png"):
        resolve_dataset(dataset)


def test_split_ids_without_files_are_named(dataset: Path, tmp_path: Path) -> None:
    split_file = tmp_path / "split.txt"
    split_file.write_text("a\nzz\n")
    with pytest.raises(FileNotFoundError, match=r"without files .*: zz"):
        resolve_dataset(dataset, split_file)
    with pytest.raises(FileNotFoundError, match="split file not found"):
        resolve_dataset(dataset, "absent")


def test_unreadable_image_is_named(dataset: Path, tmp_path: Path) -> None:
    (dataset / "images" / "b.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match=r"cannot read image: .*b\.jpg"):
        load_cached(dataset, ["a", "b"], SIZE, tmp_path / "cache")


def test_mask_of_another_size_is_named(dataset: Path, tmp_path: Path) -> None:
    cv2.imwrite(str(dataset / "masks" / "a.png"), np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match=r"mask .*a\.png is 10x10 but its image is 64x48"):
        load_cached(dataset, ["a"], SIZE, tmp_path / "cache")


# Augmentation: the transforms need kornia (the `train` extra).


def blob_batch(count: int = 8, size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Masks with one ellipse each; images whose red channel is the mask, the rest noise."""
    generator = np.random.default_rng(0)
    masks = np.zeros((count, size, size), np.uint8)
    for mask in masks:
        centre = tuple(int(value) for value in generator.integers(size // 3, 2 * size // 3, 2))
        axes = tuple(int(value) for value in generator.integers(size // 8, size // 4, 2))
        cv2.ellipse(mask, centre, axes, float(generator.uniform(0, 180)), 0, 360, 1, -1)
    masks_tensor = torch.from_numpy(masks)[:, None].float()
    images = torch.rand(count, 3, size, size, generator=torch.Generator().manual_seed(0))
    images[:, :1] = masks_tensor
    return images, masks_tensor


def test_geometry_moves_image_and_mask_together() -> None:
    transforms = pytest.importorskip("training.transforms", reason="augmentation needs kornia")
    images, masks = blob_batch()
    torch.manual_seed(0)
    images, masks = transforms.geometric_augmentation()(images, masks)
    assert set(masks.unique().tolist()) <= {0.0, 1.0}
    red = images[:, 0] > 0.5
    target = masks[:, 0] > 0.5
    iou = (red & target).sum() / (red | target).sum()
    assert iou > 0.95


@pytest.mark.parametrize("preset", ["strong", "medium", "light"])
def test_every_preset_keeps_masks_binary_and_repeats_with_the_seed(preset: str) -> None:
    transforms = pytest.importorskip("training.transforms", reason="augmentation needs kornia")
    images, masks = blob_batch()
    augment = transforms.AUGMENTATIONS[preset]()
    outputs = []
    for _ in range(2):
        torch.manual_seed(7)
        outputs.append(augment(images.clone(), masks.clone()))
    (first_images, first_masks), (second_images, second_masks) = outputs
    assert torch.equal(first_images, second_images) and torch.equal(first_masks, second_masks)
    assert first_images.shape == images.shape and first_masks.shape == masks.shape
    assert set(first_masks.unique().tolist()) <= {0.0, 1.0}
    assert first_images.min() >= 0.0 and first_images.max() <= 1.0
    assert not torch.equal(first_masks, masks)  # something moved


def test_on_screen_text_marks_images_never_masks_and_repeats_with_the_seed() -> None:
    overlays = pytest.importorskip("training.overlays", reason="training needs its extras")
    images, masks = blob_batch()

    class Unchanged(torch.nn.Module):
        def forward(self, images: torch.Tensor, masks: torch.Tensor) -> tuple:
            return images, masks

    augment = overlays.WithOnScreenText(Unchanged(), overlays.OnScreenText(1.0, sprites=8))
    outputs = []
    for _ in range(2):
        torch.manual_seed(3)
        outputs.append(augment(images, masks))
    (first, first_masks), (second, _) = outputs
    assert torch.equal(first, second)
    assert torch.equal(first_masks, masks)
    assert first.shape == images.shape and first.min() >= 0 and first.max() <= 1
    changed = (first != images).flatten(1).any(1)
    assert changed.all()  # every frame got its overlay
    assert ((first != images).flatten(1).float().mean(1) < 0.5).all()  # a banner, not a frame
    assert torch.equal(overlays.OnScreenText(0.0)(images), images)
    with pytest.raises(ValueError, match=r"within 0\.\.1"):
        overlays.OnScreenText(1.5)


def test_normalise_uses_per_channel_mean_and_std() -> None:
    transforms = pytest.importorskip("training.transforms", reason="augmentation needs kornia")
    images = torch.full((1, 3, 2, 2), 0.5)
    normalised = transforms.normalise(images, (0.5, 0.25, 0.0), (1.0, 0.5, 0.25))
    assert normalised[0, :, 0, 0].tolist() == [0.0, 0.5, 2.0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("data/polypgen:train", DatasetSpec(Path("data/polypgen"), "train")),
        ("data/polypgen:train:val", DatasetSpec(Path("data/polypgen"), "train", "val")),
    ],
)
def test_dataset_specs_read_and_write_back(text: str, expected: DatasetSpec) -> None:
    assert DatasetSpec.parse(text) == expected
    assert DatasetSpec.parse(expected.text()) == expected


@pytest.mark.parametrize("text", ["data/polypgen", "data/polypgen:", ":train", "a:b:c:d"])
def test_a_malformed_dataset_spec_says_what_it_expects(text: str) -> None:
    with pytest.raises(ValueError, match="PATH:TRAIN_SPLIT"):
        DatasetSpec.parse(text)


def test_a_background_square_never_touches_the_polyp() -> None:
    mask = np.zeros((300, 400), bool)
    mask[100:220, 150:260] = True
    for seed in range(20):
        x, y, side = background_square(mask, random.Random(seed))
        assert side >= MIN_CROP_FRACTION * 300
        assert x >= 0 and y >= 0 and x + side <= 400 and y + side <= 300
        assert not mask[y : y + side, x : x + side].any()


def test_a_polyp_filling_the_frame_leaves_no_background() -> None:
    mask = np.ones((100, 100), bool)
    mask[:10, :10] = False
    assert background_square(mask, random.Random(0)) is None


def test_a_compact_copy_leaves_out_a_split_and_can_travel_lighter(tmp_path: Path) -> None:
    shapes = {f"id{index}": (120, 160) for index in range(4)}
    root = write_dataset(tmp_path / "data", shapes)
    textured = np.random.default_rng(0).integers(0, 255, (120, 160, 3), np.uint8)
    for image_id in shapes:  # JPEG quality only shows on texture
        cv2.imwrite(str(root / "images" / f"{image_id}.jpg"), textured)
    (root / "splits").mkdir()
    (root / "splits" / "train.txt").write_text("id0\nid1\nid2\n")
    (root / "splits" / "test.txt").write_text("id3\n")

    fine = write_compact_copy(root, (64, 64), tmp_path / "fine", leave_out=["test"])
    light = write_compact_copy(root, (64, 64), tmp_path / "light", quality=40)
    assert resolve_dataset(fine) == ["id0", "id1", "id2"]
    assert not (fine / "splits" / "test.txt").exists()
    assert resolve_dataset(fine, "train") == ["id0", "id1", "id2"]
    assert resolve_dataset(light, "test") == ["id3"]
    size = {copy: (copy / "images" / "id0.jpg").stat().st_size for copy in (fine, light)}
    assert size[light] < size[fine]


def test_compact_copy_refuses_a_quality_out_of_range(dataset: Path, tmp_path: Path, capsys) -> None:
    from training.data import main as data_main

    with pytest.raises(SystemExit):
        data_main(["--root", str(dataset), "--out", str(tmp_path / "copy"), "--quality", "0"])
    assert "--quality must be between 1 and 100" in capsys.readouterr().err
