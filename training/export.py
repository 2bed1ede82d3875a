"""Ship a training checkpoint: models/NAME.safetensors and its card, scored on the test split.

    python -m training.export runs/resunetpp/best.pt --name resunetpp [--status production]

The weights are stored in fp16 when that changes nothing measurable on the test split (both
precisions are scored through the app's own segmenter), else in fp32. The card records the data,
split, recipe, epochs, device, date, test metrics and the exact training command.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from dataclasses import asdict, replace
from datetime import date
from pathlib import Path

import torch

from polypview.backends import create_backend
from polypview.bench import IMAGENET_MEAN, IMAGENET_STD
from polypview.modelfile import MODELS_DIR, ModelCard, load_network, save_model
from polypview.nets import create_model
from polypview.segmenter import Segmenter
from training.evaluate import EvaluationResult, evaluate, split_pairs

# The largest test-Dice change from storing fp16 that still counts as "nothing measurable".
HALF_PRECISION_TOLERANCE = 0.0005


def score(card: ModelCard, data: str, split: str) -> EvaluationResult:
    """Test metrics as the app computes them: the torch fp32 backend, original resolution."""
    segmenter = Segmenter(card, create_backend("torch", load_network(card), card))
    return evaluate(segmenter, split_pairs(data, split))


def describe_run(state: dict) -> tuple[str, str]:
    """The card's ``data`` and ``recipe`` lines, from what the checkpoint recorded."""
    config = state["config"]
    data = (
        f"{Path(config['data']).name}: {config['train_split']} minus a seed-{config['seed']} "
        f"validation subset ({state['train_images']} train / {state['validation_images']} "
        f"validation images, {config['size']}x{config['size']}); test metrics on "
        f"{config['test_split']} at each image's original resolution"
    )
    recipe = (
        f"Dice + BCE; AdamW lr {config['lr']}, weight decay {config['weight_decay']}; "
        f"{config['warmup_epochs']} warm-up epochs then cosine to {config['min_lr']}; batch "
        f"{config['batch_size']} x {config['world_size']} process(es); gradient clip "
        f"{config['clip_grad']}; {config['precision']}; kornia augmentation "
        f"(training.transforms.train_augmentation); early stopping on validation Dice, patience "
        f"{config['patience']}; best epoch {state['best_epoch']} (validation Dice "
        f"{state['best_dice']:.4f}) of {state['epoch']} run, planned {config['epochs']}; "
        f"{state['minutes']:.0f} min on {state['device']}"
    )
    return data, recipe


def export_checkpoint(
    checkpoint: Path,
    name: str,
    models_dir: Path = MODELS_DIR,
    status: str = "interim",
    export_command: str | None = None,
) -> ModelCard:
    """``checkpoint`` as a shipped model; ``export_command`` is recorded when run on its own."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    config = state["config"]
    network = create_model(config["model"])
    network.load_state_dict(state["network"])
    data, recipe = describe_run(state)
    card = ModelCard(
        name=name,
        architecture=config["model"],
        weights=f"{name}.safetensors",
        input_size=(config["size"], config["size"]),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        status=status,
        data=data,
        recipe=recipe,
        date=date.today().isoformat(),
        command=state["command"],
        folder=models_dir,
    )
    split = config["test_split"]
    with tempfile.TemporaryDirectory() as scratch:
        full = score(
            save_model(network, replace(card, folder=Path(scratch))), config["data"], split
        )
    saved = save_model(network, card, half=True)
    half = score(saved, config["data"], split)
    if abs(half.dice - full.dice) > HALF_PRECISION_TOLERANCE:
        saved, half = save_model(network, card, half=False), full
    precision = "fp16" if half is not full else "fp32"
    metrics = {split: {key: round(value, 4) for key, value in asdict(half).items()}}
    notes = (
        f"weights stored in {precision}; test Dice fp32 {full.dice:.4f}, as stored {half.dice:.4f}"
    )
    if export_command:
        notes += f"; exported with: {export_command}"
    exported = replace(saved, metrics=metrics, notes=notes)
    exported.save()
    return exported


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--name", required=True, help="the model's name in models/")
    parser.add_argument("--models-dir", type=Path, default=MODELS_DIR)
    parser.add_argument("--status", default="interim", choices=["interim", "production"])
    args = parser.parse_args(argv)
    command = shlex.join(["python", "-m", "training.export", *(argv or sys.argv[1:])])
    card = export_checkpoint(args.checkpoint, args.name, args.models_dir, args.status, command)
    print(f"wrote {card.weights_path} and {card.card_path}")
    print(f"{card.name}: {card.metrics}; {card.notes}")


if __name__ == "__main__":
    main()
