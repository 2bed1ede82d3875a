"""OpenVINO on the CPU: the fast CPU runtime (docs/benchmarks.md has the measurements behind it).

fp32, asked for explicitly: left to itself OpenVINO computes in bf16 on CPUs that have it natively
(AVX-512 BF16, AMX), which changes the masks. bf16 is its own backend (``openvino_bf16``), which
``auto`` takes only for models that passed the parity check in it.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import openvino as ov
import torch
from torch import nn

from polypview.backends.cache import converted_model_path
from polypview.hardware import cpu_name
from polypview.modelfile import ModelCard

log = logging.getLogger(__name__)
COMPILE_OPTIONS = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
PRECISION_HINTS = {"fp32": "f32", "bf16": "bf16"}


def unavailable_reason() -> str | None:
    return None if "CPU" in ov.Core().available_devices else "OpenVINO sees no CPU device"


def describe() -> str:
    return f"OpenVINO {ov.get_version().split('-')[0]} fp32 on {cpu_name()}"


def convert(network: nn.Module, card: ModelCard) -> ov.Model:
    """The torch network as an OpenVINO model, fixed at the card's input size."""
    height, width = card.input_size
    shape = (1, card.in_channels, height, width)
    with torch.no_grad(), warnings.catch_warnings():
        # torch.export's own use of a deprecated pytree class; nothing the user can act on.
        warnings.filterwarnings("ignore", "`isinstance\\(treespec, LeafSpec\\)`", FutureWarning)
        model = ov.convert_model(torch.export.export(network.eval(), (torch.zeros(shape),)))
    model.reshape(list(shape))
    return model


def save_atomically(model: ov.Model, path: Path) -> None:
    """Write the .xml/.bin pair so that a present .xml always means a complete pair."""
    with tempfile.TemporaryDirectory(dir=path.parent) as scratch:
        staged = Path(scratch) / path.name
        ov.save_model(model, staged, compress_to_fp16=False)
        os.replace(staged.with_suffix(".bin"), path.with_suffix(".bin"))
        os.replace(staged, path)


class OpenVINOBackend:
    def __init__(
        self, network: nn.Module, card: ModelCard, precision: str = "fp32", name: str = "openvino"
    ) -> None:
        self.name = name
        version = ov.get_version().split("-")[0]
        path = converted_model_path(card, f"openvino{version}", ".xml")
        model: ov.Model | Path = path
        if not path.exists():
            model = convert(network, card)
            try:
                save_atomically(model, path)
            except (OSError, RuntimeError) as error:  # a full or read-only disk: run uncached
                log.warning("cannot cache the converted model in %s: %s", path.parent, error)
        options = COMPILE_OPTIONS | {"INFERENCE_PRECISION_HINT": PRECISION_HINTS[precision]}
        compiled = ov.Core().compile_model(model, "CPU", options)
        self.request = compiled.create_infer_request()
        self.precision = precision  # what the hint asks for
        self.device = cpu_name()

    def infer(self, batch: np.ndarray) -> np.ndarray:
        self.request.infer({0: np.ascontiguousarray(batch)})
        return self.request.get_output_tensor(0).data.copy()


def create(network: nn.Module, card: ModelCard) -> OpenVINOBackend:
    return OpenVINOBackend(network, card)
