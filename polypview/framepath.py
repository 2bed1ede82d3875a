"""The road a frame takes through a backend: upload, preprocess, inference, postprocess, download.

Two implementations of the same five stages, chosen by the backend:

- ``HostFramePath`` for backends that take numpy arrays (torch and OpenVINO on the CPU): OpenCV
  resizes, numpy normalises; upload and download are nothing.
- ``DeviceFramePath`` for backends on a torch device (CUDA, TensorRT): the BGR uint8 frame goes to
  the device once, through a pinned buffer, and resizing, normalisation, sigmoid, the resize back
  and the threshold all happen there, on the backend's stream; only the mask at the frame's size
  and the probability at the model's size come back. It runs on a CPU device too, which is how its
  parity with the host path is tested without a GPU.

Both follow the same recipe (``resize_for_model``'s area-when-shrinking rule, the card's mean and
std, a bilinear resize of the probability, then the threshold), so masks agree to within
interpolation rounding; ``StageTimer`` times each stage for the benchmark.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Protocol

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from polypview.backends import Backend, TensorBackend
from polypview.modelfile import ModelCard
from polypview.segmentation import Segmentation

STAGES = ("upload", "preprocess", "inference", "postprocess", "download")


class FramePath(Protocol):
    def running(self) -> AbstractContextManager[object]: ...
    def synchronize(self) -> None: ...
    def upload(self, frame: np.ndarray) -> Any: ...
    def preprocess(self, pixels: Any) -> Any: ...
    def infer(self, batch: Any) -> Any: ...
    def postprocess(self, logits: Any, size: tuple[int, int], threshold: float) -> Any: ...
    def download(self, result: Any) -> Segmentation: ...


def frame_path_for(backend: Backend, card: ModelCard) -> FramePath:
    """The device path for backends that run on a torch device, the host path for the rest."""
    if isinstance(backend, TensorBackend):
        return DeviceFramePath(backend, card)
    return HostFramePath(backend, card)


class StageTimer:
    """Milliseconds per stage of one frame; ``synchronize`` waits for the device at each lap, so
    a stage's queued work is counted in that stage (which costs some overlap: the benchmark times
    whole frames without it)."""

    def __init__(self, synchronize: Callable[[], None]) -> None:
        self.synchronize = synchronize
        self.stages: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        self.synchronize()
        now = time.perf_counter()
        self.stages[stage] = (now - self._last) * 1000
        self._last = now


class NoTimer:
    def lap(self, stage: str) -> None:
        pass


class HostFramePath:
    """Numpy and OpenCV on the CPU around a backend that takes numpy arrays."""

    def __init__(self, backend: Backend, card: ModelCard) -> None:
        self.backend = backend
        self.input_size = card.input_size
        # Fold the 0..255 -> 0..1 scaling into the normalisation: one multiply-add per pixel.
        std = np.asarray(card.std, np.float32)
        self._scale = (1.0 / (255.0 * std)).reshape(3, 1, 1)
        self._offset = (-np.asarray(card.mean, np.float32) / std).reshape(3, 1, 1)

    def running(self) -> AbstractContextManager[object]:
        return nullcontext()

    def synchronize(self) -> None:
        pass

    def upload(self, frame: np.ndarray) -> np.ndarray:
        return frame

    def preprocess(self, pixels: np.ndarray) -> np.ndarray:
        """BGR uint8 H x W x 3 -> normalised RGB float32 1 x 3 x h x w at the model's size."""
        resized = resize_for_model(pixels, self.input_size)
        rgb = resized[:, :, ::-1].transpose(2, 0, 1).astype(np.float32)
        return (rgb * self._scale + self._offset)[None]

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return self.backend.infer(batch)

    def postprocess(
        self, logits: np.ndarray, size: tuple[int, int], threshold: float
    ) -> Segmentation:
        """Logits at the model's size -> probability and mask at ``size`` (height, width)."""
        height, width = size
        small = 0.5 + 0.5 * np.tanh(0.5 * logits[0, 0], dtype=np.float32)  # sigmoid, no overflow
        probability = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
        return Segmentation(probability, threshold_mask(probability, threshold))

    def download(self, result: Segmentation) -> Segmentation:
        return result


