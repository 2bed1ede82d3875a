"""Segmentation datasets as resized in-memory caches: Kvasir-SEG, CVC-ClinicDB or any folder.

A dataset is a folder with ``images/`` and ``masks/`` whose files pair up by stem (any of
jpg/jpeg/png/bmp/tif; a mask may have another extension than its image) and, optionally,
``splits/<name>.txt`` files of ids. Training reads it once through the app's own
``resize_for_model`` into one ``.npz`` per (folder, ids, size), so every epoch after the first
costs no decoding and the network sees frames prepared exactly as the app prepares them.

Kvasir-SEG is read in place from ``../shared/data/kvasir-seg`` beside the repository (or the
folder named by ``$POLYPVIEW_KVASIR``), never copied into it. For a machine without the dataset,
``python -m training.data`` writes a compact resized copy (JPEG quality 95 images, PNG masks, the
split files; one split may stay at full resolution) that reads like any dataset:

    python -m training.data --root ../shared/data/kvasir-seg --size 320 --out .cache/kvasir-320
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import TensorDataset

from polypview.segmenter import resize_for_model

DEFAULT_ROOT = Path(
    os.environ.get("POLYPVIEW_KVASIR")
    or Path(__file__).resolve().parents[2] / "shared" / "data" / "kvasir-seg"
)
# The masks are JPEG-compressed: their pixels sit near 0 or 255, never in between.
MASK_THRESHOLD = 128
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
# Bump when the cached arrays change meaning, so old caches are never read.
CACHE_FORMAT_VERSION = 1
COMPACT_JPEG_QUALITY = 95
COMPACT_SPLITS = ("train880", "test120")
_NAMES_SHOWN = 5


@dataclass(frozen=True)
class CachedSplit:
    """A split at the model's size: RGB uint8 (N, H, W, 3), masks uint8 (N, H, W) in {0, 1}."""

    images: np.ndarray
    masks: np.ndarray
    ids: list[str]

    def __len__(self) -> int:
        return len(self.ids)

    def to_dataset(self) -> TensorDataset:
        """(image uint8 (3, H, W), mask uint8 (1, H, W)) pairs; ``.tensors`` holds the whole split.

        uint8 keeps the host-to-GPU copy four times smaller than float; convert there.
        """
        images = torch.from_numpy(self.images).permute(0, 3, 1, 2).contiguous()
        return TensorDataset(images, torch.from_numpy(self.masks)[:, None])


@dataclass(frozen=True)
class DatasetSpec:
    """One training dataset: a folder, its training split and where its validation comes from.

    Written ``PATH:TRAIN`` (validation is a fixed-seed fraction of TRAIN) or ``PATH:TRAIN:VAL``
    (the dataset's own validation split), as ``training.train --extra`` takes it.
    """

    root: Path
    train_split: str
    validation_split: str | None = None

    @classmethod
    def parse(cls, text: str) -> DatasetSpec:
        path, _, splits = text.partition(":") if ":" in text else (text, "", "")
        names = [name for name in splits.split(":") if name] if splits else []
        if not path or not 1 <= len(names) <= 2:
            raise ValueError(f"expected PATH:TRAIN_SPLIT[:VALIDATION_SPLIT], got {text!r}")
        return cls(Path(path), names[0], names[1] if len(names) == 2 else None)

    def text(self) -> str:
        """The spec as ``parse`` reads it back."""
        splits = [self.train_split, *([self.validation_split] if self.validation_split else [])]
        return ":".join([str(self.root), *splits])

    def __str__(self) -> str:
        splits = [self.train_split, *([self.validation_split] if self.validation_split else [])]
        return ":".join([self.root.name, *splits])


def read_split(root: Path | str, name_or_path: str | Path) -> list[str]:
    """Image ids of a split: a name such as ``"test120"`` (``splits/<name>.txt``) or a file path."""
    split_file = Path(name_or_path)
    if isinstance(name_or_path, str) and split_file.name == name_or_path and not split_file.suffix:
        split_file = Path(root) / "splits" / f"{name_or_path}.txt"
    if not split_file.is_file():
        raise FileNotFoundError(f"split file not found: {split_file}")
    return [line.strip() for line in split_file.read_text().splitlines() if line.strip()]


