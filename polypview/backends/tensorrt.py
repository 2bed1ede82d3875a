"""TensorRT through torch-tensorrt's dynamo path: an fp16 engine per model, GPU and version.

Building an engine takes a minute or more, so it happens once, in the background: the CUDA
backend serves meanwhile, and for good if the build fails (with a one-line warning). The built
program is saved beside the weights and reloaded on the next start; its file name carries what it
depends on (weights hash, GPU, TensorRT, torch-tensorrt and torch versions), so any change
rebuilds it. ``progress`` tells a caller (the GUI's status line) where the build stands.

The model and its example input are cast to fp16 before compiling: torch-tensorrt now types the
engine from them (``use_explicit_typing``) and no longer honours ``enabled_precisions``.
"""

from __future__ import annotations

import copy
import importlib
import importlib.metadata
import importlib.util
import logging
import os
import threading
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from polypview.backends import cuda
from polypview.backends.cache import cache_key, converted_model_path
from polypview.backends.torch_device import TorchDeviceBackend, gpu_name
from polypview.modelfile import ModelCard

log = logging.getLogger(__name__)

PRECISION = torch.float16
INSTALL_HINT = "pip install 'polypview[tensorrt]'"


def unavailable_reason() -> str | None:
    if importlib.util.find_spec("torch_tensorrt") is None:
        return f"not installed (torch_tensorrt; {INSTALL_HINT})"
    return cuda.unavailable_reason()


def distribution_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def describe() -> str:
    return (
        f"torch-tensorrt {distribution_version('torch-tensorrt')} (TensorRT "
        f"{distribution_version('tensorrt')}) on {torch.cuda.get_device_name()}: fp16 engine, "
        "built once per model and GPU in the background (CUDA serves meanwhile)"
    )


def tensorrt_version(runtime: object) -> str:
    """The TensorRT that will run the engine: the installed one, else the one torch-tensorrt
    was built against."""
    try:
        return importlib.import_module("tensorrt").__version__
    except ImportError:
        return str(getattr(runtime, "__tensorrt_version__", "unknown"))


def engine_path(card: ModelCard, device: torch.device, runtime: object) -> Path:
    """Where the compiled program for ``card`` on ``device`` lives, keyed by what it depends on."""
    key = cache_key(
        gpu=gpu_name(device),
        tensorrt=tensorrt_version(runtime),
        torch_tensorrt=str(getattr(runtime, "__version__", "unknown")),
        torch=torch.__version__,
        fp16="x".join(map(str, card.input_size)),
    )
    return converted_model_path(card, key, ".ep")


@dataclass(frozen=True)
class BuildProgress:
    stage: str  # "waiting", "loading", "compiling", "saving", "ready" or "failed"
    detail: str  # what it is doing, or why it failed, in one line
    elapsed_s: float


