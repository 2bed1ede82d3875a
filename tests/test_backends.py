"""Backends: selection by name, honest status, and the converted-model cache."""

from __future__ import annotations

import json
import sys
import types
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_stand_in
from polypview import backends
from polypview.backends import Backend, create_backend, status
from polypview.backends.cache import cache_key
from polypview.backends.tensorrt import TensorRTBackend
from polypview.backends.torch_device import TorchDeviceBackend
from polypview.bench import bench_inference, serving_backend
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


# --- GPU backends: what can be checked without a GPU -----------------------------------------


def fake_backend_module(
    monkeypatch: pytest.MonkeyPatch, name: str, reason: str | None
) -> types.ModuleType:
    """A backend module registered under ``name``: usable unless ``reason``; creates a label."""
    module = types.ModuleType(f"fake_backend_{name}")
    module.unavailable_reason = lambda: reason  # type: ignore[attr-defined]
    module.describe = lambda: f"fake {name}"  # type: ignore[attr-defined]
    module.create = lambda network, card: name  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(backends.MODULES, name, module.__name__)
    return module


@pytest.mark.parametrize(
    ("usable", "chosen"),
    [
        ({"tensorrt", "cuda", "openvino", "torch"}, "tensorrt"),
        ({"cuda", "openvino", "torch"}, "cuda"),
        ({"openvino", "torch"}, "openvino"),
        ({"torch"}, "torch"),
    ],
)
def test_auto_takes_tensorrt_then_cuda_then_openvino_then_torch(
    monkeypatch: pytest.MonkeyPatch, stand_in_model: ModelCard, usable: set[str], chosen: str
) -> None:
    for name in backends.AUTO_ORDER:
        fake_backend_module(monkeypatch, name, None if name in usable else "not here")
    assert create_backend("auto", torch.nn.Identity(), stand_in_model) == chosen


def test_tensorrt_gives_way_to_cuda_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, stand_in_model: ModelCard, caplog: pytest.LogCaptureFixture
) -> None:
    fake_backend_module(monkeypatch, "tensorrt", "not installed (torch_tensorrt)")
    fake_backend_module(monkeypatch, "cuda", None)
    assert create_backend("tensorrt", torch.nn.Identity(), stand_in_model) == "cuda"
    assert (
        "backend 'tensorrt' is not usable here (not installed (torch_tensorrt)); using 'cuda'"
        in (caplog.text)
    )
    fake_backend_module(monkeypatch, "cuda", "no CUDA device")
    with pytest.raises(BackendError, match="nor is its fallback 'cuda': no CUDA device"):
        create_backend("tensorrt", torch.nn.Identity(), stand_in_model)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_gpu_backends_say_why_they_cannot_run_here(stand_in_model: ModelCard) -> None:
    assert not status("cuda").available and status("cuda").reason.startswith("no CUDA device")
    assert not status("tensorrt").available
    with pytest.raises(BackendError, match="backend 'tensorrt' is not usable here"):
        create_backend("tensorrt", load_network(stand_in_model), stand_in_model)


