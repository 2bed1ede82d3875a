"""Building blocks shared by the segmentation networks, each written once.

Every convolution keeps its bias, even before batch norm, so that parameter counts match the
reference Keras models the papers were published with.
"""

from __future__ import annotations

import torch
from torch import nn


def conv3x3(in_channels: int, out_channels: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    """3x3 convolution with "same" padding: the output is the input size divided by stride."""
    return nn.Conv2d(
        in_channels, out_channels, 3, stride=stride, padding=dilation, dilation=dilation
    )


class ConvBNReLU(nn.Sequential):
    """Conv3x3 -> BN -> ReLU, the post-activation layer of the plain U-Net."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            conv3x3(in_channels, out_channels), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)
        )


class BNReLUConv(nn.Sequential):
    """BN -> ReLU -> Conv3x3, the pre-activation layer of He et al. 2016 ("Identity Mappings")."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__(
            nn.BatchNorm2d(in_channels),
            nn.ReLU(inplace=True),
            conv3x3(in_channels, out_channels, stride),
        )


class ResidualUnit(nn.Module):
    """Pre-activation residual unit: two BN-ReLU-Conv3x3 layers plus a projected shortcut.

    Down-sampling is a stride in the first convolution. The shortcut is always a 1x1 conv + BN
    (every unit of ResUNet and ResUNet++ changes the channel count, so identity never fits).
    With ``preactivate=False`` the first BN-ReLU is skipped, for the unit that sees the raw
    image (Zhang et al. 2018, Table I; the "stem" of ResUNet++).
    """

    def __init__(
        self, in_channels: int, out_channels: int, stride: int = 1, *, preactivate: bool = True
    ) -> None:
        super().__init__()
        first = (
            BNReLUConv(in_channels, out_channels, stride)
            if preactivate
            else conv3x3(in_channels, out_channels, stride)
        )
        self.residual = nn.Sequential(first, BNReLUConv(out_channels, out_channels))
        self.shortcut = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, stride=stride), nn.BatchNorm2d(out_channels)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.residual(x) + self.shortcut(x)


class SqueezeExcite(nn.Module):
    """Channel re-weighting from global context (Hu et al. 2018); bias-free like the reference."""

    def __init__(self, channels: int, ratio: int = 8) -> None:
        super().__init__()
        self.excite = nn.Sequential(
            nn.Linear(channels, channels // ratio, bias=False),
            nn.ReLU(),
            nn.Linear(channels // ratio, channels, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.excite(x.mean(dim=(2, 3)))
        return x * weights[:, :, None, None]


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling as in ResUNet++: summed dilated conv+BN branches, 1x1 fuse.

    Unlike DeepLab there is no image-pooling branch and no ReLU, following the reference code.
    """

    def __init__(
        self, in_channels: int, out_channels: int, dilations: tuple[int, ...] = (6, 12, 18, 1)
    ) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(
                conv3x3(in_channels, out_channels, dilation=dilation),
                nn.BatchNorm2d(out_channels),
            )
            for dilation in dilations
        )
        self.fuse = nn.Conv2d(out_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fuse(sum(branch(x) for branch in self.branches))


class Attention(nn.Module):
    """ResUNet++ attention: the encoder skip gates the decoder feature at half the skip's size.

    By default the gate is not squashed; it multiplies the decoder feature directly, as in the
    reference code, so gated features can grow to thousands. ``squash=True`` passes it through a
    sigmoid first, as in the attention of Oktay et al. that the paper describes: the same
    parameters, the feature only ever scaled down.
    """

    def __init__(self, skip_channels: int, channels: int, *, squash: bool = False) -> None:
        super().__init__()
        self.skip_path = nn.Sequential(BNReLUConv(skip_channels, channels), nn.MaxPool2d(2))
        self.feature_path = BNReLUConv(channels, channels)
        self.gate = BNReLUConv(channels, channels)
        self.squash = squash

    def forward(self, skip: torch.Tensor, feature: torch.Tensor) -> torch.Tensor:
        gate = self.gate(self.skip_path(skip) + self.feature_path(feature))
        return (torch.sigmoid(gate) if self.squash else gate) * feature
