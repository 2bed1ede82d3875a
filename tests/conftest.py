"""Shared fixtures: a small clip and untrained stand-in models built in temporary folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from polypview.bench import IMAGENET_MEAN, IMAGENET_STD
from polypview.modelfile import ModelCard, save_model
from polypview.nets import create_model
from training.data import DEFAULT_ROOT
from videos import write_clip

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # tests never need a display

REAL_CLIP = DEFAULT_ROOT.parent / "video" / "polyp_clip_560x480_25fps.mp4"


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return write_clip(tmp_path / "clip.mp4", 12, size=(160, 120))


def make_stand_in(folder: Path, architecture: str = "unet", **fields) -> ModelCard:
    """An UNTRAINED model file for plumbing tests only: it is never shipped or shown."""
    torch.manual_seed(0)
    name = fields.pop("name", architecture)
    card = ModelCard(
        name=name,
        architecture=architecture,
        weights=f"{name}.safetensors",
        input_size=fields.pop("input_size", (64, 64)),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        status="untrained test stand-in",
        folder=folder,
        **fields,
    )
    return save_model(create_model(architecture), card)


@pytest.fixture(scope="session")
def stand_in_model(tmp_path_factory: pytest.TempPathFactory) -> ModelCard:
    return make_stand_in(tmp_path_factory.mktemp("models"))


@pytest.fixture
def kvasir_root() -> Path:
    if not (DEFAULT_ROOT / "images").is_dir():
        pytest.skip(f"Kvasir-SEG not found at {DEFAULT_ROOT} (set POLYPVIEW_KVASIR)")
    return DEFAULT_ROOT


@pytest.fixture
def real_clip() -> Path:
    """The real colonoscopy clip in ../shared/data (53 frames, 560x480, 25 fps)."""
    if not REAL_CLIP.is_file():
        pytest.skip(f"real colonoscopy clip not found at {REAL_CLIP}")
    return REAL_CLIP
