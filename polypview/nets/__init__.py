"""Segmentation networks, chosen by name from one explicit registry; all return logits."""

from __future__ import annotations

from typing import Any

from torch import nn

from polypview.errors import ModelError
from polypview.nets.resunet import ResUNet
from polypview.nets.resunetpp import ResUNetPlusPlus
from polypview.nets.unet import UNet

MODELS: dict[str, type[nn.Module]] = {
    "unet": UNet,
    "resunet": ResUNet,
    "resunetpp": ResUNetPlusPlus,
}


def model_names() -> list[str]:
    """The registered model names, sorted."""
    return sorted(MODELS)


def create_model(name: str, in_channels: int = 3, classes: int = 1, **kwargs: Any) -> nn.Module:
    """Build the registered network `name`; raises ModelError for an unknown name."""
    try:
        model_class = MODELS[name]
    except KeyError:
        raise ModelError(
            f"unknown model {name!r}; choose one of: {', '.join(model_names())}"
        ) from None
    return model_class(in_channels=in_channels, classes=classes, **kwargs)
