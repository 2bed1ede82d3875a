"""Lite U-Net: an EfficientNet-Lite0 encoder under a plain U-Net decoder.

EfficientNet-Lite (Tan and Le, "EfficientNet", ICML 2019; the Lite variants from the
tensorflow/tpu repository) is EfficientNet-B0 made friendly to integer and CPU runtimes: ReLU6
instead of swish, no squeeze-and-excitation, a fixed stem and head. Written here, not imported,
so that the app depends on no encoder package at run time; the ImageNet weights that training
starts from are mapped onto it by ``training.pretrained``.

Padding follows TensorFlow's "SAME" rule that the ImageNet weights were trained with: a stride-2
convolution pads one pixel more at the bottom and right than at the top and left. For the even
sizes this network accepts (multiples of 32), that padding is fixed, so it is one ``ZeroPad2d``
per down-sampling layer and the graph stays static for export.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

# TensorFlow's batch-norm epsilon, which the ImageNet statistics were computed with.
BN_EPS = 1e-3
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280  # only the ImageNet classifier uses it (training.pretrained)


class Stage(NamedTuple):
    """A row of EfficientNet-Lite0's table: MBConv blocks sharing kernel and width."""

    repeats: int
    kernel: int
    stride: int
    expand: int
    out_channels: int


LITE0_STAGES = (
    Stage(1, 3, 1, 1, 16),
    Stage(2, 3, 2, 6, 24),
    Stage(2, 5, 2, 6, 40),
    Stage(3, 3, 2, 6, 80),
    Stage(3, 5, 1, 6, 112),
    Stage(4, 5, 2, 6, 192),
    Stage(1, 3, 1, 6, 320),
)
# Indices of the blocks whose outputs are the skips at strides 2, 4, 8, 16 and 32.
SKIP_BLOCKS = (0, 2, 4, 10, 15)
SKIP_CHANNELS = (16, 24, 40, 112, 320)
# The decoder's widths, from stride 16 up to stride 2. Each stage costs about the same (channels
# halve as pixels quadruple) and together they are four fifths of the network's FLOPs, so
# ``decoder_channels`` is the knob for speed.
DECODER_CHANNELS = (256, 128, 64, 32)


def same_padding(kernel: int, stride: int) -> nn.Module:
    """TensorFlow "SAME" padding for an even-sized input."""
    if stride == 1:
        return nn.ZeroPad2d(kernel // 2)
    total = kernel - stride
    return nn.ZeroPad2d((total // 2, total - total // 2, total // 2, total - total // 2))


class ConvBNAct(nn.Sequential):
    """Padding, convolution without bias, batch norm and (optionally) ReLU6."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int = 1,
        stride: int = 1,
        groups: int = 1,
        activation: bool = True,
    ) -> None:
        layers: list[nn.Module] = []
        if kernel > 1:
            layers.append(same_padding(kernel, stride))
        layers += [
            nn.Conv2d(in_channels, out_channels, kernel, stride, groups=groups, bias=False),
            nn.BatchNorm2d(out_channels, eps=BN_EPS),
        ]
        if activation:
            layers.append(nn.ReLU6(inplace=True))
        super().__init__(*layers)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expansion, depthwise kxk, linear 1x1 projection, identity skip."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel: int, stride: int, expand: int
    ) -> None:
        super().__init__()
        hidden = in_channels * expand
        self.expand = ConvBNAct(in_channels, hidden) if expand != 1 else nn.Identity()
        self.depthwise = ConvBNAct(hidden, hidden, kernel, stride, groups=hidden)
        self.project = ConvBNAct(hidden, out_channels, activation=False)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.depthwise(self.expand(x)))
        return out + x if self.residual else out


class EfficientNetLite0Encoder(nn.Module):
    """Stem plus the 16 MBConv blocks; returns the features at strides 2, 4, 8, 16 and 32."""

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        self.stem = ConvBNAct(in_channels, STEM_CHANNELS, 3, stride=2)
        blocks: list[nn.Module] = []
        channels = STEM_CHANNELS
        for stage in LITE0_STAGES:
            for index in range(stage.repeats):
                stride = stage.stride if index == 0 else 1
                blocks.append(
                    MBConv(channels, stage.out_channels, stage.kernel, stride, stage.expand)
                )
                channels = stage.out_channels
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        features = []
        for index, block in enumerate(self.blocks):
            x = block(x)
            if index in SKIP_BLOCKS:
                features.append(x)
        return features


class DecoderStage(nn.Sequential):
    """Two 3x3 conv-BN-ReLU layers over the upsampled features concatenated with the skip."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class LiteUNet(nn.Module):
    """EfficientNet-Lite0 encoder, four bilinear-upsampling decoder stages, a 1x1 head.

    Returns logits at the input's size. Height and width must be multiples of 32.
    Parameter count: 5,191,073 for 3 input channels and 1 class (3,782,353 with
    ``decoder_channels=(128, 64, 32, 16)``, at 44% of the FLOPs).
    """

    def __init__(
        self,
        in_channels: int = 3,
        classes: int = 1,
        decoder_channels: Sequence[int] = DECODER_CHANNELS,
    ) -> None:
        super().__init__()
        decoder_channels = tuple(decoder_channels)
        if len(decoder_channels) != len(DECODER_CHANNELS) or not all(
            isinstance(width, int) and width > 0 for width in decoder_channels
        ):
            raise ValueError(
                f"decoder_channels needs {len(DECODER_CHANNELS)} positive integers, "
                f"not {list(decoder_channels)}"
            )
        self.encoder = EfficientNetLite0Encoder(in_channels)
        stages = []
        channels = SKIP_CHANNELS[-1]
        for skip, out in zip(reversed(SKIP_CHANNELS[:-1]), decoder_channels, strict=True):
            stages.append(DecoderStage(channels + skip, out))
            channels = out
        self.decoder = nn.ModuleList(stages)
        self.head = nn.Conv2d(channels, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        *skips, x = self.encoder(x)
        for stage, skip in zip(self.decoder, reversed(skips), strict=True):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = stage(torch.cat([x, skip], dim=1))
        logits = self.head(x)  # at stride 2
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
