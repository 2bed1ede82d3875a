"""Inference backends behind one small interface, chosen by name or ``auto``.

A backend turns a preprocessed batch (N, C, H, W float32) into logits (N, classes, H, W float32).
Each lives in its own module, imported only when asked for, so a missing runtime costs nothing
but a line in ``polypview info``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from torch import nn

from polypview.errors import BackendError
from polypview.modelfile import ModelCard

MODULES = {
    "openvino": "polypview.backends.openvino_cpu",
    "torch": "polypview.backends.torch_cpu",
}
AUTO_ORDER = ["openvino", "torch"]  # fastest first


class Backend(Protocol):
    name: str
    device: str  # where it runs, in words: "AMD EPYC (AVX-512, BF16)"
    precision: str  # what it computes in: "fp32", "bf16", ...

    def infer(self, batch: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class BackendStatus:
    name: str
    available: bool
    reason: str  # why not, or what it runs on


def backend_names() -> list[str]:
    return list(MODULES)


def status(name: str) -> BackendStatus:
    try:
        module = importlib.import_module(MODULES[name])
    except ImportError as error:
        return BackendStatus(name, False, f"not installed ({error.name or error})")
    reason = module.unavailable_reason()
    return BackendStatus(name, reason is None, reason or module.describe())


def create_backend(name: str, network: nn.Module, card: ModelCard) -> Backend:
    """The named backend (or the first usable one for ``auto``) running ``network``."""
    if name == "auto":
        usable = [candidate for candidate in AUTO_ORDER if status(candidate).available]
        if not usable:
            raise BackendError("no inference backend is usable; see `polypview info`")
        name = usable[0]
    if name not in MODULES:
        raise BackendError(f"unknown backend '{name}'; choose auto or one of: {', '.join(MODULES)}")
    state = status(name)
    if not state.available:
        raise BackendError(f"backend '{name}' is not usable here: {state.reason}")
    return importlib.import_module(MODULES[name]).create(network, card)
