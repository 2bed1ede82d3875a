"""OpenVINO int8 on the CPU: the model's quantised twin, made and verified by training.quantise.

Quantisation needs calibration images and a parity check against the fp32 reference, so it is
done once, offline, and shipped beside the weights (``models/NAME.int8.xml``/``.bin``); the card's
``int8`` record says which weights it was made from and what its masks scored. A model without
such a record, or whose weights have changed since, simply has no int8 backend.
"""

from __future__ import annotations

import numpy as np
import openvino as ov
from torch import nn

from polypview.backends.openvino_cpu import COMPILE_OPTIONS, unavailable_reason
from polypview.errors import BackendError
from polypview.hardware import cpu_name
from polypview.modelfile import ModelCard, file_sha256

__all__ = ["OpenVINOInt8Backend", "create", "describe", "unavailable_reason", "unusable_for"]


def describe() -> str:
    return f"OpenVINO {ov.get_version().split('-')[0]} int8 on {cpu_name()}, for quantised models"


def unusable_for(card: ModelCard) -> str | None:
    """Why ``card`` has no usable int8 model, or None when it has one."""
    record = card.int8
    if not record:
        return (
            f"model '{card.name}' has no int8 version; make one with "
            f"`python -m training.quantise --model {card.name}`"
        )
    if record.get("weights_sha256") != card.sha256:
        return (
            f"the int8 version of '{card.name}' was made from other weights; "
            f"re-run `python -m training.quantise --model {card.name}`"
        )
    if not (card.folder / record["file"]).with_suffix(".bin").exists():
        return f"the int8 file {card.folder / record['file']} (and its .bin) is missing"
    return None


class OpenVINOInt8Backend:
    name = "openvino-int8"
    precision = "int8"

    def __init__(self, card: ModelCard) -> None:
        reason = unusable_for(card)
        if reason:
            raise BackendError(reason)
        xml = card.folder / card.int8["file"]
        weights = xml.with_suffix(".bin")
        if file_sha256(weights) != card.int8["bin_sha256"]:
            raise BackendError(f"{weights} does not match its card (corrupted or replaced)")
        try:
            model = ov.Core().read_model(xml, weights)
        except RuntimeError as error:
            raise BackendError(f"{xml} is not a readable OpenVINO model: {error}") from None
        # fp32 for the layers left unquantised: the precision its parity was measured in.
        compiled = ov.Core().compile_model(model, "CPU", COMPILE_OPTIONS)
        self.request = compiled.create_infer_request()
        self.device = cpu_name()

    def infer(self, batch: np.ndarray) -> np.ndarray:
        self.request.infer({0: np.ascontiguousarray(batch)})
        return self.request.get_output_tensor(0).data.copy()


def create(network: nn.Module, card: ModelCard) -> OpenVINOInt8Backend:
    """The quantised twin of ``card``; ``network`` is not needed (the int8 file holds it all)."""
    return OpenVINOInt8Backend(card)
