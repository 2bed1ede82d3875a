"""Backends: selection by name, honest status, and the converted-model cache."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_stand_in
from polypview import backends
from polypview.backends import Backend, create_backend, status
from polypview.errors import BackendError
from polypview.modelfile import ModelCard, load_network, save_model
from polypview.nets import create_model

needs_openvino = pytest.mark.skipif(
    not status("openvino").available, reason=f"openvino: {status('openvino').reason}"
)


def cached_files(card_folder: Path) -> list[Path]:
    return sorted((card_folder / ".cache").glob("*.xml"))


@needs_openvino
def test_converted_model_is_cached_beside_the_weights_and_reused(tmp_path: Path) -> None:
    card = make_stand_in(tmp_path, "unet")
    create_backend("openvino", load_network(card), card)
    (cached,) = cached_files(tmp_path)
    assert card.sha256[:16] in cached.name and cached.with_suffix(".bin").exists()
    built = cached.stat().st_mtime_ns
    create_backend("openvino", load_network(card), card)
    assert cached_files(tmp_path) == [cached] and cached.stat().st_mtime_ns == built


@needs_openvino
def test_new_weights_rebuild_the_cache(tmp_path: Path) -> None:
    card = make_stand_in(tmp_path, "unet")
    original = create_backend("torch", load_network(card), card)
    create_backend("openvino", load_network(card), card)
    torch.manual_seed(1)
    retrained = save_model(create_model("unet"), replace(card, sha256=""))
    assert retrained.sha256 != card.sha256
    backend = create_backend("openvino", load_network(retrained), retrained)
    assert len(cached_files(tmp_path)) == 2
    batch = np.random.default_rng(0).standard_normal((1, 3, 64, 64), dtype=np.float32)
    actual = backend.infer(batch).ravel()

    def agreement(reference: Backend) -> float:
        return float(np.corrcoef(reference.infer(batch).ravel(), actual)[0, 1])

    current = create_backend("torch", load_network(retrained), retrained)
    assert agreement(current) > 0.99 > 0.5 > agreement(original)


def test_a_missing_runtime_is_reported_not_raised(
    monkeypatch: pytest.MonkeyPatch, stand_in_model: ModelCard
) -> None:
    monkeypatch.setitem(backends.MODULES, "absent", "polypview.backends.no_such_runtime")
    absent = status("absent")
    assert not absent.available and absent.reason.startswith("not installed")
    with pytest.raises(BackendError, match="backend 'absent' is not usable here: not installed"):
        create_backend("absent", load_network(stand_in_model), stand_in_model)
