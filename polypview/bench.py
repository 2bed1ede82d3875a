"""Benchmarks: batch-1 inference latency per model and backend, and the live pipeline's delays.

Figures, not tests: inference ratios are only meaningful between rows measured in the same run on
the same machine, so every run measures the ``torch`` reference too.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from polypview.backends import create_backend
from polypview.hardware import resident_memory_mb
from polypview.modelfile import (
    DEFAULT_MODEL,
    ModelCard,
    find_model,
    installed_models,
    load_network,
    save_model,
)
from polypview.nets import create_model
from polypview.overlay import OverlayOptions
from polypview.pipeline import Pipeline
from polypview.recorder import Recorder
from polypview.segmenter import Segmenter
from polypview.sources import open_source
from polypview.tracking import Tracker

REFERENCE_BACKEND = "torch"
DEFAULT_INPUT_SIZE = (256, 256)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PIPELINE_WARMUP_CALLS = 3  # a backend's first calls allocate and compile: not what a user sees


@dataclass(frozen=True)
class InferenceResult:
    model: str
    backend: str
    precision: str
    median_ms: float
    p90_ms: float
    speedup: float  # the reference backend's median divided by this one's, same run


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
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
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


def bench_inference(
    models: list[str], backends: list[str], runs: int = 30, warmup: int = 5
) -> list[InferenceResult]:
    """Median and p90 latency of each (model, backend), with speed-ups against ``torch``."""
    order = [REFERENCE_BACKEND] + [name for name in backends if name != REFERENCE_BACKEND]
    results = []
    with tempfile.TemporaryDirectory(prefix="polypview-bench-") as scratch:
        for architecture in models:
            card = bench_card(architecture, Path(scratch))
            network = load_network(card)
            batch = np.random.default_rng(0).standard_normal(
                (1, card.in_channels, *card.input_size), dtype=np.float32
            )
            reference_ms = None
            for name in order:
                backend = create_backend(name, network, card)
                timings = time_calls(partial(backend.infer, batch), runs, warmup)
                median = statistics.median(timings)
                reference_ms = reference_ms or median
                results.append(
                    InferenceResult(
                        card.name,
                        backend.name,
                        backend.precision,
                        round(median, 2),
                        round(float(np.percentile(timings, 90)), 2),
                        round(reference_ms / median, 2),
                    )
                )
    return results


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
