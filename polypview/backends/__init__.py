"""Inference backends behind one small interface, chosen by name or ``auto``.

A host backend turns a preprocessed batch (N, C, H, W float32 numpy) into logits (N, classes,
H, W float32). A device backend (CUDA, TensorRT) also takes and returns torch tensors on its own
device, so that the segmenter keeps a frame on the GPU from upload to mask. Each lives in its own
module, imported only when asked for, so a missing runtime costs nothing but a line in
``polypview info``.
"""

from __future__ import annotations

import importlib
import logging
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from polypview.errors import BackendError
from polypview.modelfile import ModelCard

log = logging.getLogger(__name__)

MODULES = {
    "tensorrt": "polypview.backends.tensorrt",
    "cuda": "polypview.backends.cuda",
    "openvino-int8": "polypview.backends.openvino_int8",
    "openvino-bf16": "polypview.backends.openvino_bf16",
    "openvino": "polypview.backends.openvino_cpu",
    "torch": "polypview.backends.torch_cpu",
}
# Fastest first; auto takes a reduced CPU precision only for weights that passed parity in it.
AUTO_ORDER = ["tensorrt", "cuda", "openvino-int8", "openvino-bf16", "openvino", "torch"]
# Asked for by name but unusable here: what runs instead, with a warning, when it can.
FALLBACKS = {"tensorrt": "cuda"}


class Backend(Protocol):
    name: str
    device: str  # where it runs, in words: "AMD EPYC (AVX-512, BF16)"
    precision: str  # what it computes in: "fp32", "bf16", ...

    def infer(self, batch: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class TensorBackend(Protocol):
    """A backend that runs on a torch device and takes its input there, in ``input_dtype``."""

    name: str
    device: str
    precision: str
    torch_device: torch.device
    input_dtype: torch.dtype

    def infer(self, batch: np.ndarray) -> np.ndarray: ...

    def infer_tensor(self, batch: torch.Tensor) -> torch.Tensor:
        """Logits for ``batch`` (N, C, H, W on ``torch_device``), valid until the next call."""
        ...

    def running(self) -> AbstractContextManager[object]:
        """The context (its CUDA stream) in which a frame's work is queued."""
        ...

    def synchronize(self) -> None:
        """Wait until the work queued in ``running`` is done."""
        ...


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
    """The named backend (or the first usable one for ``auto``) running ``network``.

    A named backend that is unusable here gives way to its fallback (``FALLBACKS``) with a
    warning, so that asking for TensorRT on a machine without it still runs on the GPU.
    """
    if name == "auto":
        chosen, _ = auto_choice(card)
        if chosen is None:
            raise BackendError("no inference backend is usable; see `polypview info`")
        name = chosen
    if name not in MODULES:
        raise BackendError(f"unknown backend '{name}'; choose auto or one of: {', '.join(MODULES)}")
    state = status(name)
    if not state.available:
        fallback = FALLBACKS.get(name)
        fallback_state = status(fallback) if fallback else None
        if fallback_state is None or not fallback_state.available:
            also = (
                f"; nor is its fallback '{fallback}': {fallback_state.reason}"
                if fallback_state
                else ""
            )
            raise BackendError(f"backend '{name}' is not usable here: {state.reason}{also}")
        log.warning(
            "backend '%s' is not usable here (%s); using '%s'", name, state.reason, fallback
        )
        name = fallback
    reason = unusable_for(name, card)
    if reason:
        raise BackendError(f"backend '{name}' cannot run this model: {reason}")
    return importlib.import_module(MODULES[name]).create(network, card)


def auto_choice(card: ModelCard) -> tuple[str | None, dict[str, str]]:
    """The backend ``auto`` runs ``card`` on here, and why it passed over the faster ones."""
    passed_over: dict[str, str] = {}
    for name in AUTO_ORDER:
        state = status(name)
        reason = (
            (None if state.available else state.reason)
            or unusable_for(name, card)
            or unverified_for(name, card)
        )
        if reason is None:
            return name, passed_over
        passed_over[name] = reason
    return None, passed_over


def unverified_for(name: str, card: ModelCard) -> str | None:
    """Why ``auto`` should pass over ``name`` for ``card`` (a reduced precision whose parity
    these weights have not passed), or None. Asked for by name, such a backend still runs."""
    return _model_check(name, "unverified_for", card)


def unusable_for(name: str, card: ModelCard) -> str | None:
    """Why the (available) backend ``name`` cannot run ``card``'s model, or None when it can.

    Most backends run any model; one that needs something made per model (the int8 CPU model)
    says what is missing."""
    return _model_check(name, "unusable_for", card)


def _model_check(name: str, hook: str, card: ModelCard) -> str | None:
    """The backend module's own ``hook(card)`` answer; None where it has no such check."""
    try:
        module = importlib.import_module(MODULES[name])
    except ImportError:
        return None  # ``status`` reports a missing runtime
    check = getattr(module, hook, None)
    return check(card) if check else None
