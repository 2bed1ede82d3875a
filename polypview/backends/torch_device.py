"""The PyTorch network on a torch device, taking its input there: the CUDA backend's engine.

On a GPU it runs in half precision with channels_last (tensor cores), lets cuDNN pick its
fastest convolutions (the input size never changes), replays the whole forward pass as one CUDA
graph (no per-layer launch cost at batch 1) and queues its work on a stream of its own, so the
segmenter can keep a frame on the GPU from upload to mask. On a CPU device the same class runs
eagerly, which is how the device path is tested without a GPU.
"""

from __future__ import annotations

import copy
import logging
from contextlib import AbstractContextManager, nullcontext

import numpy as np
import torch
from torch import nn

from polypview.modelfile import ModelCard

log = logging.getLogger(__name__)

PRECISION_NAMES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}
GRAPH_WARMUP_RUNS = 3  # cuDNN autotunes in these, before the graph freezes its choices


def gpu_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else device.type


class TorchDeviceBackend:
    """``network`` in ``dtype`` on ``device``; with ``graphs``, replayed as one CUDA graph."""

    def __init__(
        self,
        network: nn.Module,
        card: ModelCard,
        device: torch.device,
        dtype: torch.dtype,
        *,
        name: str = "cuda",
        graphs: bool = True,
    ) -> None:
        self.name = name
        self.torch_device = device
        self.input_dtype = dtype
        self.precision = PRECISION_NAMES[dtype]
        self.device = gpu_name(device)
        self.input_shape = (1, card.in_channels, *card.input_size)
        # A copy: the caller's network stays as it was (the benchmark hands it to every backend).
        self.network = (
            copy.deepcopy(network).eval().to(device, dtype).to(memory_format=torch.channels_last)
        )
        on_gpu = device.type == "cuda"
        if on_gpu:
            torch.backends.cudnn.benchmark = True
        self.stream = torch.cuda.Stream(device) if on_gpu else None
        self.graph: torch.cuda.CUDAGraph | None = None
        if graphs and on_gpu:
            self.graph = self._capture()

    @property
    def graphs(self) -> bool:
        return self.graph is not None

    def running(self) -> AbstractContextManager[object]:
        return torch.cuda.stream(self.stream) if self.stream is not None else nullcontext()

    def synchronize(self) -> None:
        if self.stream is not None:
            self.stream.synchronize()

    def _capture(self) -> torch.cuda.CUDAGraph | None:
        """The forward pass at the card's input size as a CUDA graph, or None where it cannot be
        captured (the backend then runs eagerly, and ``describe`` says so)."""
        assert self.stream is not None
        self._static_input = torch.zeros(
            self.input_shape, device=self.torch_device, dtype=self.input_dtype
        ).contiguous(memory_format=torch.channels_last)
        self.stream.wait_stream(torch.cuda.current_stream(self.torch_device))
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.no_grad():
                with self.running():
                    for _ in range(GRAPH_WARMUP_RUNS):
                        self.network(self._static_input)
                self.stream.synchronize()
                with torch.cuda.graph(graph, stream=self.stream):
                    self._static_output = self.network(self._static_input)
        except RuntimeError as error:
            log.warning("CUDA graph capture failed, running without graphs: %s", error)
            return None
        return graph

    @torch.no_grad()
    def infer_tensor(self, batch: torch.Tensor) -> torch.Tensor:
        with self.running():
            if self.graph is None or batch.shape != self._static_input.shape:
                return self.network(
                    batch.to(self.input_dtype).contiguous(memory_format=torch.channels_last)
                )
            self._static_input.copy_(batch)
            self.graph.replay()
            return self._static_output

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """The host interface, for comparisons with the other backends: numpy in and out."""
        with self.running():
            tensor = torch.from_numpy(batch).to(self.torch_device, self.input_dtype)
            logits = self.infer_tensor(tensor).float().cpu()
        return logits.numpy()
