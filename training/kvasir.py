"""Read Kvasir-SEG in place, so training, evaluation and the demo builder share one loader.

The dataset is never copied into the repository: it is read from ``../shared/data/kvasir-seg``
beside the repository root, or from the folder named by ``$POLYPVIEW_KVASIR``.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

DEFAULT_ROOT = Path(
    os.environ.get("POLYPVIEW_KVASIR")
    or Path(__file__).resolve().parents[2] / "shared" / "data" / "kvasir-seg"
)
# The masks are JPEG-compressed: their pixels sit near 0 or 255, never in between.
MASK_THRESHOLD = 128


def require_root(root: Path | str) -> Path:
    """Return ``root`` as a Path, or fail with one line saying where the dataset was expected."""
    root = Path(root)
    if not (root / "images").is_dir() or not (root / "masks").is_dir():
        raise FileNotFoundError(
            f"Kvasir-SEG not found at {root} (needs images/ and masks/; set POLYPVIEW_KVASIR)"
        )
    return root


def read_split(root: Path | str, name_or_path: str | Path) -> list[str]:
    """Image ids of a split: a name such as ``"test120"`` (``splits/<name>.txt``) or a file path."""
    split_file = Path(name_or_path)
    if isinstance(name_or_path, str) and split_file.name == name_or_path and not split_file.suffix:
        split_file = require_root(root) / "splits" / f"{name_or_path}.txt"
    if not split_file.is_file():
        raise FileNotFoundError(f"split file not found: {split_file}")
    return [line.strip() for line in split_file.read_text().splitlines() if line.strip()]


def load_pair(root: Path | str, image_id: str) -> tuple[np.ndarray, np.ndarray]:
    """The BGR uint8 image (H x W x 3) and its bool polyp mask (H x W) for one id."""
    root = require_root(root)
    image = _read(root / "images" / f"{image_id}.jpg", cv2.IMREAD_COLOR)
    mask = _read(root / "masks" / f"{image_id}.jpg", cv2.IMREAD_GRAYSCALE) >= MASK_THRESHOLD
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask {mask.shape} and image {image.shape[:2]} differ for {image_id}")
    return image, mask


def _read(path: Path, flags: int) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path}")
    pixels = cv2.imread(str(path), flags)
    if pixels is None:
        raise ValueError(f"cannot decode image: {path}")
    return pixels
