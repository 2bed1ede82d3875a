"""The device frame path (CUDA, TensorRT) on a CPU device: the same masks as the host path.

The GPU backends run every stage of a frame in torch on their device; the same code runs on a
CPU device here, so its parity with the numpy/OpenCV path is checked without a GPU. The GPU run
(scripts/gpu_run.sh) checks the CUDA backend itself on all of test120.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from polypview.backends import TensorBackend, create_backend
from polypview.backends.torch_device import TorchDeviceBackend
from polypview.framepath import DeviceFramePath, HostFramePath, StageTimer
from polypview.modelfile import ModelCard, installed_models, load_network
from polypview.segmentation import Segmentation
from polypview.segmenter import Segmenter
from polypview.tracking import FilterSettings, Tracker
from training.data import load_pair, resolve_dataset

CPU = torch.device("cpu")


def cpu_device_backend(card: ModelCard, dtype: torch.dtype = torch.float32) -> TorchDeviceBackend:
    return TorchDeviceBackend(load_network(card), card, CPU, dtype, name="cpu-device")


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else 2.0 * (a & b).sum() / total


class ConstantDeviceBackend:
    """Fixed logits from a torch 'device', so the device path's postprocessing is exact."""

    name = "constant-device"
    device = "test"
    precision = "fp32"
    torch_device = CPU
    input_dtype = torch.float32

    def __init__(self, logits: np.ndarray) -> None:
        self.logits = torch.from_numpy(logits)[None, None]

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return self.logits.numpy()

    def infer_tensor(self, batch: torch.Tensor) -> torch.Tensor:
        return self.logits

    def running(self) -> torch.autograd.grad_mode.no_grad:
        return torch.no_grad()

    def synchronize(self) -> None:
        pass


def test_the_backend_chooses_the_path(stand_in_model: ModelCard) -> None:
    host = Segmenter(
        stand_in_model, create_backend("torch", load_network(stand_in_model), stand_in_model)
    )
    device = Segmenter(stand_in_model, cpu_device_backend(stand_in_model))
    assert isinstance(host.path, HostFramePath) and isinstance(device.path, DeviceFramePath)
    assert isinstance(device.backend, TensorBackend) and not isinstance(host.backend, TensorBackend)


def test_device_preprocessing_matches_the_host_path(stand_in_model: ModelCard) -> None:
    card = replace(stand_in_model, mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 1.0))
    frame = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    for shape in ((480, 640), (40, 50)):  # shrinking (area) and enlarging (bilinear)
        image = np.ascontiguousarray(frame[: shape[0], : shape[1]])
        host = Segmenter(card, create_backend("torch", load_network(card), card)).preprocess(image)
        device = Segmenter(card, cpu_device_backend(card)).preprocess(image)
        assert isinstance(device, torch.Tensor) and device.shape == host.shape
        # Both round the resized image to whole levels: area averages agree but for ties,
        # OpenCV's fixed-point bilinear puts some pixels one level apart, never more.
        level = 1 / 255 / min(card.std)
        difference = np.abs(device.numpy() - host)
        shrinking = shape[0] > 64
        assert difference.max() <= level * 1.01, shape
        assert difference.mean() <= level * (0.01 if shrinking else 0.25), shape


def test_device_postprocessing_matches_the_host_path(stand_in_model: ModelCard) -> None:
    logits = np.random.default_rng(1).normal(0, 3, (64, 64)).astype(np.float32)
    frame = np.zeros((300, 500, 3), np.uint8)
    results = []
    for backend in (ConstantDeviceBackend(logits), ConstantHostBackend(logits)):
        results.append(Segmenter(stand_in_model, backend)(frame))
    device, host = results
    assert device.probability_map.shape == (64, 64) and host.probability_map.shape == (300, 500)
    assert device.mask.shape == host.mask.shape == (300, 500) and device.mask.dtype == np.uint8
    np.testing.assert_allclose(device.probability, host.probability, atol=1e-4)
    assert dice(device.mask, host.mask) >= 0.999


