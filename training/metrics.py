"""Per-image binary segmentation metrics, computed from confusion counts.

Every score is a ratio of the counts (tp, fp, fn, tn) of one image, so a batch of images is one
``[B, 4]`` array, and processes under DDP all-reduce counts or per-image scores rather than masks.
The same functions take numpy arrays or torch tensors (on any device) and return the same kind.

The mean over images of per-image scores (what papers on Kvasir-SEG report, and what
``training.evaluate`` prints) is not the score of the summed counts: to reduce across processes,
all-reduce the sum of per-image scores and the number of images.

Empty cases, where a ratio would be 0 / 0:

- truth and prediction both empty (a correct "no polyp"): Dice, IoU, precision, recall and F2
  are all 1;
- truth empty, prediction not: all 0 (recall, 0 / 0, is defined as 0);
- truth not empty, prediction empty: all 0 (precision, 0 / 0, is defined as 0).

In the last two, mIoU is half the background IoU: the polyp half scores 0.

mIoU is the mean of polyp IoU and background IoU, as Keras ``MeanIoU(num_classes=2)`` gives for
one image; a class absent from both truth and prediction counts as IoU 1, which equals Keras's
leaving it out of the mean.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

Array = TypeVar("Array", np.ndarray, torch.Tensor)

COUNT_NAMES = ("tp", "fp", "fn", "tn")
SCORE_NAMES = ("dice", "iou", "precision", "recall", "f2", "miou")


def batch_counts(prediction: Array, truth: Array) -> Array:
    """``[B, 4]`` int64 counts (tp, fp, fn, tn) of B masks shaped ``[B, ...]`` (``[B, 1, H, W]``).

    Masks are bool, or any dtype where non-zero means polyp (the segmenter's 0/255 masks).
    """
    stack = torch.stack if isinstance(prediction, torch.Tensor) else np.stack
    prediction = prediction.reshape(len(prediction), -1) != 0
    truth = truth.reshape(len(truth), -1) != 0
    tp = (prediction & truth).sum(1)
    fp = (prediction & ~truth).sum(1)
    fn = (~prediction & truth).sum(1)
    tn = prediction.shape[1] - tp - fp - fn
    return stack([tp, fp, fn, tn], 1)


def image_counts(prediction: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Counts (tp, fp, fn, tn) of one H x W mask."""
    return batch_counts(prediction[None], truth[None])[0]


def scores_from_counts(counts: Array) -> dict[str, Array]:
    """Each of SCORE_NAMES for counts shaped ``[..., 4]``, as float64 shaped ``[...]``."""
    tp, fp, fn, tn = _unpack(counts)
    no_polyp = tp + fp + fn == 0  # none to find and none found: a correct "no polyp"
    polyp_iou = _ratio(tp, tp + fp + fn, no_polyp)
    background_iou = _ratio(tn, tn + fp + fn, tn + fp + fn == 0)
    return {
        "dice": _ratio(2 * tp, 2 * tp + fp + fn, no_polyp),
        "iou": polyp_iou,
        "precision": _ratio(tp, tp + fp, no_polyp),
        "recall": _ratio(tp, tp + fn, no_polyp),
        "f2": _ratio(5 * tp, 5 * tp + 4 * fn + fp, no_polyp),
        "miou": (polyp_iou + background_iou) / 2,
    }


def dice_from_counts(counts: Array) -> Array:
    """Dice of counts shaped ``[..., 4]``: the training loop's validation score."""
    tp, fp, fn, _ = _unpack(counts)
    return _ratio(2 * tp, 2 * tp + fp + fn, tp + fp + fn == 0)


def image_scores(prediction: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Each of SCORE_NAMES for one H x W mask against its truth."""
    scores = scores_from_counts(image_counts(prediction, truth))
    return {name: float(value) for name, value in scores.items()}


def _unpack(counts: Array) -> tuple[Array, Array, Array, Array]:
    is_tensor = isinstance(counts, torch.Tensor)
    counts = counts.double() if is_tensor else np.asarray(counts, np.float64)
    return counts[..., 0], counts[..., 1], counts[..., 2], counts[..., 3]


def _ratio(numerator: Array, denominator: Array, perfect: Array) -> Array:
    """``numerator / denominator``; where that is 0 / 0, 1 if ``perfect`` else 0."""
    return (numerator + perfect) / (denominator + perfect).clip(min=1)
