"""Benchmarks: batch-1 inference latency per model and backend, the whole per-frame cost at 1080p,
and the live pipeline's delays.

Figures, not tests: ratios are only meaningful between rows measured in the same run on the same
machine, so every run measures the ``torch`` reference (eager fp32) too.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from polypview.backends import Backend, TensorBackend, create_backend, unusable_for
from polypview.framepath import STAGES
from polypview.hardware import cpu_name, resident_memory_mb
from polypview.modelfile import (
    DEFAULT_MODEL,
    ModelCard,
    find_model,
    installed_models,
    load_network,
    save_model,
)
from polypview.nets import IMAGENET_NORMALISATION, create_model, input_normalisation, model_names
from polypview.segmenter import Segmenter

if TYPE_CHECKING:
    from polypview.pipeline import Pipeline

REFERENCE_BACKEND = "torch"
DEFAULT_INPUT_SIZE = (256, 256)
FRAME_SIZE = (1080, 1920)  # height, width: what an HD endoscopy processor sends
IMAGENET_MEAN, IMAGENET_STD = IMAGENET_NORMALISATION
PIPELINE_WARMUP_CALLS = 3  # a backend's first calls allocate and compile: not what a user sees
ENGINE_BUILD_TIMEOUT_S = 600  # a TensorRT engine is built before it is timed


@dataclass(frozen=True)
class InferenceResult:
    model: str
    backend: str
    precision: str
    median_ms: float
    p90_ms: float
    speedup: float  # the reference backend's median divided by this one's, same run


@dataclass(frozen=True)
class FrameResult:
    """One BGR uint8 frame through the segmenter, from the host array to the mask in host memory.

    ``median_ms``/``p90_ms`` time whole frames as the app runs them; the stage medians come from
    separate runs that wait for the device after each stage, so they may add up to a little more.
    """

    model: str
    backend: str
    precision: str
    frame: str  # "1920x1080"
    median_ms: float
    p90_ms: float
    speedup: float  # the reference backend's median divided by this one's, same run
    stages_ms: dict[str, float]  # upload, preprocess, inference, postprocess, download


@dataclass
class InferenceBench:
    device: str
    inference: list[InferenceResult] = field(default_factory=list)
    frames: list[FrameResult] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # "backend (model)": why it has no rows


def bench_card(architecture: str, scratch: Path) -> ModelCard:
    """The installed card for ``architecture``, or an untrained stand-in of the same shape.

    Latency does not depend on the weights' values, so an untrained network measures the same;
    the stand-in lives in a scratch folder and is never shown as a segmentation.
    """
    for card in installed_models():
        if card.architecture == architecture:
            return card
    torch.manual_seed(0)
    stand_in = ModelCard(
        name=architecture,
        architecture=architecture,
        weights=f"{architecture}.safetensors",
        input_size=DEFAULT_INPUT_SIZE,
        mean=input_normalisation(architecture)[0],
        std=input_normalisation(architecture)[1],
        status="untrained benchmark stand-in",
        folder=scratch,
    )
    return save_model(create_model(architecture), stand_in)


def time_calls(call: Callable[[], object], runs: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        call()
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def inference_call(backend: Backend, card: ModelCard) -> Callable[[], object]:
    """One batch-1 inference, finished: on a device backend, from and to device memory."""
    batch = np.random.default_rng(0).standard_normal(
        (1, card.in_channels, *card.input_size), dtype=np.float32
    )
    if not isinstance(backend, TensorBackend):
        return lambda: backend.infer(batch)
    with backend.running():
        tensor = torch.from_numpy(batch).to(backend.torch_device, backend.input_dtype)
    backend.synchronize()

    def infer_on_device() -> None:
        backend.infer_tensor(tensor)
        backend.synchronize()

    return infer_on_device


def bench_frame(
    segmenter: Segmenter, frame: np.ndarray, runs: int, warmup: int
) -> tuple[list[float], dict[str, float]]:
    """Whole-frame timings, and the median of each stage timed on its own."""
    totals = time_calls(lambda: segmenter(frame), runs, warmup)
    laps: dict[str, list[float]] = {stage: [] for stage in STAGES}
    for _ in range(max(3, runs // 3)):
        timer = segmenter.stage_timer()
        segmenter.segment(frame, timer)
        for stage, ms in timer.stages.items():
            laps[stage].append(ms)
    return totals, {stage: round(statistics.median(ms), 3) for stage, ms in laps.items()}


def serving_backend(name: str, backend: Backend) -> str | None:
    """Why ``backend`` would not measure what ``name`` promises, or None: a TensorRT engine is
    waited for, and one that did not build is reported, never timed as TensorRT."""
    wait = getattr(backend, "wait_for_engine", None)
    if wait is not None and not wait(ENGINE_BUILD_TIMEOUT_S):
        progress = getattr(backend, "progress", None)
        return f"engine not built ({progress.detail if progress else 'unknown'})"
    if backend.name != name:
        return f"ran as {backend.name}"
    return None


def bench_inference(
    models: list[str],
    backends: list[str],
    runs: int = 30,
    warmup: int = 5,
    frame_size: tuple[int, int] = FRAME_SIZE,
) -> InferenceBench:
    """Per (model, backend): batch-1 inference latency, and the whole cost of one frame of
    ``frame_size`` (upload, preprocess, inference, postprocess, download), both with speed-ups
    against the eager fp32 ``torch`` reference measured in the same run. A model is an
    architecture (``bench_card``) or a model file, so variants compare side by side."""
    order = [REFERENCE_BACKEND] + [name for name in backends if name != REFERENCE_BACKEND]
    bench = InferenceBench(device=machine_name())
    frame = np.random.default_rng(0).integers(0, 256, (*frame_size, 3), dtype=np.uint8)
    frame_label = f"{frame_size[1]}x{frame_size[0]}"
    with tempfile.TemporaryDirectory(prefix="polypview-bench-") as scratch:
        for model in models:
            card = bench_card(model, Path(scratch)) if model in model_names() else find_model(model)
            network = load_network(card)
            reference_ms = reference_frame_ms = None
            for name in order:
                cannot = unusable_for(name, card)
                if cannot is not None:  # a per-model artefact is missing (the int8 model)
                    bench.skipped[f"{name} ({card.name})"] = cannot
                    continue
                backend = create_backend(name, network, card)
                why_not = serving_backend(name, backend)
                if why_not is not None:
                    bench.skipped[f"{name} ({card.name})"] = why_not
                    continue
                timings = time_calls(inference_call(backend, card), runs, warmup)
                median = statistics.median(timings)
                reference_ms = reference_ms or median
                bench.inference.append(
                    InferenceResult(
                        card.name,
                        backend.name,
                        backend.precision,
                        round(median, 2),
                        round(float(np.percentile(timings, 90)), 2),
                        round(reference_ms / median, 2),
                    )
                )
                totals, stages = bench_frame(Segmenter(card, backend), frame, runs, warmup)
                frame_median = statistics.median(totals)
                reference_frame_ms = reference_frame_ms or frame_median
                bench.frames.append(
                    FrameResult(
                        card.name,
                        backend.name,
                        backend.precision,
                        frame_label,
                        round(frame_median, 2),
                        round(float(np.percentile(totals, 90)), 2),
                        round(reference_frame_ms / frame_median, 2),
                        stages,
                    )
                )
    return bench


def machine_name() -> str:
    """The CPU, and the GPU where there is one: what the figures were measured on."""
    cpu = f"{cpu_name()}, {torch.get_num_threads()} threads"
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} with {cpu}"
    return cpu


def bench_pipeline(
    source_spec: str,
    model: str | None = None,
    backend: str = "auto",
    duration_s: float = 10.0,
    record: Path | None = None,
    checkpoints: int = 5,
) -> dict[str, Any]:
    """The live pipeline's delays and rates over ``duration_s`` seconds of ``source_spec``.

    Runs the app's own live wiring (the newest frame to the segmenter and tracker, the newest mask
    drawn on every frame) without a display, so delays end where the GUI's sink would take over.
    Without ``model`` it takes the installed default architecture, or an untrained stand-in of it
    that times the same (``model_status`` says which). A file source ends the run early.

    With ``record`` (a folder) the annotated view is recorded too, as in the app. ``checkpoints``
    samples of memory and delay spread over the run show whether either grows (a soak run).
    """
    # Imported here: they need PyAV, which the inference benchmark must run without (GPU hosts).
    from polypview.overlay import OverlayOptions
    from polypview.pipeline import Pipeline
    from polypview.sources import open_source
    from polypview.tracking import Tracker

    events: list[str] = []
    with tempfile.TemporaryDirectory(prefix="polypview-bench-") as scratch:
        card = find_model(model) if model else bench_card(DEFAULT_MODEL, Path(scratch))
        segmenter = Segmenter(card, create_backend(backend, load_network(card), card))
        source = open_source(source_spec)
        try:
            blank = np.zeros((source.height, source.width, 3), np.uint8)
            for _ in range(PIPELINE_WARMUP_CALLS):
                segmenter(blank)
            recorder = None
            if record is not None:
                from polypview.recorder import Recorder  # PyAV: only when recording

                recorder = Recorder(
                    record / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.mp4",
                    width=source.width,
                    height=source.height,
                    frame_rate=source.fps,
                )
            pipeline = Pipeline(
                source,
                segmenter,
                overlay=OverlayOptions(),
                tracker=Tracker(),
                sinks=[recorder.submit] if recorder else [],
                on_status=events.append,
            )
            started = time.monotonic()
            samples = []
            with pipeline:
                for checkpoint in range(1, checkpoints + 1):
                    if pipeline.wait(
                        started + duration_s * checkpoint / checkpoints - time.monotonic()
                    ):
                        break
                    samples.append(soak_sample(pipeline, started))
                snapshot = pipeline.stats.snapshot()  # before stopping waits for an inference
                seconds = time.monotonic() - started
            if recorder is not None:
                recording = recorder.stop()
                events.append(
                    f"recorded {recording.frames_written} frames to {recording.path}, "
                    f"{recording.dropped} dropped"
                    + (f": {recording.error}" if recording.error else "")
                )
        finally:
            source.close()
    figures = {
        name: value if value is None or isinstance(value, int) else round(value, 3)
        for name, value in snapshot.items()
    }
    return figures | {
        "source": source.name,
        "model": card.name,
        "model_status": card.status,
        "backend": segmenter.backend.name,
        "device": segmenter.backend.device,
        "duration_s": round(seconds, 2),
        "samples": samples,
        "events": events,
    }


def soak_sample(pipeline: Pipeline, started: float) -> dict[str, float | None]:
    """Memory and recent delays at one moment of a run."""
    recent = pipeline.stats.snapshot()
    keys = ("video_delay_ms_p50", "annotation_delay_ms_p50", "shown_fps")
    return {
        "t_s": round(time.monotonic() - started, 1),
        "rss_mb": round(resident_memory_mb(), 1),
    } | {key: None if recent[key] is None else round(recent[key], 2) for key in keys}