class EngineBuild:
    """Loads the cached engine or compiles and caches a new one, on a thread of its own."""

    def __init__(
        self, network: nn.Module, card: ModelCard, device: torch.device, runtime: object
    ) -> None:
        self.card = card
        self.device = device
        self.runtime = runtime
        self.network = network
        self.engine: nn.Module | None = None
        self._started = time.monotonic()
        self._progress = BuildProgress("waiting", "not started", 0.0)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"tensorrt-{card.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def progress(self) -> BuildProgress:
        return self._progress

    def wait(self, timeout: float | None = None) -> bool:
        """Whether the build has ended (ready or failed) within ``timeout`` seconds."""
        return self._done.wait(timeout)

    def _stage(self, stage: str, detail: str) -> None:
        self._progress = BuildProgress(stage, detail, round(time.monotonic() - self._started, 1))
        log.info("TensorRT %s: %s", self.card.name, detail)

    def _run(self) -> None:
        try:
            self.engine = self._load_or_build()
            self._stage("ready", f"engine ready after {time.monotonic() - self._started:.0f} s")
        except Exception as error:  # any failure of a third-party compiler: report, keep CUDA
            first_line = (str(error).strip().splitlines() or [""])[0]
            self._stage("failed", f"{type(error).__name__}: {first_line}")
            log.warning(
                "TensorRT build for %s failed (%s); staying on the CUDA backend",
                self.card.name,
                self._progress.detail,
            )
        finally:
            self._done.set()

    def _load_or_build(self) -> nn.Module:
        runtime = self.runtime
        path = engine_path(self.card, self.device, runtime)
        example = torch.zeros(
            (1, self.card.in_channels, *self.card.input_size), device=self.device, dtype=PRECISION
        )
        if path.exists():
            self._stage("loading", f"loading the cached engine {path.name}")
            try:
                return self._checked(runtime.load(str(path)).module(), example)
            except Exception as error:  # a stale or truncated file: build it again
                log.warning("cached TensorRT engine %s is unusable (%s); rebuilding", path, error)
        log.warning(
            "building the TensorRT engine for %s in the background (once per model and GPU, "
            "a minute or more); the CUDA backend serves meanwhile",
            self.card.name,
        )
        self._stage("compiling", "compiling the fp16 engine")
        model = copy.deepcopy(self.network).eval().to(self.device, PRECISION)
        with torch.no_grad():
            engine = runtime.compile(model, ir="dynamo", arg_inputs=[example])
        self._stage("saving", f"saving the engine to {path}")
        staged = path.with_suffix(".partial.ep")
        try:
            runtime.save(engine, str(staged), arg_inputs=[example])
            os.replace(staged, path)
        except (OSError, RuntimeError) as error:  # a full or read-only disk: run uncached
            log.warning("cannot cache the TensorRT engine in %s: %s", path.parent, error)
            staged.unlink(missing_ok=True)
        return self._checked(engine, example)

    @staticmethod
    def _checked(engine: nn.Module, example: torch.Tensor) -> nn.Module:
        """``engine``, once it has run on ``example`` and given a finite answer."""
        with torch.no_grad():
            output = engine(example)
        if not torch.isfinite(output).all():
            raise RuntimeError("the engine's output is not finite")
        return engine


class TensorRTBackend:
    """The TensorRT engine once built; until then, or if the build fails, ``fallback``.

    ``name`` says which one is serving, so no figure is ever labelled TensorRT that CUDA made.
    """

    precision = "fp16"

    def __init__(
        self,
        network: nn.Module,
        card: ModelCard,
        fallback: TorchDeviceBackend,
        runtime: object,
    ) -> None:
        self.fallback = fallback
        self.torch_device = fallback.torch_device
        self.input_dtype = PRECISION
        self.device = fallback.device
        self.build = EngineBuild(network, card, fallback.torch_device, runtime)
        self.build.start()

    @property
    def name(self) -> str:
        return "tensorrt" if self.build.engine is not None else self.fallback.name

    @property
    def progress(self) -> BuildProgress:
        return self.build.progress

    def wait_for_engine(self, timeout: float | None = None) -> bool:
        """Whether the engine serves, after waiting up to ``timeout`` s for the build to end."""
        self.build.wait(timeout)
        return self.build.engine is not None

    def running(self) -> AbstractContextManager[object]:
        return self.fallback.running()

    def synchronize(self) -> None:
        self.fallback.synchronize()

    @torch.no_grad()
    def infer_tensor(self, batch: torch.Tensor) -> torch.Tensor:
        engine = self.build.engine
        if engine is None:
            return self.fallback.infer_tensor(batch)
        with self.running():
            return engine(batch.to(PRECISION).contiguous())

    def infer(self, batch: np.ndarray) -> np.ndarray:
        with self.running():
            tensor = torch.from_numpy(batch).to(self.torch_device, PRECISION)
            logits = self.infer_tensor(tensor).float().cpu()
        return logits.numpy()


def create(network: nn.Module, card: ModelCard) -> TensorRTBackend:
    import torch_tensorrt

    fallback = TorchDeviceBackend(network, card, torch.device("cuda"), PRECISION)
    return TensorRTBackend(network, card, fallback, torch_tensorrt)
