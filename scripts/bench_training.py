"""Training throughput per option on this machine: images/s of a full step, options side by side.

    python scripts/bench_training.py [--models lite-unet resunetpp] [--batch-size 8] [--steps 6]

Each option runs the same model, batch and random data through forward, loss, backward and an
AdamW step (the loop of training.train), after warm-up steps; figures in one run are comparable.
The torch.compile option's warm-up (the compilation itself) is printed apart: a training run pays
it once, the table shows the steady state.
"""

from __future__ import annotations

import argparse
import time
from typing import NamedTuple

import torch

from polypview.hardware import cpu_flags, cpu_name
from polypview.nets import create_model
from training.losses import dice_bce_loss


class Option(NamedTuple):
    dtype: torch.dtype | None
    channels_last: bool
    compiled: bool = False


OPTIONS = {
    "fp32": Option(None, False),
    "bf16 autocast": Option(torch.bfloat16, False),
    "bf16 autocast + channels_last": Option(torch.bfloat16, True),
    "fp32 + channels_last": Option(None, True),
    "bf16 autocast + channels_last + torch.compile": Option(torch.bfloat16, True, compiled=True),
}
# Compiling takes minutes per network here and measured slower (docs/training.md): asked for only.
DEFAULT_OPTIONS = [name for name, option in OPTIONS.items() if not option.compiled]


def images_per_second(
    model: str, option: Option, batch: int, size: int, steps: int
) -> tuple[float, float]:
    """Steady-state images/s, and the seconds the two warm-up steps took."""
    torch.manual_seed(0)
    dtype = option.dtype
    network = create_model(model).train()
    memory_format = torch.channels_last if option.channels_last else torch.contiguous_format
    network = network.to(memory_format=memory_format)
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-4)
    forward = torch.compile(network) if option.compiled else network
    images = torch.randn(batch, 3, size, size).contiguous(memory_format=memory_format)
    masks = (torch.rand(batch, 1, size, size) > 0.8).float()

    def step() -> None:
        with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
            logits = forward(images)
        loss = dice_bce_loss(logits, masks)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    started = time.perf_counter()
    for _ in range(2):
        step()
    warm_up = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - started), warm_up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["lite-unet", "unet", "resunetpp"])
    parser.add_argument("--options", nargs="+", default=DEFAULT_OPTIONS, choices=list(OPTIONS))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()
    bf16 = "native bf16" if cpu_flags() & {"avx512_bf16", "amx_bf16"} else "no native bf16"
    print(f"{cpu_name()}, {torch.get_num_threads()} threads, {bf16}, torch {torch.__version__}")
    print(f"batch {args.batch_size} at {args.size}x{args.size}, {args.steps} timed steps")
    print(f"| model | {' | '.join(args.options)} |")
    print(f"|---|{'---:|' * len(args.options)}")
    for model in args.models:
        cells, warm_ups = [], []
        for name in args.options:
            option = OPTIONS[name]
            rate, warm_up = images_per_second(model, option, args.batch_size, args.size, args.steps)
            cells.append(f"{rate:.1f}")
            if option.compiled:
                warm_ups.append(f"{model} {name}: warm-up (compilation) {warm_up:.0f} s")
        print(f"| {model} | {' | '.join(cells)} |", flush=True)
        for line in warm_ups:
            print(line, flush=True)


if __name__ == "__main__":
    main()
