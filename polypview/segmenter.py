"""Frame in, polyp mask out: preprocess, backend, postprocess.

The segmenter is the only place that knows how a model wants its input (size, channel order,
normalisation, from the model card) and how its output becomes a mask at the frame's own size,
so the app, the exporter, the benchmark and the evaluation all score the same thing. How the
stages run, on the CPU with numpy or on the backend's GPU with torch, is the backend's frame
path (``polypview.framepath``); the segmenter has one way through either.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from polypview.backends import Backend, create_backend
from polypview.decision import FrameDecision
from polypview.framepath import (
    NoTimer,
    StageTimer,
    frame_path_for,
    resize_for_model,
    threshold_mask,
)
from polypview.modelfile import ModelCard, find_model, load_network
from polypview.segmentation import Segmentation

__all__ = ["Segmentation", "Segmenter", "remove_small_blobs", "resize_for_model"]


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
        self.decision = FrameDecision.from_card(card.decision, card.threshold)
        self.path = frame_path_for(backend, card)

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

    def preprocess(self, frame: np.ndarray) -> object:
        """The model's input for ``frame``: a numpy batch on the host path (1 x 3 x h x w
        float32, normalised RGB), a tensor on the backend's device on the device path."""
        with self.path.running():
            return self.path.preprocess(self.path.upload(frame))

    def from_probability(self, probability: np.ndarray) -> Segmentation:
        """The segmentation of a probability map at frame size combined outside (averaged over
        time or over flips): threshold, the small-blob filter, then the frame-level decision."""
        mask = self._without_small_blobs(threshold_mask(probability, self.threshold))
        return self.decide(Segmentation(probability, mask))

    def decide(self, segmentation: Segmentation) -> Segmentation:
        """The frame's score, and its mask cleared if the frame-level decision rules it out."""
        score = self.decision.score(segmentation.probability_map)
        mask = segmentation.mask
        if not self.decision.holds_polyp(score) and mask.any():
            mask = np.zeros_like(mask)
        return replace(segmentation, mask=mask, score=score)

    def _without_small_blobs(self, mask: np.ndarray) -> np.ndarray:
        if self.min_area_fraction > 0:
            return remove_small_blobs(mask, self.min_area_fraction * mask.size)
        return mask

    def __call__(self, frame: np.ndarray) -> Segmentation:
        return self.segment(frame, NoTimer())

    def segment(self, frame: np.ndarray, timer: StageTimer | NoTimer) -> Segmentation:
        """``self(frame)``, with each stage reported to ``timer`` (the benchmark's)."""
        return self.decide(self.undecided(frame, timer))

    def undecided(
        self, frame: np.ndarray, timer: StageTimer | NoTimer | None = None
    ) -> Segmentation:
        """The segmentation before the frame-level decision, for callers that combine maps
        first and decide once on the combination (``from_probability``)."""
        timer = NoTimer() if timer is None else timer
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(
                f"expected a BGR uint8 H x W x 3 frame, got {frame.dtype} {frame.shape}"
            )
        path = self.path
        with path.running():
            pixels = path.upload(frame)
            timer.lap("upload")
            batch = path.preprocess(pixels)
            timer.lap("preprocess")
            logits = path.infer(batch)
            timer.lap("inference")
            result = path.postprocess(logits, frame.shape[:2], self.threshold)
            timer.lap("postprocess")
            segmentation = path.download(result)
            timer.lap("download")
        if self.min_area_fraction > 0:
            segmentation = replace(segmentation, mask=self._without_small_blobs(segmentation.mask))
        return segmentation

    def stage_timer(self) -> StageTimer:
        """A timer whose laps wait for this segmenter's device."""
        return StageTimer(self.path.synchronize)


def remove_small_blobs(mask: np.ndarray, min_area: float) -> np.ndarray:
    """The mask without connected regions smaller than ``min_area`` pixels."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_area
    keep[0] = False  # label 0 is the background
    if keep[1:count].all():
        return mask
    return np.where(keep[labels], np.uint8(255), np.uint8(0))
