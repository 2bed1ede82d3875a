"""Training throughput per option on this machine: images/s of a full step, options side by side.

    python scripts/bench_training.py [--models lite-unet resunetpp] [--batch-size 8] [--steps 6]

Each option runs the same model, batch and random data through forward, loss, backward and an
AdamW step (the loop of training.train), after warm-up steps; figures in one run are comparable.
"""

from __future__ import annotations

import argparse
import time

import torch

from polypview.hardware import cpu_flags, cpu_name
from polypview.nets import create_model
from training.losses import dice_bce_loss

OPTIONS = {
    "fp32": (None, False),
    "bf16 autocast": (torch.bfloat16, False),
    "bf16 autocast + channels_last": (torch.bfloat16, True),
    "fp32 + channels_last": (None, True),
}


def images_per_second(
    model: str, dtype: torch.dtype | None, channels_last: bool, batch: int, size: int, steps: int
) -> float:
    torch.manual_seed(0)
    network = create_model(model).train()
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    network = network.to(memory_format=memory_format)
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-4)
    images = torch.randn(batch, 3, size, size).contiguous(memory_format=memory_format)
    masks = (torch.rand(batch, 1, size, size) > 0.8).float()

    def step() -> None:
        with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
            logits = network(images)
        loss = dice_bce_loss(logits, masks)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(2):
        step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["lite-unet", "unet", "resunetpp"])
    parser.add_argument("--options", nargs="+", default=list(OPTIONS), choices=list(OPTIONS))
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
        cells = []
        for option in args.options:
            dtype, channels_last = OPTIONS[option]
            rate = images_per_second(
                model, dtype, channels_last, args.batch_size, args.size, args.steps
            )
            cells.append(f"{rate:.1f}")
        print(f"| {model} | {' | '.join(cells)} |", flush=True)


if __name__ == "__main__":
    main()
