"""OpenVINO on the CPU: the fast CPU runtime (docs/benchmarks.md has the measurements behind it).

Always fp32. Left to itself OpenVINO computes in bf16 on CPUs that have it natively (AVX-512 BF16,
AMX), twice as fast again, but with the interim ResUNet++ its masks then differ from the torch
fp32 reference by more than the project's limit on 19 of the 120 test images (mask Dice down to
0.83, mean 0.991); reduced precision comes back only behind the parity checks of the
acceleration work.
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
    name = "openvino"

    def __init__(self, network: nn.Module, card: ModelCard) -> None:
        version = ov.get_version().split("-")[0]
        path = converted_model_path(card, f"openvino{version}", ".xml")
        model: ov.Model | Path = path
        if not path.exists():
            model = convert(network, card)
            try:
                save_atomically(model, path)
            except (OSError, RuntimeError) as error:  # a full or read-only disk: run uncached
                log.warning("cannot cache the converted model in %s: %s", path.parent, error)
        compiled = ov.Core().compile_model(model, "CPU", COMPILE_OPTIONS)
        self.request = compiled.create_infer_request()
        self.precision = "fp32"  # COMPILE_OPTIONS asks for it
        self.device = cpu_name()

    def infer(self, batch: np.ndarray) -> np.ndarray:
        self.request.infer({0: np.ascontiguousarray(batch)})
        return self.request.get_output_tensor(0).data.copy()


def create(network: nn.Module, card: ModelCard) -> OpenVINOBackend:
    return OpenVINOBackend(network, card)
