"""U-Net: Ronneberger, Fischer and Brox, "U-Net: Convolutional Networks for Biomedical Image
Segmentation", MICCAI 2015 (arXiv:1505.04597).

Built at the 16-32-64-128-256 widths that Jha et al. 2019 (ResUNet++) used as their U-Net
baseline, with batch norm after every convolution and "same" padding so the mask is the size of
the frame.
"""

from __future__ import annotations

import torch
from torch import nn

from polypview.nets.blocks import ConvBNReLU

WIDTHS = (16, 32, 64, 128, 256)


def double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    """The two-convolution stage U-Net repeats at every level."""
    return nn.Sequential(
        ConvBNReLU(in_channels, out_channels), ConvBNReLU(out_channels, out_channels)
    )


class UNet(nn.Module):
    """Classic U-Net; returns logits. Height and width must be multiples of 16 (four poolings).

    Parameter count: 1,944,049 for 3 input channels and 1 class.
    """

    def __init__(self, in_channels: int = 3, classes: int = 1) -> None:
        super().__init__()
        self.encoder = nn.ModuleList(
            double_conv(cin, cout)
            for cin, cout in zip((in_channels, *WIDTHS[:3]), WIDTHS[:4], strict=True)
        )
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = double_conv(WIDTHS[3], WIDTHS[4])
        levels = (3, 2, 1, 0)
        self.upsamplers = nn.ModuleList(
            nn.ConvTranspose2d(WIDTHS[level + 1], WIDTHS[level], 2, stride=2) for level in levels
        )
        self.decoder = nn.ModuleList(
            double_conv(2 * WIDTHS[level], WIDTHS[level]) for level in levels
        )
        self.head = nn.Conv2d(WIDTHS[0], classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for upsample, stage, skip in zip(
            self.upsamplers, self.decoder, reversed(skips), strict=True
        ):
            x = stage(torch.cat([upsample(x), skip], dim=1))
        return self.head(x)
