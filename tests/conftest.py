"""Shared fixtures: a small clip, untrained stand-in models built in temporary folders, and the
capture devices the device-listing library reports."""

from __future__ import annotations

import os
from pathlib import Path

import cv2_enumerate_cameras
import pytest
import torch
from cv2_enumerate_cameras import CameraInfo

from polypview.bench import IMAGENET_MEAN, IMAGENET_STD
from polypview.modelfile import ModelCard, save_model
from polypview.nets import create_model
from polypview.sources.listing import platform_backend
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


def camera(index: int, name: str, usb_id: tuple[int, int] | None = None) -> CameraInfo:
    """A device as cv2-enumerate-cameras reports one on Linux: its node, name and USB ids."""
    vendor, product = usb_id or (None, None)
    return CameraInfo(index, name, f"/dev/video{index}", vendor, product, platform_backend()[0])


@pytest.fixture
def cameras(monkeypatch: pytest.MonkeyPatch) -> list[CameraInfo]:
    """The devices cv2-enumerate-cameras lists (none, until a test puts some in this list), so no
    test sees the machine's own."""
    present: list[CameraInfo] = []

    def enumerate_cameras(api_preference: int) -> list[CameraInfo]:
        assert api_preference == platform_backend()[0]  # the backend the devices are opened with
        return list(present)

    monkeypatch.setattr(cv2_enumerate_cameras, "enumerate_cameras", enumerate_cameras)
    return present
