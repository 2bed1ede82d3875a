"""All distributed setup in one place: one process per device under torchrun, or a single one.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them the run is a plain single process.
NCCL joins GPUs, gloo joins CPU processes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Distributed:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Only the main process logs, saves and exports."""
        return self.rank == 0

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` summed over all processes (itself when alone)."""
        if self.enabled:
            tensor = tensor.clone()
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is set in any process, so that all stop together."""
        return bool(self.sum(torch.tensor(float(flag), device=self.device)).item() > 0)


def setup(device: str | None = None) -> Distributed:
    """Join the process group if torchrun started us, and pick this process's device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    chosen = torch.device(device)
    if chosen.type == "cuda":
        chosen = torch.device("cuda", local_rank)
        torch.cuda.set_device(chosen)
    if world_size > 1:
        backend = "nccl" if chosen.type == "cuda" else "gloo"
        dist.init_process_group(backend, rank=rank, world_size=world_size)
    return Distributed(rank, world_size, local_rank, chosen)


def teardown(distributed: Distributed) -> None:
    if distributed.enabled:
        dist.destroy_process_group()
