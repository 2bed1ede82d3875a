"""Inference benchmark: batch-1 latency per model and backend, side by side in one run.

Figures, not tests: ratios are only meaningful between rows measured in the same run on the
same machine, so every run measures the ``torch`` reference too.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from polypview.backends import create_backend
from polypview.modelfile import ModelCard, installed_models, load_network, save_model
from polypview.nets import create_model

REFERENCE_BACKEND = "torch"
DEFAULT_INPUT_SIZE = (256, 256)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


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