def load_pair(root: Path | str, image_id: str) -> tuple[np.ndarray, np.ndarray]:
    """The BGR uint8 image and bool mask of one id, at full size."""
    files = pair_files(Path(root))
    if image_id not in files:
        raise FileNotFoundError(f"no image with id {image_id!r} in {Path(root) / 'images'}")
    return read_pair(*files[image_id])


def resolve_dataset(root: Path | str, split: str | Path | None = None) -> list[str]:
    """Sorted ids of ``split`` (a name under ``splits/`` or an id file), or all pairs if None.

    Fails with one line naming the folder or the files when the dataset is not usable.
    """
    root = Path(root)
    pairs = pair_files(root)
    if split is None:
        return sorted(pairs)
    ids = read_split(root, split)
    missing = [image_id for image_id in ids if image_id not in pairs]
    if missing:
        raise FileNotFoundError(
            f"split {split} names {len(missing)} ids without files in {root}: {_some(missing)}"
        )
    return sorted(set(ids))


def validation_split(
    ids: Iterable[str], fraction: float = 0.1, seed: int = 0
) -> tuple[list[str], list[str]]:
    """(train_ids, val_ids): a fixed random ``fraction`` held out, whatever order ids come in."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction must lie between 0 and 1, got {fraction}")
    shuffled = sorted(set(ids))
    random.Random(seed).shuffle(shuffled)
    val_count = max(1, round(len(shuffled) * fraction))
    return sorted(shuffled[val_count:]), sorted(shuffled[:val_count])


def load_cached(
    root: Path | str, ids: Iterable[str], size: tuple[int, int], cache_dir: Path | str
) -> CachedSplit:
    """``ids`` of the dataset at ``root`` resized to ``size`` (height, width), in sorted id order.

    Read from ``cache_dir`` when a cache for exactly this folder, id set and size exists; built
    (a few seconds for Kvasir-SEG) and written atomically otherwise.
    """
    root = Path(root)
    ids = sorted(set(ids))
    if not ids:
        raise ValueError(f"no ids to load from {root}")
    cache_file = (
        Path(cache_dir) / f"{root.name}-{size[0]}x{size[1]}-{_cache_key(root, ids, size)}.npz"
    )
    if cache_file.is_file():
        with np.load(cache_file) as cached:
            return CachedSplit(cached["images"], cached["masks"], ids)
    pairs = pair_files(root)
    missing = [image_id for image_id in ids if image_id not in pairs]
    if missing:
        raise FileNotFoundError(f"no image and mask in {root} for ids: {_some(missing)}")
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:  # OpenCV releases the GIL
        resized = list(pool.map(lambda image_id: _read_resized(*pairs[image_id], size), ids))
    split = CachedSplit(
        np.stack([image for image, _ in resized]), np.stack([mask for _, mask in resized]), ids
    )
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=cache_file.parent, suffix=".tmp", delete=False) as tmp:
        try:
            np.savez(tmp, images=split.images, masks=split.masks)
        except BaseException:
            Path(tmp.name).unlink()
            raise
    os.replace(tmp.name, cache_file)
    return split


def load_background_crops(
    root: Path | str,
    ids: Iterable[str],
    size: tuple[int, int],
    cache_dir: Path | str,
    seed: int = 0,
) -> CachedSplit:
    """Polyp-free crops of polyp images: for each id, one square that holds no polyp pixel.

    Negatives from the same scopes and hospitals as the positives, so that the network learns
    "no polyp here" on the textures it otherwise only sees beside a polyp. Ids where no square
    of at least ``MIN_CROP_FRACTION`` of the short side is clean give none. Cached like
    ``load_cached``; the masks are all zero.
    """
    root = Path(root)
    ids = sorted(set(ids))
    key = _cache_key(root, [f"crops-{seed}", *ids], size)
    cache_file = Path(cache_dir) / f"{root.name}-crops-{size[0]}x{size[1]}-{key}.npz"
    if cache_file.is_file():
        with np.load(cache_file, allow_pickle=False) as cached:
            return CachedSplit(cached["images"], cached["masks"], list(cached["ids"]))
    pairs = pair_files(root)

    def crop(image_id: str) -> np.ndarray | None:
        image, mask = read_pair(*pairs[image_id])
        rng = random.Random(f"{seed}-{image_id}")
        square = background_square(mask, rng)
        if square is None:
            return None
        x, y, side = square
        patch = np.ascontiguousarray(image[y : y + side, x : x + side])
        return cv2.cvtColor(resize_for_model(patch, size), cv2.COLOR_BGR2RGB)

    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        crops = list(pool.map(crop, ids))
    kept = [
        (image_id, image) for image_id, image in zip(ids, crops, strict=True) if image is not None
    ]
    if not kept:
        raise ValueError(f"no polyp-free square in any of {len(ids)} images of {root}")
    images = np.stack([image for _, image in kept])
    split = CachedSplit(
        images,
        np.zeros(images.shape[:3], np.uint8),
        [f"{image_id}-background" for image_id, _ in kept],
    )
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=cache_file.parent, suffix=".tmp", delete=False) as tmp:
        np.savez(tmp, images=split.images, masks=split.masks, ids=np.array(split.ids))
    os.replace(tmp.name, cache_file)
    return split


# A background crop's side is at least this share of the image's short side, so that it still
# looks like a frame (wall, folds, light) rather than a texture patch.
MIN_CROP_FRACTION = 0.4


def background_square(mask: np.ndarray, rng: random.Random) -> tuple[int, int, int] | None:
    """(x, y, side) of a large square with no polyp pixel, or None; random among the largest."""
    height, width = mask.shape
    integral = cv2.integral(mask.astype(np.uint8))
    short = min(height, width)
    for fraction in (0.8, 0.7, 0.6, 0.5, MIN_CROP_FRACTION):
        side = int(short * fraction)
        step = max(1, side // 8)
        ys = np.arange(0, height - side + 1, step)
        xs = np.arange(0, width - side + 1, step)
        y0, x0 = np.meshgrid(ys, xs, indexing="ij")
        inside = (
            integral[y0 + side, x0 + side]
            - integral[y0, x0 + side]
            - integral[y0 + side, x0]
            + integral[y0, x0]
        )
        clean = np.argwhere(inside == 0)
        if len(clean):
            row, column = clean[rng.randrange(len(clean))]
            return int(xs[column]), int(ys[row]), side
    return None


def read_pair(image_path: Path, mask_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The BGR uint8 image and its bool mask at full size, or one line naming the bad file."""
    image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot read image: {image_path}")
    mask = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise ValueError(f"cannot read mask: {mask_path}")
    if mask.shape != image.shape[:2]:
        raise ValueError(
            f"mask {mask_path} is {mask.shape[1]}x{mask.shape[0]} but its image is "
            f"{image.shape[1]}x{image.shape[0]}"
        )
    return image, mask >= MASK_THRESHOLD


