"""Segmentation networks, chosen by name from one explicit registry; all return logits."""

from __future__ import annotations

from typing import Any

from torch import nn

from polypview.errors import ModelError
from polypview.nets.lite_unet import LiteUNet
from polypview.nets.resunet import ResUNet
from polypview.nets.resunetpp import ResUNetPlusPlus
from polypview.nets.unet import UNet

MODELS: dict[str, type[nn.Module]] = {
    "unet": UNet,
    "resunet": ResUNet,
    "resunetpp": ResUNetPlusPlus,
    "lite-unet": LiteUNet,
}


# Per RGB channel on pixels scaled to 0..1. ImageNet statistics unless the network's pretrained
# weights were trained on other ones (EfficientNet-Lite: (x - 127) / 128 on 0..255 pixels).
IMAGENET_NORMALISATION = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
NORMALISATION = {"lite-unet": ((127 / 255,) * 3, (128 / 255,) * 3)}


def input_normalisation(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) that training feeds the network ``name`` and its model card records."""
    return NORMALISATION.get(name, IMAGENET_NORMALISATION)


def model_names() -> list[str]:
    """The registered model names, sorted."""
    return sorted(MODELS)


def create_model(name: str, in_channels: int = 3, classes: int = 1, **options: Any) -> nn.Module:
    """Build the registered network `name` with its constructor's ``options`` (such as
    lite-unet's ``decoder_channels``); raises ModelError for an unknown name or option."""
    try:
        model_class = MODELS[name]
    except KeyError:
        raise ModelError(
            f"unknown model {name!r}; choose one of: {', '.join(model_names())}"
        ) from None
    try:
        return model_class(in_channels=in_channels, classes=classes, **options)
    except (TypeError, ValueError) as error:
        raise ModelError(f"cannot build {name} with {options}: {error}") from None
