"""Synthetic on-screen text: the banners, clocks and menus that endoscopy processors burn into
their video, pasted onto training frames so that a network learns they are not tissue.

Why: ResUNet++ flagged 41% of the polyp-free centre A frames it had trained on, each time along
the edge of the processor's printer warning (docs/training.md). Text and boxes on screen are
common in clinical video, and no training set holds enough of them. The sprites are rendered
once with OpenCV (random words in its Hershey fonts, on an opaque, translucent or absent box)
and pasted after the geometric augmentation, as a screen overlay never turns with the scene.
Masks are left alone: the text is never a polyp. Random choices come from torch's global
generator, so ``torch.manual_seed`` makes a run repeatable.
"""

from __future__ import annotations

import string

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

ALPHABET = string.ascii_letters + string.digits + " .:/-"
FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_DUPLEX)
# RGB, 0..255: the processors' usual box and text colours.
BOX_COLOURS = ((20, 30, 140), (0, 0, 0), (60, 60, 60), (0, 70, 120))
TEXT_COLOURS = ((255, 255, 255), (255, 230, 0), (0, 230, 90), (0, 220, 255))
PADDING = 4


def render_sprite(rng: np.random.Generator) -> Tensor:
    """One overlay, 4 x H x W in 0..1: RGB, then the coverage alpha."""
    font = int(rng.choice(FONTS))
    scale = float(rng.uniform(0.35, 0.8))
    lines = [
        "".join(rng.choice(list(ALPHABET), size=int(rng.integers(4, 26)))).strip() or "E405"
        for _ in range(int(rng.integers(1, 4)))
    ]
    sizes = [cv2.getTextSize(line, font, scale, 1) for line in lines]
    line_height = max(height + baseline for (_, height), baseline in sizes) + 2
    width = max(line_width for (line_width, _), _ in sizes) + 2 * PADDING
    height = len(lines) * line_height + 2 * PADDING
    box_alpha = float(rng.choice([1.0, 0.6, 0.0]))
    box = BOX_COLOURS[int(rng.integers(len(BOX_COLOURS)))]
    colour = np.empty((height, width, 3), np.uint8)
    colour[:] = box
    ink = np.zeros((height, width), np.uint8)
    for index, line in enumerate(lines):
        origin = (PADDING, PADDING + (index + 1) * line_height - 4)
        cv2.putText(ink, line, origin, font, scale, 255, 1, cv2.LINE_AA)
    text = np.asarray(TEXT_COLOURS[int(rng.integers(len(TEXT_COLOURS)))], np.float32)
    ink_alpha = ink.astype(np.float32)[..., None] / 255
    rgb = (colour.astype(np.float32) * (1 - ink_alpha) + text * ink_alpha) / 255
    alpha = np.maximum(ink_alpha[..., 0], box_alpha)
    return torch.from_numpy(np.dstack([rgb, alpha])).permute(2, 0, 1).contiguous()


class OnScreenText(nn.Module):
    """``images -> images``: float (B, 3, H, W) in 0..1; each frame gets an overlay with
    ``probability``, at a random place and scale (its width at most 90% of the frame's). The
    sprites are buffers, so ``.to(device)`` moves them to the batches' device once."""

    def __init__(self, probability: float, sprites: int = 64, seed: int = 0) -> None:
        super().__init__()
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"overlay probability must be within 0..1, not {probability}")
        self.probability = probability
        rng = np.random.default_rng(seed)
        self.sprite_names = [f"sprite_{index}" for index in range(sprites)]
        for name in self.sprite_names:
            self.register_buffer(name, render_sprite(rng), persistent=False)

    def forward(self, images: Tensor) -> Tensor:
        if not self.probability:
            return images
        images = images.clone()
        height, width = images.shape[-2:]
        for index in torch.nonzero(torch.rand(len(images)) < self.probability).flatten().tolist():
            sprite = getattr(
                self, self.sprite_names[int(torch.randint(len(self.sprite_names), ()))]
            )
            scale = min(float(torch.empty(()).uniform_(0.4, 1.0)), 0.9 * width / sprite.shape[-1])
            scale = min(scale, 0.5 * height / sprite.shape[-2])
            size = (
                max(2, round(sprite.shape[-2] * scale)),
                max(2, round(sprite.shape[-1] * scale)),
            )
            sprite = F.interpolate(sprite[None], size=size, mode="bilinear", align_corners=False)[0]
            top = int(torch.randint(height - size[0] + 1, ()))
            left = int(torch.randint(width - size[1] + 1, ()))
            region = images[index, :, top : top + size[0], left : left + size[1]]
            cover = sprite[3:]  # bilinear weights are convex: still within 0..1
            region.mul_(1 - cover).add_(sprite[:3] * cover)
        return images


class WithOnScreenText(nn.Module):
    """A paired augmentation followed by overlays on its images: ``(images, masks)`` in and out."""

    def __init__(self, augment: nn.Module, overlays: OnScreenText) -> None:
        super().__init__()
        self.augment = augment
        self.overlays = overlays

    def forward(self, images: Tensor, masks: Tensor) -> tuple[Tensor, Tensor]:
        images, masks = self.augment(images, masks)
        return self.overlays(images), masks
