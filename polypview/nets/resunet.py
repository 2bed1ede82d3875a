"""ResUNet: Zhang, Liu and Wang, "Road Extraction by Deep Residual U-Net", IEEE Geoscience and
Remote Sensing Letters 15(5), 2018 (arXiv:1711.10684).

Follows the paper's Table I: pre-activation residual units of widths 64-128-256, a 512-wide
bridge, down-sampling by stride 2 and up-sampling by nearest-neighbour x2 before concatenation.
"""

from __future__ import annotations

import torch
from torch import nn

from polypview.nets.blocks import ResidualUnit

WIDTHS = (64, 128, 256, 512)


class ResUNet(nn.Module):
    """Deep residual U-Net; returns logits. Height and width must be multiples of 8.

    Parameter count: 8,223,809 for 3 input channels and 1 class, against the paper's 7.8M. The
    weights of the convolutions in the paper's Table I alone come to 7,780,096; the difference
    is the 1x1 conv + BN projection on every shortcut (434,496), which the paper does not list
    but every unit needs as each one changes the channel count, and conv biases and BN (9,217).
    """

    def __init__(self, in_channels: int = 3, classes: int = 1) -> None:
        super().__init__()
        self.encoder = nn.ModuleList(
            [
                ResidualUnit(in_channels, WIDTHS[0], preactivate=False),
                ResidualUnit(WIDTHS[0], WIDTHS[1], stride=2),
                ResidualUnit(WIDTHS[1], WIDTHS[2], stride=2),
            ]
        )
        self.bridge = ResidualUnit(WIDTHS[2], WIDTHS[3], stride=2)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.decoder = nn.ModuleList(
            ResidualUnit(WIDTHS[level + 1] + WIDTHS[level], WIDTHS[level]) for level in (2, 1, 0)
        )
        self.head = nn.Conv2d(WIDTHS[0], classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for unit in self.encoder:
            x = unit(x)
            skips.append(x)
        x = self.bridge(x)
        for unit, skip in zip(self.decoder, reversed(skips), strict=True):
            x = unit(torch.cat([self.upsample(x), skip], dim=1))
        return self.head(x)