def write_compact_copy(
    root: Path | str,
    size: tuple[int, int],
    out: Path | str,
    keep_original: str | None = None,
    quality: int = COMPACT_JPEG_QUALITY,
    leave_out: Iterable[str] = (),
) -> Path:
    """A resized copy of the dataset at ``out``: JPEG images, PNG masks, the same split files.

    Images pass through ``resize_for_model`` here, so reading the copy at the same size later
    leaves them untouched (bar JPEG's small loss at ``quality``). The ids of the split named by
    ``keep_original`` are copied byte for byte instead, so test metrics computed from the copy are
    still at each image's original resolution. The splits named in ``leave_out`` (a test split
    that is scored elsewhere, say) are not copied at all, which keeps the copy light.
    """
    root, out = Path(root), Path(out)
    pairs = pair_files(root)
    left_out = set(leave_out)
    for split_name in left_out:
        for image_id in resolve_dataset(root, split_name):
            pairs.pop(image_id, None)
    originals = set(resolve_dataset(root, keep_original)) if keep_original else set()
    for folder in ("images", "masks", "splits"):
        (out / folder).mkdir(parents=True, exist_ok=True)

    def write(image_id: str) -> None:
        if image_id in originals:
            for source, folder in zip(pairs[image_id], ("images", "masks"), strict=True):
                shutil.copyfile(source, out / folder / source.name)
            return
        image, mask = _read_resized(*pairs[image_id], size)
        jpeg = [cv2.IMWRITE_JPEG_QUALITY, quality]
        cv2.imwrite(str(out / "images" / f"{image_id}.jpg"), image[:, :, ::-1], jpeg)
        cv2.imwrite(str(out / "masks" / f"{image_id}.png"), mask * np.uint8(255))

    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        list(pool.map(write, sorted(pairs)))
    for split_file in sorted((root / "splits").glob("*.txt")):
        if split_file.stem not in left_out:
            shutil.copyfile(split_file, out / "splits" / split_file.name)
    return out


