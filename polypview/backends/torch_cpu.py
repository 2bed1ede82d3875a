"""The reference backend: the PyTorch network, eager, fp32, on the CPU."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from polypview.hardware import cpu_name
from polypview.modelfile import ModelCard


def unavailable_reason() -> str | None:
    return None


def describe() -> str:
    return (
        f"PyTorch {torch.__version__} eager fp32 on {cpu_name()}, {torch.get_num_threads()} threads"
    )


class TorchBackend:
    name = "torch"
    precision = "fp32"

    def __init__(self, network: nn.Module) -> None:
        self.network = network.eval()
        self.device = cpu_name()

    @torch.inference_mode()
    def infer(self, batch: np.ndarray) -> np.ndarray:
        return self.network(torch.from_numpy(batch)).numpy()


def create(network: nn.Module, card: ModelCard) -> TorchBackend:
    return TorchBackend(network)