class ConstantHostBackend:
    name = "constant"
    device = "test"
    precision = "fp32"

    def __init__(self, logits: np.ndarray) -> None:
        self.logits = logits

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return self.logits[None, None]


def test_small_blobs_and_threshold_apply_on_the_device_path(stand_in_model: ModelCard) -> None:
    logits = np.full((64, 64), -10, np.float32)
    logits[10:40, 10:40] = 10
    logits[55, 55] = 10  # one model pixel: a speck at frame size
    frame = np.zeros((256, 256, 3), np.uint8)
    backend = ConstantDeviceBackend(logits)
    assert Segmenter(stand_in_model, backend)(frame).mask[221, 221] == 255
    cleaned = Segmenter(stand_in_model, backend, min_area_fraction=0.01)(frame)
    assert cleaned.mask[221, 221] == 0 and cleaned.mask[100, 100] == 255
    assert not Segmenter(stand_in_model, backend, threshold=0.99999)(frame).has_polyp


def test_the_stage_timer_sees_every_stage(stand_in_model: ModelCard) -> None:
    segmenter = Segmenter(stand_in_model, cpu_device_backend(stand_in_model))
    timer = segmenter.stage_timer()
    assert isinstance(timer, StageTimer)
    segmenter.segment(np.zeros((120, 160, 3), np.uint8), timer)
    assert list(timer.stages) == ["upload", "preprocess", "inference", "postprocess", "download"]
    assert all(ms >= 0 for ms in timer.stages.values())


def test_the_probability_at_model_size_serves_every_consumer() -> None:
    small = np.zeros((64, 64), np.float32)
    small[16:48, 16:48] = 0.8
    small[16:48, 16:32] = 0.6  # the left half less sure
    mask = np.zeros((480, 640), np.uint8)
    mask[120:360, 160:480] = 255
    segmentation = Segmentation(small, mask)
    assert segmentation.probability.shape == (480, 640)
    assert segmentation.probability is segmentation.probability  # resized once
    assert segmentation.probability[240, 400] == pytest.approx(0.8)
    immediate = FilterSettings(persist_frames=1, window_frames=1)
    (from_small,) = Tracker(immediate).update(mask, small, 0.0).detections
    (from_full,) = Tracker(immediate).update(mask, segmentation.probability, 0.0).detections
    assert from_small.box == from_full.box and from_small.area == from_full.area
    assert from_small.score == pytest.approx(from_full.score, abs=0.01)
    assert from_small.score == pytest.approx(0.7, abs=0.02)


def kvasir_test_pairs(root: Path, count: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    return [
        (image_id, *load_pair(root, image_id))
        for image_id in resolve_dataset(root, "test120")[:count]
    ]


class HostInterface:
    """A device backend seen through its numpy interface only: the host path around the same
    network, so that two segmenters differ in their frame path and nothing else."""

    def __init__(self, backend: TorchDeviceBackend) -> None:
        self.name, self.device, self.precision = "host", backend.device, backend.precision
        self.infer = backend.infer


def test_device_path_masks_agree_with_the_host_path_on_kvasir(kvasir_root: Path) -> None:
    """Mask Dice agreement >= 0.99 and test Dice within 0.005 on real test images."""
    cards = [card for card in installed_models() if card.architecture == "resunetpp"]
    if not cards:
        pytest.skip("no trained resunetpp installed: an untrained one sits near p=0.5 everywhere")
    card = cards[0]
    backend = cpu_device_backend(card)
    host, device = Segmenter(card, HostInterface(backend)), Segmenter(card, backend)
    assert isinstance(host.path, HostFramePath) and isinstance(device.path, DeviceFramePath)
    host_dice, device_dice = [], []
    for image_id, image, truth in kvasir_test_pairs(kvasir_root, 4):
        expected, actual = host(image).mask, device(image).mask
        assert dice(expected, actual) >= 0.99, image_id
        host_dice.append(dice(expected, truth))
        device_dice.append(dice(actual, truth))
    assert abs(np.mean(host_dice) - np.mean(device_dice)) <= 0.005