class DeviceFramePath:
    """Torch on the backend's device, from the uint8 frame to the uint8 mask."""

    def __init__(self, backend: TensorBackend, card: ModelCard) -> None:
        self.backend = backend
        self.device = backend.torch_device
        self.input_size = card.input_size
        std = torch.tensor(card.std, dtype=torch.float32)
        mean = torch.tensor(card.mean, dtype=torch.float32)
        # In RGB order, applied after the channels are swapped from the frame's BGR.
        self._scale = (1.0 / (255.0 * std)).view(1, 3, 1, 1).to(self.device)
        self._offset = (-mean / std).view(1, 3, 1, 1).to(self.device)
        self._pinned = self.device.type == "cuda"
        self._host: dict[tuple[tuple[int, ...], torch.dtype], torch.Tensor] = {}
        self._weights: dict[tuple[int, int], torch.Tensor] = {}

    def running(self) -> AbstractContextManager[object]:
        return self.backend.running()

    def synchronize(self) -> None:
        self.backend.synchronize()

    def _host_buffer(self, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        """A pinned host buffer of ``shape``, kept for the next frame of the same size."""
        key = (shape, dtype)
        if key not in self._host:
            self._host[key] = torch.empty(shape, dtype=dtype, pin_memory=True)
        return self._host[key]

    def upload(self, frame: np.ndarray) -> torch.Tensor:
        """The BGR uint8 frame on the device, as it is: 1 byte per channel crosses the bus."""
        if not self._pinned:
            return torch.from_numpy(frame).to(self.device)
        staging = self._host_buffer(frame.shape, torch.uint8)
        staging.numpy()[...] = frame
        return staging.to(self.device, non_blocking=True)

    def preprocess(self, pixels: torch.Tensor) -> torch.Tensor:
        """H x W x 3 BGR uint8 -> 1 x 3 x h x w normalised RGB in the backend's input dtype.

        Resized as ``resize_for_model`` resizes on the host, down to its rounding to uint8, so
        that both paths feed the network the same numbers."""
        image = pixels.permute(2, 0, 1).unsqueeze(0).float()
        height, width = self.input_size
        if image.shape[2] > height or image.shape[3] > width:
            rows = self._area_weights(image.shape[2], height)
            columns = self._area_weights(image.shape[3], width)
            resized = rows @ image @ columns.T
        else:
            resized = F.interpolate(
                image, size=(height, width), mode="bilinear", align_corners=False
            )
        rgb = resized.round_().clamp_(0, 255).flip(1)
        batch = rgb * self._scale + self._offset
        return batch.to(self.backend.input_dtype).contiguous(memory_format=torch.channels_last)

    def _area_weights(self, size: int, new_size: int) -> torch.Tensor:
        """The new_size x size matrix that averages each output pixel's footprint, partly
        covered input pixels in proportion: OpenCV's INTER_AREA along one axis. Kept per size."""
        key = (size, new_size)
        if key not in self._weights:
            self._weights[key] = area_weights(size, new_size).to(self.device)
        return self._weights[key]

    def infer(self, batch: torch.Tensor) -> torch.Tensor:
        return self.backend.infer_tensor(batch)

    def postprocess(
        self, logits: torch.Tensor, size: tuple[int, int], threshold: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits -> (probability at the model's size, uint8 mask at ``size``), on the device."""
        small = torch.sigmoid(logits[:, :1].float())
        probability = F.interpolate(small, size=size, mode="bilinear", align_corners=False)
        mask = (probability[0, 0] >= threshold).to(torch.uint8).mul_(255)
        return small[0, 0], mask

    def download(self, result: tuple[torch.Tensor, torch.Tensor]) -> Segmentation:
        """The two maps in host memory the caller owns; waits for the device to finish."""
        small, mask = result
        if not self._pinned:
            return Segmentation(small.numpy().copy(), mask.numpy().copy())
        host_small = self._host_buffer(tuple(small.shape), torch.float32)
        host_mask = self._host_buffer(tuple(mask.shape), torch.uint8)
        host_small.copy_(small, non_blocking=True)
        host_mask.copy_(mask, non_blocking=True)
        self.backend.synchronize()
        return Segmentation(host_small.numpy().copy(), host_mask.numpy().copy())


def resize_for_model(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` at ``size`` (height, width) the way the networks are trained and run.

    Area averaging when shrinking (no aliasing from the endoscope's fine texture), bilinear when
    enlarging. Training caches its images through this same function.
    """
    height, width = size
    shrinking = image.shape[0] > height or image.shape[1] > width
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)


def area_weights(size: int, new_size: int) -> torch.Tensor:
    """Row i averages the input span [i, i + 1) * size / new_size, edge pixels by their overlap."""
    scale = size / new_size
    start = torch.arange(new_size, dtype=torch.float64)[:, None] * scale
    pixel = torch.arange(size, dtype=torch.float64)[None, :]
    overlap = (torch.minimum(pixel + 1, start + scale) - torch.maximum(pixel, start)).clamp_(0)
    return (overlap / overlap.sum(1, keepdim=True)).float()


def threshold_mask(probability: np.ndarray, threshold: float) -> np.ndarray:
    """255 where ``probability`` reaches ``threshold``, 0 elsewhere."""
    return np.where(probability >= threshold, np.uint8(255), np.uint8(0))
