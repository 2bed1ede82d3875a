"""Per-frame ground truth of a clip, as named polyps: what the video-level metrics judge against.

Two sidecars are read, each beside its clip:

- ``CLIP.masks.npz`` (the demo clip's, ``training.make_demo``): one mask per frame; its
  ``source_ids`` name the Kvasir-SEG image whose polyp each frame shows, so one image's frames are
  one polyp. A sidecar without them counts every masked frame as the same polyp.
- ``CLIP.boxes.json`` (the shared real clip's): boxes per frame without identities, linked from
  frame to frame by overlap (``polypview.video_metrics.link_boxes``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from polypview.errors import PolypviewError
from polypview.video_metrics import Box, Truth, link_boxes
from training.make_demo import load_demo_masks

Frames = list[dict[str, Truth]]


def mask_sidecar(clip: Path) -> Path:
    return clip.with_suffix(".masks.npz")


def box_sidecar(clip: Path) -> Path:
    return clip.with_suffix(".boxes.json")


def clip_truth(clip: Path) -> Frames:
    """The true polyps of each frame of ``clip``, from whichever sidecar lies beside it."""
    if mask_sidecar(clip).is_file():
        return truth_from_masks(mask_sidecar(clip))
    if box_sidecar(clip).is_file():
        return truth_from_boxes(box_sidecar(clip))
    raise PolypviewError(
        f"no ground truth beside {clip} (expected {mask_sidecar(clip).name} or "
        f"{box_sidecar(clip).name})"
    )


def truth_from_masks(sidecar: Path) -> Frames:
    masks = load_demo_masks(sidecar)
    with np.load(sidecar) as stored:
        names = [str(ids[0]) for ids in stored["source_ids"]] if "source_ids" in stored else None
    return [
        {names[index] if names else "polyp": mask} if mask.any() else {}
        for index, mask in enumerate(masks)
    ]


def truth_from_boxes(sidecar: Path) -> Frames:
    try:
        frames = json.loads(sidecar.read_text())["frames"]
        boxes: list[list[Box]] = [
            [tuple(int(v) for v in entry["bbox"]) for entry in frame]  # type: ignore[misc]
            for frame in frames
        ]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise PolypviewError(f"cannot read boxes from {sidecar}: {error}") from None
    return list(link_boxes(boxes))
