"""Paired image/mask augmentation with kornia, on whatever device the batch lives on.

kornia rather than albumentations: it augments whole batches of tensors, so on the GPU of the
production run the augmentation happens where the batch already is, and here on the CPU it costs
a few percent of a training step (docs/training.md has the measurements). Geometry is drawn once
per sample and applied to image and mask alike (masks resampled by nearest neighbour, so they stay
binary); colour and blur touch the image only. Random parameters come from torch's global
generator, so ``torch.manual_seed`` makes a run repeatable.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

try:
    import kornia.augmentation as K
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "training needs kornia: pip install -e '.[train]' (or pip install kornia)"
    ) from error


def to_device(
    images: torch.Tensor, masks: torch.Tensor, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 batches cross to the device as they are (4x cheaper than float), then convert."""
    images = images.to(device, non_blocking=True).float().div_(255)
    masks = masks.to(device, non_blocking=True).float()
    return images.contiguous(memory_format=torch.channels_last), masks


class PairedAugmentation(nn.Module):
    """``(images, masks) -> (images, masks)``: float (B, 3, H, W) in 0..1 and (B, 1, H, W) in
    {0, 1}, the same size out as in."""

    def __init__(self, *transforms: nn.Module) -> None:
        super().__init__()
        self.pipeline = K.AugmentationSequential(*transforms, data_keys=["input", "mask"])

    def forward(self, images: Tensor, masks: Tensor) -> tuple[Tensor, Tensor]:
        images, masks = self.pipeline(images, masks)
        return images.clamp_(0, 1), masks


def geometric_transforms() -> list[nn.Module]:
    """Flips, rotation up to 30 degrees, zoom 0.75-1.25 (cropped back to size), shift, shear."""
    return [
        K.RandomHorizontalFlip(),
        K.RandomVerticalFlip(),
        K.RandomAffine(degrees=30, translate=(0.1, 0.1), scale=(0.75, 1.25), shear=8, p=0.9),
    ]


def train_augmentation() -> PairedAugmentation:
    """The training preset: geometry plus brightness, contrast, hue and occasional blur."""
    return PairedAugmentation(
        *geometric_transforms(),
        K.ColorJitter(brightness=0.2, contrast=0.2, hue=0.05, p=0.8),
        K.RandomGaussianBlur((5, 5), (0.1, 1.5), p=0.2),
    )


def light_transforms(*geometry: nn.Module) -> list[nn.Module]:
    """Flips, quarter turns, then any extra ``geometry``, then mild brightness/contrast."""
    return [
        K.RandomHorizontalFlip(),
        K.RandomVerticalFlip(),
        K.RandomRotation90(times=(0, 3), p=0.5),
        *geometry,
        K.ColorJitter(brightness=0.1, contrast=0.1, p=0.5),
    ]


def light_augmentation() -> PairedAugmentation:
    """Flips, quarter turns and mild brightness/contrast: what the fastest CPU probes used."""
    return PairedAugmentation(*light_transforms())


def medium_augmentation() -> PairedAugmentation:
    """Light plus a mild zoom-in and tilt: a scope that moves closer and rolls, as in real
    withdrawals, without the strong preset's shear and zoom-out that slow a from-scratch start."""
    return PairedAugmentation(
        *light_transforms(
            K.RandomAffine(degrees=15, translate=(0.05, 0.05), scale=(1.0, 1.4), p=0.5)
        )
    )


def geometric_augmentation() -> PairedAugmentation:
    """Geometry only: for checking that image and mask move together."""
    return PairedAugmentation(*geometric_transforms())


def eval_transform(images: Tensor, masks: Tensor) -> tuple[Tensor, Tensor]:
    """Evaluation needs nothing: the cache already holds images at the network's size."""
    return images, masks


def normalise(images: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """Per-channel ``(x - mean) / std`` for float images in 0..1, on the images' device."""
    mean_t = torch.as_tensor(mean, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    std_t = torch.as_tensor(std, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    return (images - mean_t) / std_t


AUGMENTATIONS = {
    "strong": train_augmentation,
    "medium": medium_augmentation,
    "light": light_augmentation,
}
