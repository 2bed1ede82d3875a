"""OpenVINO in bf16 on CPUs that compute it natively (AVX-512 BF16, AMX): about twice fp32's speed.

bf16 keeps 8 bits of mantissa, so masks move a little where a model's probability sits near the
threshold. It can always be asked for by name; ``auto`` takes it only for weights whose parity
with the torch fp32 reference was checked and passed on test120 (``python -m training.parity
--backends openvino-bf16 --record`` writes that check into the model card).
"""

from __future__ import annotations

import openvino as ov
from torch import nn

from polypview.backends.openvino_cpu import OpenVINOBackend
from polypview.hardware import cpu_name
from polypview.modelfile import ModelCard

NAME = "openvino-bf16"


def unavailable_reason() -> str | None:
    core = ov.Core()
    if "CPU" not in core.available_devices:
        return "OpenVINO sees no CPU device"
    if "BF16" not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        return f"{cpu_name()} has no native bf16 (AVX-512 BF16 or AMX)"
    return None


def describe() -> str:
    return f"OpenVINO {ov.get_version().split('-')[0]} bf16 on {cpu_name()}"


def unverified_for(card: ModelCard) -> str | None:
    """Why ``auto`` should not pick bf16 for ``card``, or None when its parity passed."""
    record = card.parity.get(NAME)
    if not record or record.get("weights_sha256") != card.sha256:
        return f"bf16 parity not checked for these weights of '{card.name}'"
    if not record.get("passed"):
        return f"bf16 changes the masks of '{card.name}' beyond the limit (training.parity)"
    return None


def create(network: nn.Module, card: ModelCard) -> OpenVINOBackend:
    return OpenVINOBackend(network, card, precision="bf16", name=NAME)