def pair_files(root: Path) -> dict[str, tuple[Path, Path]]:
    """{id: (image path, mask path)} for a folder of images/ and masks/ paired by stem."""
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {root}")
    for folder in (root / "images", root / "masks"):
        if not folder.is_dir():
            raise FileNotFoundError(f"folder not found: {folder}")
    images, masks = _files_by_stem(root / "images"), _files_by_stem(root / "masks")
    without_mask = sorted(images.keys() - masks.keys())
    if without_mask:
        names = [images[stem].name for stem in without_mask]
        raise FileNotFoundError(
            f"{len(names)} images in {root / 'images'} have no mask: {_some(names)}"
        )
    without_image = sorted(masks.keys() - images.keys())
    if without_image:
        names = [masks[stem].name for stem in without_image]
        raise FileNotFoundError(
            f"{len(names)} masks in {root / 'masks'} have no image: {_some(names)}"
        )
    return {stem: (images[stem], masks[stem]) for stem in images}


def _files_by_stem(folder: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in IMAGE_EXTENSIONS or path.name.startswith("."):
            continue
        if path.stem in files:
            raise ValueError(
                f"two files for one id in {folder}: {files[path.stem].name}, {path.name}"
            )
        files[path.stem] = path
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {folder}")
    return files


def _read_resized(
    image_path: Path, mask_path: Path, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """RGB uint8 image through the app's resize; {0, 1} mask by area, then thresholded at half."""
    image, mask = read_pair(image_path, mask_path)
    rgb = cv2.cvtColor(resize_for_model(image, size), cv2.COLOR_BGR2RGB)
    height, width = size
    small_mask = cv2.resize(mask * np.uint8(255), (width, height), interpolation=cv2.INTER_AREA)
    return rgb, (small_mask >= MASK_THRESHOLD).astype(np.uint8)


def _cache_key(root: Path, ids: list[str], size: tuple[int, int]) -> str:
    identity = [CACHE_FORMAT_VERSION, str(root.resolve()), list(size), ids]
    return hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:16]


def _some(names: list[str]) -> str:
    more = f" and {len(names) - _NAMES_SHOWN} more" if len(names) > _NAMES_SHOWN else ""
    return ", ".join(names[:_NAMES_SHOWN]) + more


def _folder_mib(folder: Path) -> float:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()) / 2**20


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m training.data", description="Write a compact resized copy of a dataset."
    )
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="dataset folder")
    parser.add_argument("--size", type=int, default=320, help="square side in pixels")
    parser.add_argument("--out", type=Path, required=True, help="folder for the copy")
    parser.add_argument(
        "--keep-original", default="test120", help="split copied at full resolution ('' for none)"
    )
    parser.add_argument(
        "--quality",
        type=int,
        default=COMPACT_JPEG_QUALITY,
        help="JPEG quality of the resized images (lower travels lighter)",
    )
    parser.add_argument(
        "--leave-out",
        action="append",
        default=[],
        metavar="SPLIT",
        help="a split not to copy (repeatable), e.g. a test split scored elsewhere",
    )
    parser.add_argument(
        "--cache-dir", type=Path, help="also build and time the npz caches of the copy here"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.quality <= 100:
        parser.error(f"--quality must be between 1 and 100, not {args.quality}")
    size = (args.size, args.size)
    started = time.perf_counter()
    try:
        out = write_compact_copy(
            args.root, size, args.out, args.keep_original, args.quality, args.leave_out
        )
    except (OSError, ValueError) as error:
        sys.exit(f"training.data: {error}")
    print(f"{out}: {_folder_mib(out):.1f} MiB, written in {time.perf_counter() - started:.1f} s")
    if args.cache_dir is None:
        return
    for split_name in COMPACT_SPLITS:
        ids = resolve_dataset(out, split_name)
        for call in ("first", "second"):
            started = time.perf_counter()
            split = load_cached(out, ids, size, args.cache_dir)
            seconds = time.perf_counter() - started
            mib = (split.images.nbytes + split.masks.nbytes) / 2**20
            print(f"{split_name}: {len(split)} pairs, {mib:.0f} MiB, {call} load {seconds:.2f} s")


if __name__ == "__main__":
    main()
