"""Measure the training augmentation in kornia and in albumentations: how kornia was chosen.

    python scripts/compare_augmentation.py [--batch 16] [--size 256] [--runs 20] [--threads N]

Both run the same paired pipeline, ``training.transforms.train_augmentation``: flips, rotation up
to 30 degrees, scale 0.75-1.25 cropped back to size, small shear and shift, brightness/contrast
0.2, hue 0.05, Gaussian blur with p=0.2. kornia (the project's preset itself) works on the float
batch; albumentations on one uint8 image at a time, then stacks and converts, as a data loader
would. Prints the median images per second of each, and whether its masks stay binary.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import albumentations as A
import cv2
import kornia
import numpy as np
import torch

from training.transforms import train_augmentation

Pipeline = Callable[[], tuple[torch.Tensor, torch.Tensor]]


def albumentations_pipeline(images: np.ndarray, masks: np.ndarray) -> Pipeline:
    """The preset's transforms and probabilities, spelled in albumentations."""
    augment = A.Compose(
        [
            A.HorizontalFlip(),
            A.VerticalFlip(),
            A.Affine(
                rotate=(-30, 30),
                scale=(0.75, 1.25),
                translate_percent=(-0.1, 0.1),
                shear=(-8, 8),
                p=0.9,
            ),
            A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.0, hue=0.05, p=0.8),
            A.GaussianBlur(blur_limit=(5, 5), sigma_limit=(0.1, 1.5), p=0.2),
        ]
    )

    def run() -> tuple[torch.Tensor, torch.Tensor]:
        pairs = [augment(image=image, mask=mask) for image, mask in zip(images, masks, strict=True)]
        batch_images = np.stack([pair["image"] for pair in pairs])
        batch_masks = np.stack([pair["mask"] for pair in pairs])
        return (
            torch.from_numpy(batch_images).permute(0, 3, 1, 2).float() / 255,
            torch.from_numpy(batch_masks)[:, None].float(),
        )

    return run


def images_per_second(pipeline: Pipeline, batch: int, runs: int) -> float:
    pipeline()  # warm-up
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        pipeline()
        seconds.append(time.perf_counter() - started)
    return batch / statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, help="torch and OpenCV threads (default: theirs)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)

    torch.manual_seed(0)
    size = (args.size, args.size)
    rng = np.random.default_rng(0)
    images_u8 = rng.integers(0, 256, (args.batch, *size, 3), dtype=np.uint8)
    masks_u8 = np.zeros((args.batch, *size), np.uint8)
    masks_u8[:, size[0] // 4 : size[0] // 2, size[1] // 3 : size[1] // 2] = 1
    images = torch.from_numpy(images_u8).permute(0, 3, 1, 2).float() / 255
    masks = torch.from_numpy(masks_u8)[:, None].float()
    augment = train_augmentation()
    candidates: dict[str, Pipeline] = {
        f"kornia {kornia.__version__}, whole batch": lambda: augment(images, masks),
        f"albumentations {A.__version__}, per image": albumentations_pipeline(images_u8, masks_u8),
    }
    print(f"batch {args.batch} at {args.size}x{args.size}, {torch.get_num_threads()} threads")
    for label, pipeline in candidates.items():
        rate = images_per_second(pipeline, args.batch, args.runs)
        binary = set(torch.unique(pipeline()[1]).tolist()) <= {0.0, 1.0}
        print(f"{label:36s} {rate:7.0f} images/s  masks binary: {binary}")


if __name__ == "__main__":
    main()
