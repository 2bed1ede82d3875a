"""CUDA: the network in PyTorch on an NVIDIA GPU, fp16, channels_last, one CUDA graph.

fp16 rather than bf16: both halve the memory traffic and use the tensor cores, and fp16 keeps
three more bits of mantissa, which is what the masks' edges depend on; the networks' batch
normalisation keeps activations far from fp16's range limit. The GPU run's parity step checks the
masks against the torch fp32 reference on test120 (docs/gpu.md).
"""

from __future__ import annotations

import torch
from torch import nn

from polypview.backends.torch_device import TorchDeviceBackend
from polypview.modelfile import ModelCard

PRECISION = torch.float16


def unavailable_reason() -> str | None:
    if torch.version.cuda is None:
        return f"no CUDA device: PyTorch {torch.__version__} is a CPU-only build"
    if not torch.cuda.is_available():
        return "no CUDA device visible (no NVIDIA GPU, driver, or CUDA_VISIBLE_DEVICES hides it)"
    return None


def describe() -> str:
    return (
        f"PyTorch {torch.__version__} on {torch.cuda.get_device_name()}: fp16, channels_last, "
        "cuDNN autotuning, CUDA graphs"
    )


def create(network: nn.Module, card: ModelCard) -> TorchDeviceBackend:
    return TorchDeviceBackend(network, card, torch.device("cuda"), PRECISION)
