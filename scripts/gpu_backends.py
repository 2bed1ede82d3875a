"""The GPU backends checked and timed in one process (docs/gpu.md): parity on test120, 1080p frames.

    python scripts/gpu_backends.py --models-dir DIR --data DIR --json FILE [--images N] [--runs N]

Parity: every image of test120 through the app's segmenter twice, once with the torch fp32
reference and once with each GPU backend usable here (CUDA; TensorRT where torch-tensorrt is
installed, after its engine is built); judged per model by ``training.parity``'s rule (mean mask
Dice agreement, with the minimum and the images under the limit beside it, and both test Dice
figures). The reference is the app's reference path (OpenCV pre- and postprocessing, the network
in fp32) with the network on the GPU and TF32 off, which matches the CPU to float rounding and
keeps the step within its half-minute budget.

Frames: ``polypview.bench.bench_inference`` (what ``polypview bench inference`` prints) for the
default model: batch-1 latency and the whole cost of a 1920x1080 frame, stage by stage, with
ratios against the torch fp32 CPU backend measured in the same run.

The JSON is rewritten after each part, so a run cut short keeps what it measured. Without a GPU
(the smoke test) the device path runs on the CPU instead, labelled as such; nothing is reported as
CUDA or TensorRT that did not run on them.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from polypview.backends import Backend, create_backend, status
from polypview.backends.torch_device import TorchDeviceBackend
from polypview.bench import bench_inference, serving_backend
from polypview.modelfile import ModelCard, find_model, load_network
from polypview.segmenter import Segmenter
from training.evaluate import Pair, split_pairs
from training.parity import compare

GPU_BACKENDS = ["tensorrt", "cuda"]


class HostInterface:
    """A device backend seen through its numpy interface: the app's reference (OpenCV) path."""

    def __init__(self, backend: TorchDeviceBackend) -> None:
        self.name = f"{backend.name} via the host path"
        self.device, self.precision = backend.device, backend.precision
        self.infer = backend.infer


def reference_backend(network: torch.nn.Module, card: ModelCard, device: torch.device) -> Backend:
    if device.type == "cpu":
        return create_backend("torch", network, card)
    torch.backends.cudnn.allow_tf32 = False  # fp32 means fp32: no 10-bit mantissa convolutions
    torch.backends.cuda.matmul.allow_tf32 = False
    engine = TorchDeviceBackend(network, card, device, torch.float32, name="torch", graphs=False)
    return HostInterface(engine)


def candidates(network: torch.nn.Module, card: ModelCard, device: torch.device) -> dict:
    """The GPU backends usable here, or the device path on the CPU for a smoke test."""
    if device.type == "cpu":
        smoke = TorchDeviceBackend(network, card, device, torch.float32, name="cpu-device")
        return {"cpu-device (smoke test: no GPU)": smoke}
    chosen = {}
    for name in GPU_BACKENDS:
        if not status(name).available:
            print(f"not checked: {name}: {status(name).reason}", flush=True)
            continue
        backend = create_backend(name, network, card)
        why_not = serving_backend(name, backend)
        if why_not is not None:
            print(f"not checked: {name}: {why_not}", flush=True)
            continue
        chosen[name] = backend
    return chosen


def parity(card: ModelCard, images: list[Pair], device: torch.device) -> dict[str, Any]:
    """Each usable GPU backend against the reference, by the project's one rule."""
    network = load_network(card)
    reference = Segmenter(card, reference_backend(network, card, device))
    backends = candidates(network, card, device)
    started = time.perf_counter()
    results = compare(
        reference, {name: Segmenter(card, backend) for name, backend in backends.items()}, images
    )
    checked = {}
    for result in results:
        backend = backends[result.backend]
        checked[result.backend] = result.to_json() | {
            "serving": backend.name,
            "precision": backend.precision,
        }
        print(f"{card.name} {result.summary()}", flush=True)
    seconds = round(time.perf_counter() - started, 1)
    return {
        "model": card.name,
        "status": card.status,
        "images": len(images),
        "seconds": seconds,
        "backends": checked,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--data", type=Path, default=Path(".cache/kvasir-320"))
    parser.add_argument("--models", nargs="+", default=["resunetpp", "resunet", "unet"])
    parser.add_argument("--images", type=int, default=120, help="test120 images for parity")
    parser.add_argument("--runs", type=int, default=30, help="timed runs per benchmark row")
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    record: dict[str, Any] = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "CPU (smoke test)",
        "torch": torch.__version__,
        "parity": [],
        "frames": None,
    }
    images = list(itertools.islice(split_pairs(args.data, "test120"), args.images))
    cards = [
        find_model(str(args.models_dir / f"{name}.json"))
        for name in args.models
        if (args.models_dir / f"{name}.json").exists()
    ]
    if not cards:
        print(f"no trained models in {args.models_dir}: parity needs trained weights", flush=True)

    def write() -> None:
        args.json.write_text(json.dumps(record, indent=2) + "\n")

    # The default model's parity, then its frame figures (timing needs no trained weights: the
    # benchmark's untrained stand-in times the same), then the other models' parity.
    for card in cards[:1]:
        record["parity"].append(parity(card, images, device))
        write()
    usable = [name for name in GPU_BACKENDS if status(name).available]
    # The card that travelled, by its file: the tree's models/ may hold cards without weights.
    timed = [str(args.models_dir / f"{cards[0].name}.json")] if cards else args.models[:1]
    bench = bench_inference(timed, usable, runs=args.runs, warmup=max(3, args.runs // 5))
    record["frames"] = asdict(bench)
    for row in bench.frames:
        print(f"1920x1080 frame: {json.dumps(asdict(row))}", flush=True)
    for name, reason in bench.skipped.items():
        print(f"not timed: {name}: {reason}", flush=True)
    write()
    for card in cards[1:]:
        record["parity"].append(parity(card, images, device))
        write()


if __name__ == "__main__":
    main()
