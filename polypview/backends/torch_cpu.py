"""The reference backend: the PyTorch network, eager, fp32, on the CPU."""

from __future__ import annotations

import platform

import numpy as np
import torch
from torch import nn

from polypview.modelfile import ModelCard


def unavailable_reason() -> str | None:
    return None


def describe() -> str:
    return (
        f"PyTorch {torch.__version__} eager fp32 on {cpu_name()}, {torch.get_num_threads()} threads"
    )


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class TorchBackend:
    name = "torch"

    def __init__(self, network: nn.Module) -> None:
        self.network = network.eval()
        self.device = f"CPU ({cpu_name()})"

    @torch.inference_mode()
    def infer(self, batch: np.ndarray) -> np.ndarray:
        return self.network(torch.from_numpy(batch)).numpy()


def create(network: nn.Module, card: ModelCard) -> TorchBackend:
    return TorchBackend(network)
