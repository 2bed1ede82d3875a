"""Validation as the selection rule sees it: Dice on the frames with a polyp, and the frame-level
decision calibrated on all of them (``training.calibrate``'s rule, at the network's size)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader

from training.calibrate import AREA_FRACTIONS, TARGET_SHARE, THRESHOLDS, OperatingPoint, choose
from training.distributed import Distributed
from training.metrics import batch_counts, dice_from_counts
from training.transforms import normalise, to_device


@dataclass(frozen=True)
class Validation:
    dice: float  # mean per-image Dice over frames with a polyp
    decision: OperatingPoint  # the frame-level decision calibrated on these frames

    @property
    def flagged(self) -> float:
        return self.decision.frames_flagged

    @property
    def missed(self) -> float:
        return self.decision.frames_missed

    @property
    def score(self) -> float:
        """The model-selection signal: find polyps, and leave polyp-free frames clean."""
        return self.dice - self.flagged - self.missed


@torch.no_grad()
def validate(
    network: nn.Module,
    loader: DataLoader,
    distributed: Distributed,
    dtype: torch.dtype | None,
    normalisation: tuple[tuple[float, ...], tuple[float, ...]],
) -> Validation:
    """Dice on polyp frames, and the frame-level decision calibrated on all the frames.

    Each frame's scores (``polypview.decision``: the probability its top area reaches, for every
    candidate area) are counted against every candidate threshold, so processes all-reduce
    fixed-size counts and the operating point is chosen once, on the whole validation set."""
    network.eval()
    device = distributed.device
    thresholds = torch.tensor(THRESHOLDS, device=device)
    # Dice sum, polyp frames, polyp-free frames; then per (area, threshold): polyp frames
    # found, polyp-free frames flagged.
    totals = torch.zeros(3, device=device, dtype=torch.float64)
    found = torch.zeros(len(AREA_FRACTIONS), len(thresholds), device=device, dtype=torch.float64)
    flagged = torch.zeros_like(found)
    for images, masks in loader:
        images, masks = to_device(images, masks, device)
        images = normalise(images, *normalisation)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            logits = network(images).float()
        dice = dice_from_counts(batch_counts(logits > 0, masks > 0.5))
        has_polyp = masks.flatten(1).amax(1) > 0.5
        totals += torch.stack([dice[has_polyp].sum(), has_polyp.sum(), (~has_polyp).sum()])
        reached = frame_scores(torch.sigmoid(logits))[:, :, None] >= thresholds
        found += (reached & has_polyp[:, None, None]).sum(0)
        flagged += (reached & ~has_polyp[:, None, None]).sum(0)
    totals, found, flagged = (distributed.sum(t) for t in (totals, found, flagged))
    points = [
        OperatingPoint(
            area,
            float(threshold),
            (flagged[a, t] / totals[2].clamp(min=1)).item(),
            1 - (found[a, t] / totals[1].clamp(min=1)).item(),
        )
        for a, area in enumerate(AREA_FRACTIONS)
        for t, threshold in enumerate(THRESHOLDS)
    ]
    return Validation(
        (totals[0] / totals[1].clamp(min=1)).item(), choose(points, TARGET_SHARE, TARGET_SHARE)
    )


def frame_scores(probabilities: torch.Tensor) -> torch.Tensor:
    """``[B, areas]``: per frame, the probability its top AREA_FRACTIONS reach (on the tensor,
    as ``polypview.decision.top_quantiles`` computes it in the app)."""
    flat = probabilities.flatten(1)
    ranks = [max(1, math.ceil(area * flat.shape[1])) for area in AREA_FRACTIONS]
    return flat.topk(max(ranks), dim=1).values[:, [rank - 1 for rank in ranks]]


def validation_report(validation: Validation) -> dict:
    """``--validate-only``'s answer: the figures an epoch would log, and the selection score."""
    report = {
        "val_dice": round(validation.dice, 5),
        "val_flagged": round(validation.flagged, 5),
        "val_missed": round(validation.missed, 5),
        "val_score": round(validation.score, 5),
        "decision": [validation.decision.area_fraction, validation.decision.threshold],
    }
    print(json.dumps(report), flush=True)
    return report