def test_info_lists_the_gpu_backends_with_their_reasons(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from polypview.cli import main

    assert main(["info", "--json"]) == 0
    listed = {row["name"]: row for row in json.loads(capsys.readouterr().out)["backends"]}
    for name in ("tensorrt", "cuda"):
        assert listed[name]["available"] == status(name).available
        assert listed[name]["reason"] == status(name).reason != ""


def test_cache_keys_are_file_name_safe_and_change_with_each_part() -> None:
    key = cache_key(gpu="NVIDIA H100 80GB HBM3", torch="2.11.0+cu130", torch_tensorrt="2.11/0")
    assert key == "gpu-nvidia-h100-80gb-hbm3_torch-2.11.0+cu130_torch-tensorrt-2.11-0"
    assert cache_key(gpu="NVIDIA H200", torch="2.11.0+cu130") != cache_key(
        gpu="NVIDIA H100", torch="2.11.0+cu130"
    )


class FakeTorchTensorRT:
    """torch_tensorrt's compile/save/load surface: 'compiles' by returning the module as is."""

    __version__ = "2.99.0"
    __tensorrt_version__ = "10.99"

    def __init__(self, failure: Exception | None = None) -> None:
        self.failure = failure
        self.compiled = 0

    def compile(self, model: torch.nn.Module, ir: str, arg_inputs: list[torch.Tensor]):
        assert ir == "dynamo"
        # The dynamo path types the engine from the model and its inputs: both must be fp16.
        assert arg_inputs[0].dtype == torch.float16
        assert {p.dtype for p in model.parameters()} == {torch.float16}
        self.compiled += 1
        if self.failure is not None:
            raise self.failure
        return model

    def save(self, module: torch.nn.Module, path: str, arg_inputs: list[torch.Tensor]) -> None:
        torch.save(module, path)

    def load(self, path: str) -> types.SimpleNamespace:
        module = torch.load(path, weights_only=False)
        return types.SimpleNamespace(module=lambda: module)


def tensorrt_on_cpu(card: ModelCard, runtime: FakeTorchTensorRT) -> TensorRTBackend:
    network = load_network(card)
    fallback = TorchDeviceBackend(
        network, card, torch.device("cpu"), torch.float16, name="stand-in"
    )
    return TensorRTBackend(network, card, fallback, runtime)


def test_tensorrt_engine_is_built_cached_and_reloaded(tmp_path: Path) -> None:
    card = make_stand_in(tmp_path, "unet")
    runtime = FakeTorchTensorRT()
    first = tensorrt_on_cpu(card, runtime)
    assert first.wait_for_engine(60) and first.name == "tensorrt" and runtime.compiled == 1
    assert first.progress.stage == "ready"
    (cached,) = (tmp_path / ".cache").glob("*.ep")
    assert card.sha256[:16] in cached.name and "cpu" in cached.name and "2.99.0" in cached.name
    batch = np.random.default_rng(0).standard_normal((1, 3, 64, 64), dtype=np.float32)
    np.testing.assert_allclose(first.infer(batch), first.fallback.infer(batch), atol=1e-2)
    second = tensorrt_on_cpu(card, runtime)
    assert second.wait_for_engine(60) and runtime.compiled == 1  # loaded, not rebuilt
    cached.write_bytes(b"truncated")
    third = tensorrt_on_cpu(card, runtime)
    assert third.wait_for_engine(60) and runtime.compiled == 2  # unreadable: rebuilt


def test_a_failed_tensorrt_build_stays_on_cuda_and_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    card = make_stand_in(tmp_path, "unet")
    backend = tensorrt_on_cpu(card, FakeTorchTensorRT(RuntimeError("unsupported op\ndetails")))
    assert backend.name == "stand-in"  # serving before the build ends, never labelled TensorRT
    assert not backend.wait_for_engine(60)
    assert backend.name == "stand-in" and backend.progress.stage == "failed"
    assert backend.progress.detail == "RuntimeError: unsupported op"
    assert "TensorRT build for unet failed (RuntimeError: unsupported op); staying on the CUDA" in (
        caplog.text
    )
    batch = np.zeros((1, 3, 64, 64), np.float32)
    assert backend.infer(batch).shape == (1, 1, 64, 64)
    assert not list((tmp_path / ".cache").glob("*.ep"))


def test_the_benchmark_times_whole_frames_stage_by_stage() -> None:
    bench = bench_inference(["unet"], ["torch"], runs=2, warmup=1, frame_size=(270, 480))
    (inference,) = bench.inference
    (frame,) = bench.frames
    assert (frame.model, frame.backend, frame.frame) == ("unet", "torch", "480x270")
    assert inference.speedup == frame.speedup == 1.0  # the reference itself
    assert list(frame.stages_ms) == ["upload", "preprocess", "inference", "postprocess", "download"]
    assert frame.stages_ms["inference"] > 0 and frame.median_ms > 0 and frame.p90_ms > 0


def test_an_engine_that_did_not_build_is_never_timed_as_tensorrt(tmp_path: Path) -> None:
    card = make_stand_in(tmp_path, "unet")
    failed = tensorrt_on_cpu(card, FakeTorchTensorRT(RuntimeError("unsupported op")))
    assert serving_backend("tensorrt", failed) == "engine not built (RuntimeError: unsupported op)"
    built = tensorrt_on_cpu(card, FakeTorchTensorRT())
    assert serving_backend("tensorrt", built) is None
