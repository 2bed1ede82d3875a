"""Train a polypview network on Kvasir-SEG, or on any folder of images/ + masks/.

One process (the CPU, or one GPU):
    python -m training.train --model resunetpp --out runs/resunetpp --export resunetpp
Several GPUs on one machine (DDP; gloo instead of NCCL on CPUs):
    torchrun --nproc_per_node 4 -m training.train --model resunetpp --out runs/resunetpp

Production weights (several datasets, polyp-free frames among them, ImageNet encoder):
    python -m training.train --model lite-unet --pretrained \
        --extra ../shared/data/polypgen:train:val \
        --extra ../shared/data/polypgen-negative:train:val \
        --background-crops 400 --time-budget 70 --export lite-unet --calibrate

The recipe: Dice + BCE loss (or PraNet's structure loss), AdamW, linear warm-up then cosine decay,
gradient clipping, mixed precision (bf16 where the device computes it natively, else fp16 with
loss scaling on CUDA) and channels_last (faster on both, docs/training.md), model selection on
validation, a checkpoint every epoch (`--resume`), and seeds that make a run and its resumption
identical. Validation is a fixed-seed tenth of the main dataset's training ids plus each extra
dataset's own validation split; test ids are touched only by the final evaluation. Polyp-free
frames (an extra dataset with empty masks, and `--background-crops` cut from polyp images) train
the network to leave a clean frame clean: on them the soft Dice is 1 / (1 + predicted
area), so any mask costs.

Selection score: mean Dice over validation frames that hold a polyp, less the shares of
polyp-free frames flagged and of polyp frames missed by the frame-level decision calibrated on
the same validation frames (``training.calibrate``'s rule, at the network's size): what the app
will show once the model is exported and calibrated.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, TensorDataset
from tqdm import tqdm

from polypview.hardware import cpu_flags, cpu_name
from polypview.modelfile import MODELS_DIR
from polypview.nets import create_model, input_normalisation, model_names
from polypview.nets.resunetpp import ATTENTION_GATES
from training import checkpoint
from training.checkpoint import Run
from training.curves import plot_curves
from training.data import (
    DEFAULT_ROOT,
    CachedSplit,
    DatasetSpec,
    load_background_crops,
    load_cached,
    resolve_dataset,
    validation_split,
)
from training.distributed import Distributed, setup, teardown
from training.losses import LOSSES, distillation_loss, false_alarm_loss
from training.mining import HardNegatives
from training.overlays import OnScreenText, WithOnScreenText
from training.schedule import (
    REPLAN_EPOCHS,
    STRIDE,
    WarmupCosine,
    epoch_size,
    epochs_that_fit,
    typical_epoch,
)
from training.transforms import AUGMENTATIONS, normalise, to_device
from training.validation import Validation, validate, validation_report


def dataset_spec(text: str) -> DatasetSpec:
    """``--extra``'s type: argparse prints the reason, not a bare "invalid value"."""
    try:
        return DatasetSpec.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resunetpp", choices=model_names())
    parser.add_argument("--data", type=Path, default=DEFAULT_ROOT, help="dataset folder")
    parser.add_argument("--train-split", default="train880", help="id list name or file")
    parser.add_argument("--test-split", default="test120", help="scored once, at the end")
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument(
        "--extra",
        type=dataset_spec,
        action="append",
        default=[],
        metavar="PATH:TRAIN[:VAL]",
        help="another dataset to train on (repeatable); validation from its VAL split",
    )
    parser.add_argument(
        "--background-crops",
        type=int,
        default=0,
        metavar="N",
        help="polyp-free crops cut from up to N training images with polyps, as negatives",
    )
    parser.add_argument(
        "--hard-negatives",
        type=int,
        default=0,
        metavar="N",
        help="each epoch, train again on the N polyp-free frames the network fires on most "
        "(training.mining)",
    )
    parser.add_argument(
        "--decoder-channels",
        type=int,
        nargs=4,
        metavar="N",
        help="lite-unet's decoder widths, stride 16 to 2 (default 256 128 64 32); fewer is faster",
    )
    parser.add_argument(
        "--attention-gate",
        choices=ATTENTION_GATES,
        help="ResUNet++'s attention gate: the authors' code (unsquashed, the default) or the "
        "paper's sigmoid",
    )
    parser.add_argument(
        "--pretrained",
        action="store_true",
        help="start lite-unet's encoder from ImageNet (training.pretrained)",
    )
    parser.add_argument(
        "--init",
        type=Path,
        metavar="MODEL.safetensors",
        help="start from these weights (an installed model), with a fresh warm-up: a warm restart",
    )
    parser.add_argument(
        "--encoder-lr-scale",
        type=float,
        default=0.3,
        help="the pretrained encoder's learning rate as a share of --lr",
    )
    parser.add_argument("--augment", choices=sorted(AUGMENTATIONS), default="strong")
    parser.add_argument(
        "--overlays",
        type=float,
        default=0.0,
        metavar="P",
        help="share of training frames that get synthetic on-screen text (training.overlays)",
    )
    parser.add_argument("--loss", choices=["dice-bce", "structure"], default="dice-bce")
    parser.add_argument(
        "--false-alarm-weight",
        type=float,
        default=0.0,
        help="weight of the false-alarm term on polyp-free frames (train.false_alarm_loss)",
    )
    parser.add_argument(
        "--teacher",
        metavar="MODEL",
        help="distil from this installed model (name or model file): its probabilities are a "
        "second target (train.distillation_loss)",
    )
    parser.add_argument(
        "--distill-weight", type=float, default=1.0, help="weight of the teacher's term"
    )
    parser.add_argument("--size", type=int, default=256, help="square input size")
    parser.add_argument(
        "--start-size",
        type=int,
        metavar="SIDE",
        help="progressive resizing: train the first epochs smaller, growing to --size",
    )
    parser.add_argument(
        "--resize-ramp",
        type=float,
        default=0.5,
        help="share of the planned epochs over which --start-size grows to --size",
    )
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=16, help="per process")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--warmup-epochs", type=float, default=3)
    parser.add_argument("--min-lr", type=float, default=1e-6)
    parser.add_argument("--clip-grad", type=float, default=1.0)
    parser.add_argument("--patience", type=int, default=30, help="epochs without a better Dice")
    parser.add_argument("--time-budget", type=float, help="minutes; stop before exceeding it")
    parser.add_argument("--max-steps", type=int, help="stop after this many steps (smoke tests)")
    parser.add_argument("--amp", choices=["auto", "bf16", "fp16", "off"], default="auto")
    parser.add_argument("--sync-bn", action="store_true", help="batch norm across processes")
    parser.add_argument("--device", help="cpu or cuda (default: cuda when present)")
    parser.add_argument(
        "--workers", type=int, default=0, help="loader processes (data is in memory)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="run folder (default runs/MODEL)")
    parser.add_argument("--cache-dir", type=Path, default=Path(".cache/training"))
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    parser.add_argument("--export", metavar="NAME", help="write models/NAME.* at the end")
    parser.add_argument("--models-dir", type=Path, default=MODELS_DIR)
    parser.add_argument("--status", default="interim", choices=["interim", "production"])
    parser.add_argument(
        "--validate-only",
        action="store_true",
        help="score the starting weights (--init) on this run's validation frames, and stop",
    )
    parser.add_argument(
        "--calibrate",
        action="store_true",
        help="with --export: choose the frame-level decision on validation (training.calibrate)",
    )
    args = parser.parse_args(argv)
    if args.hard_negatives < 0:
        parser.error(f"--hard-negatives is a count of frames, not {args.hard_negatives}")
    if not 0.0 <= args.overlays <= 1.0:
        parser.error(f"--overlays is a share of frames, within 0..1, not {args.overlays}")
    if args.start_size is not None and not STRIDE <= args.start_size <= args.size:
        parser.error(f"--start-size must be between {STRIDE} and --size ({args.size})")
    args.out = args.out or Path("runs") / args.model
    if args.decoder_channels and args.model != "lite-unet":
        parser.error("--decoder-channels is lite-unet's option")
    if args.attention_gate and args.model != "resunetpp":
        parser.error("--attention-gate is resunetpp's option")
    args.architecture_options = {}
    if args.decoder_channels:
        args.architecture_options["decoder_channels"] = args.decoder_channels
    if args.attention_gate not in (None, "reference"):  # the default leaves cards as they were
        args.architecture_options["attention_gate"] = args.attention_gate
    return args


# --- the recipe ------------------------------------------------------------------------------


def precision_for(choice: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype: bf16 where the device runs it natively, fp16 on older GPUs."""
    if choice == "off":
        return None
    if choice != "auto":
        return {"bf16": torch.bfloat16, "fp16": torch.float16}[choice]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    native_bf16 = bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})
    return torch.bfloat16 if torch.backends.mkldnn.is_available() and native_bf16 else None


# --- data -------------------------------------------------------------------------------------


@dataclass
class Data:
    train: TensorDataset
    validation: TensorDataset
    train_ids: list[str]
    validation_ids: list[str]


def load_data(args: argparse.Namespace) -> Data:
    """The main dataset (validation: a held-out fraction) and every extra, as one set each."""
    size = (args.size, args.size)
    train_parts: list[CachedSplit] = []
    validation_parts: list[CachedSplit] = []
    polyp_sources: list[tuple[Path, list[str]]] = []
    for spec in [DatasetSpec(args.data, args.train_split), *args.extra]:
        ids = resolve_dataset(spec.root, spec.train_split)
        if spec.validation_split is None:
            train_ids, validation_ids = validation_split(ids, args.val_fraction, args.seed)
        else:
            train_ids, validation_ids = ids, resolve_dataset(spec.root, spec.validation_split)
        train = load_cached(spec.root, train_ids, size, args.cache_dir)
        train_parts.append(train)
        validation_parts.append(load_cached(spec.root, validation_ids, size, args.cache_dir))
        with_polyp = [i for i, mask in zip(train.ids, train.masks, strict=True) if mask.any()]
        polyp_sources.append((spec.root, with_polyp))
    if args.background_crops:
        train_parts += background_crops(polyp_sources, args.background_crops, size, args)
    train, validation = concatenate(train_parts), concatenate(validation_parts)
    return Data(train.to_dataset(), validation.to_dataset(), train.ids, validation.ids)


def background_crops(
    sources: list[tuple[Path, list[str]]], count: int, size: tuple[int, int], args
) -> list[CachedSplit]:
    """Crops from ``count`` polyp images drawn at random across ``sources``, in proportion."""
    pool = [(root, image_id) for root, ids in sources for image_id in ids]
    rng = np.random.default_rng(args.seed)
    chosen = rng.choice(len(pool), size=min(count, len(pool)), replace=False)
    crops = []
    for root, _ in sources:
        ids = [pool[index][1] for index in chosen if pool[index][0] == root]
        if ids:
            crops.append(load_background_crops(root, ids, size, args.cache_dir, args.seed))
    return crops


def concatenate(parts: list[CachedSplit]) -> CachedSplit:
    if len(parts) == 1:
        return parts[0]
    return CachedSplit(
        np.concatenate([part.images for part in parts]),
        np.concatenate([part.masks for part in parts]),
        [image_id for part in parts for image_id in part.ids],
    )


# --- the network ------------------------------------------------------------------------------


def build_network(args: argparse.Namespace) -> nn.Module:
    """The registered network, from ImageNet (``--pretrained``) or installed weights
    (``--init``)."""
    from polypview.errors import ModelError

    try:
        network = create_model(args.model, **args.architecture_options)
    except ModelError as error:
        sys.exit(f"train: {error}")
    if args.pretrained:
        if args.model != "lite-unet":
            sys.exit(
                f"train: --pretrained has ImageNet weights for lite-unet only, not {args.model}"
            )
        from training.pretrained import PretrainedError, load_imagenet_encoder

        try:
            load_imagenet_encoder(network.encoder)
        except PretrainedError as error:
            sys.exit(f"train: {error}")
    if args.init:
        from polypview.modelfile import find_model, load_network

        try:
            card = find_model(str(args.init))
            if card.architecture != args.model:
                sys.exit(f"train: --init {args.init} holds a {card.architecture}, not {args.model}")
            if card.architecture_options != args.architecture_options:
                built, wanted = card.architecture_options, args.architecture_options
                sys.exit(
                    f"train: --init {args.init} was built with {built or 'the defaults'}, "
                    f"this run with {wanted or 'the defaults'}"
                )
            network.load_state_dict(load_network(card).state_dict())
        except ModelError as error:
            sys.exit(f"train: --init: {error}")
    return network


@dataclass
class Teacher:
    """A frozen trained network with the input size and normalisation its card asks for."""

    network: nn.Module
    input_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __call__(self, pixels: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
        """The teacher's logits for a batch of [0, 1] RGB pixels, at the batch's size.

        The teacher sees the batch at the size it was trained at (a student at 128x128 would
        otherwise learn from a 256x256 teacher's weaker guesses at a quarter of its pixels)."""
        side = pixels.shape[-2:]
        if tuple(side) != self.input_size:
            pixels = nn.functional.interpolate(
                pixels, size=self.input_size, mode="bilinear", align_corners=False
            )
        images = normalise(pixels, self.mean, self.std).contiguous(
            memory_format=torch.channels_last
        )
        with (
            torch.no_grad(),
            torch.autocast(pixels.device.type, dtype=dtype or torch.float32, enabled=bool(dtype)),
        ):
            logits = self.network(images)
        if logits.shape[-2:] != side:
            logits = nn.functional.interpolate(
                logits.float(), size=tuple(side), mode="bilinear", align_corners=False
            )
        return logits


def load_teacher(name: str, device: torch.device) -> Teacher:
    """The installed model ``name`` (or model file) as a frozen teacher on ``device``."""
    from polypview.errors import ModelError
    from polypview.modelfile import find_model, load_network

    try:
        card = find_model(name)
        network = load_network(card)
    except ModelError as error:
        sys.exit(f"train: --teacher: {error}")
    network = network.to(device, memory_format=torch.channels_last).eval().requires_grad_(False)
    return Teacher(network, tuple(card.input_size), tuple(card.mean), tuple(card.std))


def optimiser_groups(network: nn.Module, args: argparse.Namespace) -> list[dict]:
    """One group, or two when a pretrained encoder learns slower than the fresh decoder."""
    if not args.pretrained:
        return [{"params": list(network.parameters())}]
    encoder = list(network.encoder.parameters())
    known = {id(parameter) for parameter in encoder}
    rest = [parameter for parameter in network.parameters() if id(parameter) not in known]
    return [
        {"params": encoder, "lr": args.lr * args.encoder_lr_scale},
        {"params": rest, "lr": args.lr},
    ]


# --- one epoch ------------------------------------------------------------------------------


def shrink(
    pixels: torch.Tensor, masks: torch.Tensor, side: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch at ``side`` x ``side``: pixels antialiased, masks by area and kept binary, as the
    data cache resizes them."""
    pixels = nn.functional.interpolate(
        pixels, size=(side, side), mode="bilinear", antialias=True, align_corners=False
    )
    masks = (nn.functional.interpolate(masks, size=(side, side), mode="area") > 0.5).float()
    return pixels.contiguous(memory_format=torch.channels_last), masks


LOSS_SHOWN_EVERY = 25


def train_one_epoch(
    run: Run,
    loader: DataLoader,
    augment: nn.Module,
    args: argparse.Namespace,
    distributed: Distributed,
    dtype: torch.dtype | None,
    teacher: Teacher | None = None,
    size: int | None = None,
) -> float:
    """One pass over the training set; ``size`` trains at a smaller side than the data's."""
    run.network.train()
    device = distributed.device
    losses = []
    bar = tqdm(
        loader, desc=f"epoch {run.epoch}", disable=not distributed.is_main or None, leave=False
    )
    for images, masks in bar:
        pixels, masks = augment(*to_device(images, masks, device))
        if size is not None and size != pixels.shape[-1]:
            pixels, masks = shrink(pixels, masks, size)
        images = normalise(pixels, *input_normalisation(args.model))
        images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            logits = run.network(images)
        loss = LOSSES[args.loss](logits, masks)
        if args.false_alarm_weight:
            loss = loss + args.false_alarm_weight * false_alarm_loss(logits, masks)
        if teacher is not None:
            loss = loss + args.distill_weight * distillation_loss(logits, teacher(pixels, dtype))
        run.optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(loss).backward()
        run.scaler.unscale_(run.optimizer)
        nn.utils.clip_grad_norm_(run.network.parameters(), args.clip_grad)
        run.scaler.step(run.optimizer)
        run.scaler.update()
        run.scheduler.step()
        run.step += 1
        losses.append(loss.detach())  # read back every few steps: each read waits for the GPU
        if len(losses) % LOSS_SHOWN_EVERY == 1:
            bar.set_postfix(loss=f"{losses[-1].item():.3f}")
        if args.max_steps and run.step >= args.max_steps:
            break
    total = torch.stack(losses).float().sum() if losses else torch.zeros((), device=device)
    mean = distributed.sum(torch.stack([total, torch.tensor(float(len(losses)), device=device)]))
    return (mean[0] / mean[1].clamp(min=1)).item()


def record_epoch(
    run: Run,
    validation: Validation,
    loss: float,
    size: int,
    seconds: float,
    improved: bool,
    args: argparse.Namespace,
) -> None:
    """The epoch's line in log.jsonl and on the console, and its checkpoints (main process)."""
    record = {
        "epoch": run.epoch - 1,
        "step": run.step,
        "loss": round(loss, 5),
        "val_dice": round(validation.dice, 5),
        "val_flagged": round(validation.flagged, 5),
        "val_missed": round(validation.missed, 5),
        "decision": [validation.decision.area_fraction, validation.decision.threshold],
        "lr": run.scheduler.get_last_lr()[0],
        "size": size,
        "seconds": round(seconds, 1),
    }
    with (args.out / "log.jsonl").open("a") as log:
        log.write(json.dumps(record) + "\n")
    print(
        f"epoch {record['epoch']}: loss {loss:.4f}, validation Dice "
        f"{validation.dice:.4f}; decided: polyp-free flagged {validation.flagged:.3f}, "
        f"polyp missed {validation.missed:.3f}"
        f"{' (best)' if improved else ''}, {size}x{size}, {seconds:.0f} s",
        flush=True,
    )
    checkpoint.save(run, args.out / "last.pt", args)
    if improved:
        checkpoint.save(run, args.out / "best.pt", args)


# --- the whole run ---------------------------------------------------------------------------


def seed_everything(seed: int) -> None:
    """One seed for torch (augmentation included) and numpy; per epoch, so resume matches."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def train(args: argparse.Namespace) -> dict:
    distributed = setup(args.device)
    try:
        return train_on(args, distributed)
    finally:
        teardown(distributed)


def train_on(args: argparse.Namespace, distributed: Distributed) -> dict:
    device = distributed.device
    started = time.monotonic()
    torch.backends.cudnn.benchmark = True
    seed_everything(args.seed)
    data = load_data(args)
    args.train_images, args.validation_images = len(data.train_ids), len(data.validation_ids)
    args.device_name = device_name(device)

    network = build_network(args).to(device, memory_format=torch.channels_last)
    parameter_groups = optimiser_groups(network, args)
    if distributed.enabled:
        if args.sync_bn:
            network = nn.SyncBatchNorm.convert_sync_batchnorm(network)
        network = DistributedDataParallel(
            network, device_ids=[device.index] if device.type == "cuda" else None
        )
    hard_negatives = (
        HardNegatives(data.train, args.hard_negatives, args.batch_size)
        if args.hard_negatives
        else None
    )
    if hard_negatives is not None and not hard_negatives.count:
        sys.exit(
            "train: --hard-negatives needs polyp-free training frames: add a polyp-free "
            "--extra dataset or --background-crops"
        )

    def training_loader(dataset: Dataset) -> DataLoader:
        sampler = DistributedSampler(
            dataset,
            num_replicas=distributed.world_size,
            rank=distributed.rank,
            shuffle=True,
            seed=args.seed,
            drop_last=True,
        )
        return DataLoader(
            dataset,
            batch_size=args.batch_size,
            sampler=sampler,
            num_workers=args.workers,
            pin_memory=device.type == "cuda",
            drop_last=True,
            persistent_workers=args.workers > 0,
        )

    def with_hard_negatives(miner: HardNegatives) -> Dataset:
        """The training set, with this epoch's hard negatives (training.mining) added."""
        scores = miner.scores(run.network, device, dtype, input_normalisation(args.model))
        if distributed.is_main:
            chosen = scores.topk(miner.count).values
            print(
                f"hard negatives: {miner.count} of {len(scores)} polyp-free frames "
                f"again, top-area logit {chosen.min():.2f} to {chosen.max():.2f} "
                f"({int((scores > 0).sum())} above 0; median of all {scores.median():.2f})",
                flush=True,
            )
        return miner.epoch(scores)

    validation_loader = DataLoader(
        data.validation,
        batch_size=args.batch_size,
        sampler=DistributedSampler(
            data.validation, distributed.world_size, distributed.rank, shuffle=False
        ),
    )
    dtype = precision_for(args.amp, device)
    if args.validate_only:
        normalisation = input_normalisation(args.model)
        return validation_report(
            validate(network, validation_loader, distributed, dtype, normalisation)
        )
    epoch_images = len(data.train) + (hard_negatives.count if hard_negatives else 0)
    steps_per_epoch = max(1, epoch_images // distributed.world_size // args.batch_size)
    optimizer = torch.optim.AdamW(parameter_groups, lr=args.lr, weight_decay=args.weight_decay)
    schedule = WarmupCosine(
        round(args.warmup_epochs * steps_per_epoch),
        args.epochs * steps_per_epoch,
        args.min_lr / args.lr,
    )
    args.precision = {torch.bfloat16: "bf16 autocast", torch.float16: "fp16 autocast"}.get(
        dtype, "fp32"
    )
    run = Run(
        network,
        optimizer,
        torch.optim.lr_scheduler.LambdaLR(optimizer, schedule),
        torch.amp.GradScaler(device.type, enabled=dtype == torch.float16),
    )
    args.out.mkdir(parents=True, exist_ok=True)
    last, best = args.out / "last.pt", args.out / "best.pt"
    log_path = args.out / "log.jsonl"
    if args.resume:
        if not last.exists():
            sys.exit(f"train: nothing to resume: {last} does not exist")
        try:
            checkpoint.resume(run, last, args.model)
        except ValueError as error:
            sys.exit(f"train: {error}")
    elif distributed.is_main:
        log_path.unlink(missing_ok=True)
    augment = AUGMENTATIONS[args.augment]().to(device)
    if args.overlays:
        overlays = OnScreenText(args.overlays, seed=args.seed).to(device)
        augment = WithOnScreenText(augment, overlays)
    teacher = load_teacher(args.teacher, device) if args.teacher else None

    def side(epoch: int, planned: int) -> int:
        return epoch_size(epoch, planned, args.start_size, args.size, args.resize_ramp)

    def planned_epochs() -> int:  # from the schedule, which a resumed run restores
        return max(1, schedule.total_steps // steps_per_epoch)

    epoch_seconds = training_seconds = validation_seconds = 0.0
    epoch_costs: list[tuple[float, float]] = []  # per epoch: training at epoch 0's side, validation
    requested_epochs = args.epochs
    loader = training_loader(data.train)
    while run.epoch < args.epochs:
        epoch_started = time.monotonic()
        seed_everything(args.seed + 1000 * run.epoch + distributed.rank)
        size = side(run.epoch, planned_epochs())
        if hard_negatives is not None:  # a new set each epoch; else one loader keeps its workers
            loader = training_loader(with_hard_negatives(hard_negatives))
        loader.sampler.set_epoch(run.epoch)
        loss = train_one_epoch(run, loader, augment, args, distributed, dtype, teacher, size)
        training_seconds = time.monotonic() - epoch_started
        validation = validate(
            run.network, validation_loader, distributed, dtype, input_normalisation(args.model)
        )
        validation_seconds = time.monotonic() - epoch_started - training_seconds
        run.validation = {
            "dice": validation.dice,
            "frames_flagged": validation.flagged,
            "frames_missed": validation.missed,
        }
        improved = validation.score > run.best_score
        if improved:
            run.best_score, run.best_dice = validation.score, validation.dice
            run.best_epoch = run.epoch
        run.epoch += 1
        epoch_seconds = time.monotonic() - epoch_started
        run.minutes += epoch_seconds / 60
        if distributed.is_main:
            record_epoch(run, validation, loss, size, epoch_seconds, improved, args)
        elapsed_minutes = (time.monotonic() - started) / 60
        epoch_costs.append(
            (training_seconds * (side(0, planned_epochs()) / size) ** 2, validation_seconds)
        )
        if args.time_budget is not None and run.epoch <= REPLAN_EPOCHS and not args.resume:
            # Plan the decay over the epochs the budget allows, not the ones asked for, by the
            # typical epoch so far (training.schedule.typical_epoch).
            fit = epochs_that_fit(
                (args.time_budget - elapsed_minutes) * 60,
                *typical_epoch(epoch_costs),
                side,
                run.epoch,
                requested_epochs,
            )
            fit = (
                int(distributed.sum(torch.tensor(fit, device=device)).item())
                // distributed.world_size
            )
            if fit != args.epochs:
                args.epochs = max(fit, 1)
                schedule.total_steps = args.epochs * steps_per_epoch
                if distributed.is_main:
                    print(f"time budget: planning {args.epochs} epochs", flush=True)
        growth = (side(run.epoch, planned_epochs()) / size) ** 2
        next_epoch_seconds = training_seconds * growth + validation_seconds
        stop = (
            run.epoch - 1 - run.best_epoch >= args.patience
            or (args.max_steps is not None and run.step >= args.max_steps)
            or (
                args.time_budget is not None
                and elapsed_minutes + next_epoch_seconds / 60 > args.time_budget
            )
        )
        if distributed.any(stop):
            break

    summary = {
        "model": args.model,
        "epochs": run.epoch,
        "steps": run.step,
        "best_epoch": run.best_epoch,
        "best_val_dice": round(run.best_dice, 5),
        "best_val_score": round(run.best_score, 5),
        "minutes": round(run.minutes, 1),
    }
    if distributed.is_main:
        plot_curves(log_path, args.out / "curves.png")
        print(json.dumps(summary), flush=True)
        if args.export:
            from training.export import export_checkpoint

            card = export_checkpoint(
                best, args.export, args.models_dir, args.status, calibrate=args.calibrate
            )
            print(f"exported {card.card_path}: {json.dumps(card.metrics)}", flush=True)
    return summary


# --- after training ---------------------------------------------------------------------------


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_name()


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    args.world_size = int(os.environ.get("WORLD_SIZE", "1"))
    launcher = (
        ["torchrun", f"--nproc_per_node={args.world_size}"] if args.world_size > 1 else ["python"]
    )
    args.command = shlex.join([*launcher, "-m", "training.train", *(argv or sys.argv[1:])])
    return train(args)


if __name__ == "__main__":
    main()
