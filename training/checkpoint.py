"""A training run's checkpoint: what ``training.train`` writes every epoch, resumes from, and
``training.export`` ships.

One file holds the network, optimiser, schedule, loss scaler, counters and the run's config, so
that ``--resume`` repeats the run exactly and an export can describe it. ``slim`` drops the
optimiser state and halves the network: what a GPU run carries home.
"""

from __future__ import annotations

import argparse
import math
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from training.data import DatasetSpec

VERSION = 2


@dataclass
class Run:
    """Everything the training loop changes, so that a checkpoint holds it all."""

    network: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    epoch: int = 0
    step: int = 0
    best_score: float = -math.inf
    best_dice: float = -1.0
    best_epoch: int = -1
    minutes: float = 0.0  # training time so far, over resumptions
    validation: dict = field(default_factory=dict)  # the latest epoch's figures


def unwrap(network: nn.Module) -> nn.Module:
    return network.module if isinstance(network, DistributedDataParallel) else network


def save(run: Run, path: Path, args: argparse.Namespace) -> None:
    """Everything that rebuilds the run, written atomically (a kill never leaves half a file)."""
    state = {
        "version": VERSION,
        "model": args.model,
        "network": unwrap(run.network).state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "scaler": run.scaler.state_dict(),
        "epoch": run.epoch,
        "step": run.step,
        "best_score": run.best_score,
        "best_dice": run.best_dice,
        "best_epoch": run.best_epoch,
        "minutes": run.minutes,
        "validation": run.validation,
        "config": {key: plain(value) for key, value in vars(args).items()},
        "command": args.command,
        "device": args.device_name,
        "train_images": args.train_images,
        "validation_images": args.validation_images,
    }
    staging = path.with_suffix(".tmp")
    torch.save(state, staging)
    staging.replace(path)


def plain(value: object) -> object:
    """A config value as the checkpoint stores it: only what ``weights_only`` loading reads."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, DatasetSpec):
        return value.text()
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def read(path: Path) -> dict:
    """A checkpoint's contents; ValueError, in one line, for any file that is not one."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, EOFError, KeyError, RuntimeError, pickle.UnpicklingError) as error:
        raise ValueError(f"{path} is not a training checkpoint ({error!r})") from None
    if not isinstance(state, dict) or not {"network", "config"} <= state.keys():
        raise ValueError(f"{path} is not a training checkpoint (no network and config)")
    return state


def resume(run: Run, path: Path, model: str) -> None:
    """``run`` as the checkpoint at ``path`` left it; ValueError where it is not a full
    checkpoint of a ``model`` run (a slimmed one has no optimiser state to go on with)."""
    state = read(path)
    if state.get("version") != VERSION or state.get("model") != model or "optimizer" not in state:
        raise ValueError(f"{path} is not a full checkpoint of a {model} run")
    unwrap(run.network).load_state_dict(state["network"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    run.scaler.load_state_dict(state["scaler"])
    run.epoch, run.step = state["epoch"], state["step"]
    run.best_score, run.best_dice = state["best_score"], state["best_dice"]
    run.best_epoch = state["best_epoch"]
    run.minutes = state["minutes"]
    run.validation = state["validation"]


def slim(path: Path, out: Path) -> Path:
    """The checkpoint at ``path`` without optimiser, scheduler and scaler state, its network in
    fp16, written to ``out``."""
    state = read(path)
    for key in ("optimizer", "scheduler", "scaler"):
        state.pop(key, None)
    state["network"] = {
        name: tensor.half() if tensor.is_floating_point() else tensor
        for name, tensor in state["network"].items()
    }
    state["slimmed"] = "network carried in fp16 without optimiser state"
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, out)
    return out
