"""Frame in, polyp mask out: preprocess, backend, postprocess.

The segmenter is the only place that knows how a model wants its input (size, channel order,
normalisation, from the model card) and how its output becomes a mask at the frame's own size,
so the app, the exporter, the benchmark and the evaluation all score the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from polypview.backends import Backend, create_backend
from polypview.modelfile import ModelCard, find_model, load_network


@dataclass(frozen=True, slots=True)
class Segmentation:
    probability: np.ndarray  # H x W float32 in [0, 1], at the frame's size
    mask: np.ndarray  # H x W uint8, 255 where polyp, 0 elsewhere

    @property
    def has_polyp(self) -> bool:
        return bool(self.mask.any())


class Segmenter:
    """Segments BGR uint8 frames of any size with one model on one backend."""

    def __init__(
        self,
        card: ModelCard,
        backend: Backend,
        *,
        threshold: float | None = None,
        min_area_fraction: float = 0.0,
    ) -> None:
        self.card = card
        self.backend = backend
        self.threshold = card.threshold if threshold is None else threshold
        self.min_area_fraction = min_area_fraction
        # Fold the 0..255 -> 0..1 scaling into the normalisation: one multiply-add per pixel.
        std = np.asarray(card.std, np.float32)
        self._scale = (1.0 / (255.0 * std)).reshape(3, 1, 1)
        self._offset = (-np.asarray(card.mean, np.float32) / std).reshape(3, 1, 1)

    @classmethod
    def open(
        cls,
        model: str | None = None,
        backend: str = "auto",
        *,
        threshold: float | None = None,
        min_area_fraction: float = 0.0,
    ) -> Segmenter:
        """A segmenter for an installed model name or a model file path."""
        card = find_model(model)
        return cls(
            card,
            create_backend(backend, load_network(card), card),
            threshold=threshold,
            min_area_fraction=min_area_fraction,
        )

    def preprocess(self, frame: np.ndarray) -> np.ndarray:
        """BGR uint8 H x W x 3 -> normalised RGB float32 1 x 3 x h x w at the model's size."""
        resized = resize_for_model(frame, self.card.input_size)
        rgb = resized[:, :, ::-1].transpose(2, 0, 1).astype(np.float32)
        return (rgb * self._scale + self._offset)[None]

    def postprocess(self, logits: np.ndarray, frame_shape: tuple[int, ...]) -> Segmentation:
        """Logits at the model's size -> probability and mask at the frame's size."""
        height, width = frame_shape[:2]
        small = 0.5 + 0.5 * np.tanh(0.5 * logits[0, 0], dtype=np.float32)  # sigmoid, no overflow
        probability = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
        return Segmentation(probability, self.mask_from(probability))

    def mask_from(self, probability: np.ndarray) -> np.ndarray:
        """The mask for a probability map at frame size: threshold, then the small-blob filter.

        Also for maps combined outside (flip averaging, smoothing over frames)."""
        mask = np.where(probability >= self.threshold, np.uint8(255), np.uint8(0))
        if self.min_area_fraction > 0:
            mask = remove_small_blobs(mask, self.min_area_fraction * mask.size)
        return mask

    def __call__(self, frame: np.ndarray) -> Segmentation:
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(
                f"expected a BGR uint8 H x W x 3 frame, got {frame.dtype} {frame.shape}"
            )
        return self.postprocess(self.backend.infer(self.preprocess(frame)), frame.shape)


def resize_for_model(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` at ``size`` (height, width) the way the networks are trained and run.

    Area averaging when shrinking (no aliasing from the endoscope's fine texture), bilinear when
    enlarging. Training caches its images through this same function.
    """
    height, width = size
    shrinking = image.shape[0] > height or image.shape[1] > width
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)


def remove_small_blobs(mask: np.ndarray, min_area: float) -> np.ndarray:
    """The mask without connected regions smaller than ``min_area`` pixels."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_area
    keep[0] = False  # label 0 is the background
    if keep[1:count].all():
        return mask
    return np.where(keep[labels], np.uint8(255), np.uint8(0))
