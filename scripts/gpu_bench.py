"""Batch-1 inference on the GPU, per model and execution variant (../shared/GPU.md, step 2).

    python scripts/gpu_bench.py [--models-dir DIR] [--data DIR] [--runs 200] [--json FILE]

For each shipped model (or an untrained stand-in of each architecture when none is installed:
latency does not depend on the weights' values): eager fp32, eager fp16 + channels_last, and
CUDA graphs through ``torch.compile(mode="reduce-overhead")`` in fp16; median and p99 over
``--runs`` synchronised runs after warm-up, each with its speed-up over eager fp32 measured in the
same run. TensorRT and ONNX Runtime's CUDA provider are reported as not measured where they cannot
be imported, never guessed. The fp16 masks are checked against fp32 on real test images (Dice
agreement). Runs on a CPU too (bf16 instead of fp16, no graphs) so it can be smoke-tested.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from polypview.modelfile import ModelCard, find_model, load_network
from polypview.nets import create_model, model_names
from polypview.segmenter import resize_for_model
from training.evaluate import split_pairs
from training.transforms import normalise


def timings_ms(
    call: Callable[[], object], runs: int, warmup: int, device: torch.device
) -> list[float]:
    synchronise = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        call()
    synchronise()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        synchronise()
        times.append((time.perf_counter() - started) * 1000)
    return times


def network_for(
    architecture: str, models_dir: Path
) -> tuple[torch.nn.Module, str, tuple[int, int]]:
    card_path = models_dir / f"{architecture}.json"
    if card_path.exists():
        card: ModelCard = find_model(str(card_path))
        return load_network(card), "trained", card.input_size
    torch.manual_seed(0)
    return create_model(architecture).eval(), "untrained stand-in", (256, 256)


def test_batches(data: Path, size: tuple[int, int], count: int) -> list[torch.Tensor]:
    """Real test images, prepared as the app prepares frames."""
    batches = []
    for index, pair in enumerate(split_pairs(data, "test120")):
        if index == count:
            break
        rgb = resize_for_model(pair.image, size)[:, :, ::-1].copy()
        image = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
        batches.append(normalise(image, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)))
    return batches


def mask_agreement(reference: torch.nn.Module, candidate: Callable, batches: list) -> float:
    scores = []
    with torch.no_grad():
        for batch in batches:
            expected = reference(batch) > 0
            actual = candidate(batch).float() > 0
            total = expected.sum() + actual.sum()
            scores.append(1.0 if total == 0 else (2 * (expected & actual).sum() / total).item())
    return float(np.mean(scores)) if scores else float("nan")


def bench_model(architecture: str, args: argparse.Namespace, device: torch.device) -> list[dict]:
    network, weights, size = network_for(architecture, args.models_dir)
    network = network.to(device).eval()
    low = torch.float16 if device.type == "cuda" else torch.bfloat16
    low_name = "fp16" if low == torch.float16 else "bf16"
    batch = torch.randn(1, 3, *size, device=device)
    half = create_model(architecture).to(device)
    half.load_state_dict(network.state_dict())
    half = half.to(dtype=low, memory_format=torch.channels_last).eval()
    half_batch = batch.to(dtype=low).contiguous(memory_format=torch.channels_last)
    variants: dict[str, Callable[[], object]] = {
        "eager fp32": lambda: network(batch),
        f"eager {low_name} channels_last": lambda: half(half_batch),
    }
    if device.type == "cuda":
        graphed = torch.compile(half, mode="reduce-overhead")
        variants[f"cuda graphs {low_name} (torch.compile reduce-overhead)"] = lambda: graphed(
            half_batch
        )
    rows, baseline = [], None
    with torch.no_grad():
        for name, call in variants.items():
            times = timings_ms(call, args.runs, args.warmup, device)
            median = float(np.median(times))
            baseline = baseline or median
            rows.append(
                {
                    "model": architecture,
                    "weights": weights,
                    "variant": name,
                    "median_ms": round(median, 3),
                    "p99_ms": round(float(np.percentile(times, 99)), 3),
                    "speedup": round(baseline / median, 2),
                }
            )
    batches = [b.to(device) for b in test_batches(args.data, size, args.images)]

    def low_precision(b: torch.Tensor) -> torch.Tensor:
        return half(b.to(dtype=low).contiguous(memory_format=torch.channels_last))

    agreement = mask_agreement(network, low_precision, batches)
    for row in rows:
        row[f"{low_name}_mask_dice_vs_fp32"] = round(agreement, 5)
    return rows


def unavailable_runtimes() -> dict[str, str]:
    """What could not be measured here, and why."""
    missing = {}
    try:
        import torch_tensorrt  # noqa: F401
    except ImportError as error:
        missing["tensorrt"] = f"torch_tensorrt not importable: {error}"
    else:
        missing["tensorrt"] = "importable, but not measured by this script yet"
    try:
        import onnxruntime
    except ImportError as error:
        missing["onnxruntime-cuda"] = f"onnxruntime not importable: {error}"
    else:
        providers = onnxruntime.get_available_providers()
        if "CUDAExecutionProvider" not in providers:
            missing["onnxruntime-cuda"] = f"no CUDA provider (has {', '.join(providers)})"
    return missing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--data", type=Path, default=Path(".cache/kvasir-320"))
    parser.add_argument("--models", nargs="+", default=model_names())
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--images", type=int, default=30, help="test images for mask agreement")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU (smoke test)"
    print(f"{name}, torch {torch.__version__}, batch 1, {args.runs} runs after {args.warmup}")
    rows = [row for architecture in args.models for row in bench_model(architecture, args, device)]
    for row in rows:
        agreement = next(value for key, value in row.items() if key.endswith("_vs_fp32"))
        print(
            f"{row['model']:<10} {row['variant']:<52} {row['median_ms']:>8.3f} ms "
            f"p99 {row['p99_ms']:>8.3f}  {row['speedup']:>5.2f}x  mask Dice vs fp32 {agreement}"
        )
    missing = unavailable_runtimes()
    for runtime, reason in missing.items():
        print(f"not measured: {runtime}: {reason}")
    if args.json:
        record = {
            "device": name,
            "torch": torch.__version__,
            "results": rows,
            "not_measured": missing,
        }
        args.json.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
