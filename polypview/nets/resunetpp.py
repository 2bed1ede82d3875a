"""ResUNet++: Jha et al., "ResUNet++: An Advanced Architecture for Medical Image Segmentation",
IEEE ISM 2019 (arXiv:1911.07067).

Follows the authors' Keras code (DebeshJha/ResUNetPlusPlus, m_resunet.py) layer for layer, so
the parameter count is the published 4,062,993 trainable parameters. Keras pads a stride-2
"same" convolution only at the right and bottom where PyTorch pads both sides: porting Keras
weights would need that padding too, training from scratch does not care.
"""

from __future__ import annotations

import torch
from torch import nn

from polypview.nets.blocks import ASPP, Attention, ResidualUnit, SqueezeExcite

WIDTHS = (16, 32, 64, 128, 256)
ATTENTION_GATES = ("reference", "sigmoid")


def residual_se_unit(
    in_channels: int, out_channels: int, stride: int = 1, *, preactivate: bool = True
) -> nn.Sequential:
    """A residual unit followed by squeeze-and-excitation, the basic unit of ResUNet++."""
    return nn.Sequential(
        ResidualUnit(in_channels, out_channels, stride, preactivate=preactivate),
        SqueezeExcite(out_channels),
    )


class ResUNetPlusPlus(nn.Module):
    """ResUNet++; returns logits. Height and width must be multiples of 8.

    Parameter count: 4,062,993 for 3 input channels and 1 class, as published.
    ``attention_gate`` is "reference" (the authors' code: an unsquashed gate) or "sigmoid" (the
    paper's description; same parameters).
    """

    def __init__(
        self, in_channels: int = 3, classes: int = 1, attention_gate: str = "reference"
    ) -> None:
        super().__init__()
        if attention_gate not in ATTENTION_GATES:
            raise ValueError(
                f"attention_gate is one of {', '.join(ATTENTION_GATES)}, not {attention_gate!r}"
            )
        self.encoder = nn.ModuleList(
            [
                residual_se_unit(in_channels, WIDTHS[0], preactivate=False),
                residual_se_unit(WIDTHS[0], WIDTHS[1], stride=2),
                residual_se_unit(WIDTHS[1], WIDTHS[2], stride=2),
                residual_se_unit(WIDTHS[2], WIDTHS[3], stride=2),
            ]
        )
        self.bridge = ASPP(WIDTHS[3], WIDTHS[4])
        # Each decoder stage gates its input (two levels deeper) with the encoder skip at `level`,
        # up-samples it and concatenates that skip, as the reference does.
        levels = (2, 1, 0)
        self.attentions = nn.ModuleList(
            Attention(WIDTHS[level], WIDTHS[level + 2], squash=attention_gate == "sigmoid")
            for level in levels
        )
        self.decoder = nn.ModuleList(
            residual_se_unit(WIDTHS[level + 2] + WIDTHS[level], WIDTHS[level + 1])
            for level in levels
        )
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.output_aspp = ASPP(WIDTHS[1], WIDTHS[0])
        self.head = nn.Conv2d(WIDTHS[0], classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for unit in self.encoder:
            x = unit(x)
            skips.append(x)
        x = self.bridge(skips.pop())
        for attention, unit, skip in zip(
            self.attentions, self.decoder, reversed(skips), strict=True
        ):
            x = unit(torch.cat([self.upsample(attention(skip, x)), skip], dim=1))
        return self.head(self.output_aspp(x))
