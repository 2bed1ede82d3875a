"""The training losses: per-pixel ones for the mask, and one for frames that hold no polyp.

``dice_bce_loss`` is the recipe's default; ``structure_loss`` is PraNet's alternative
(``training.train --loss structure``); ``false_alarm_loss`` is added on top with
``--false-alarm-weight``; ``distillation_loss`` with ``--teacher``. Each takes logits and {0, 1}
masks (or a teacher's logits) shaped ``[B, 1, H, W]``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# The false-alarm term looks at this share of a polyp-free frame: its most confident pixels.
FLAG_AREA = 0.005


def dice_bce_loss(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """BCE for every pixel plus soft Dice per image, which keeps small polyps from vanishing."""
    logits = logits.float()
    bce = F.binary_cross_entropy_with_logits(logits, masks)
    probabilities = torch.sigmoid(logits)
    overlap = (probabilities * masks).sum(dim=(1, 2, 3))
    total = probabilities.sum(dim=(1, 2, 3)) + masks.sum(dim=(1, 2, 3))
    dice = (2 * overlap + 1) / (total + 1)
    return bce + (1 - dice).mean()


def structure_loss(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """PraNet's loss (Fan et al. 2020): BCE and soft IoU, both weighted up near the boundary."""
    logits = logits.float()
    weight = 1 + 5 * torch.abs(F.avg_pool2d(masks, 31, stride=1, padding=15) - masks)
    bce = F.binary_cross_entropy_with_logits(logits, masks, reduction="none")
    bce = (weight * bce).sum(dim=(2, 3)) / weight.sum(dim=(2, 3))
    probabilities = torch.sigmoid(logits)
    overlap = (probabilities * masks * weight).sum(dim=(2, 3))
    union = ((probabilities + masks) * weight).sum(dim=(2, 3))
    iou = 1 - (overlap + 1) / (union - overlap + 1)
    return (bce + iou).mean()


LOSSES = {"dice-bce": dice_bce_loss, "structure": structure_loss}


def false_alarm_loss(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """BCE towards "no polyp" on the mean of each polyp-free frame's top FLAG_AREA logits.

    Per-pixel BCE dilutes a false blob over the whole frame and the soft Dice term of an empty
    mask saturates (its gradient falls as 1 / (1 + area)^2), so neither stops a confident fold.
    This term acts where the frame-level decision looks, the frame's most confident area, and
    keeps its full gradient however large the blob. Averaged over the whole batch, so its weight
    follows the share of polyp-free frames."""
    polyp_free = masks.flatten(1).amax(1) < 0.5
    return (F.softplus(top_area_logit(logits)) * polyp_free).mean()


def top_area_logit(logits: torch.Tensor) -> torch.Tensor:
    """Per frame, the mean logit of its most confident FLAG_AREA: how sure it holds a polyp."""
    flat = logits.float().flatten(1)
    return flat.topk(max(1, int(FLAG_AREA * flat.shape[1])), dim=1).values.mean(1)


def distillation_loss(logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """BCE towards a trained teacher's probabilities (Hinton et al. 2015, per pixel).

    A soft target says how sure the teacher is at every pixel, on polyp-free frames and at
    boundaries alike: more to learn from per step than a hard mask, which is what a network
    trained from scratch on two cores is short of."""
    return F.binary_cross_entropy_with_logits(logits.float(), torch.sigmoid(teacher_logits.float()))
