"""Model files: safetensors weights described by a JSON model card.

A model is two files side by side in ``models/``: ``<name>.safetensors`` (never pickle, so opening a
downloaded model cannot run code) and ``<name>.json``, the card that says which network the weights
fit, how frames must be prepared for it, and how well it did on which data.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from polypview.errors import ModelError
from polypview.nets import create_model, model_names

MODELS_DIR = Path(
    os.environ.get("POLYPVIEW_MODELS", Path(__file__).resolve().parents[1] / "models")
)
DEFAULT_MODEL = "resunetpp"


@dataclass(frozen=True)
class ModelCard:
    """What the app must know to run a network, plus the record of how it was made."""

    name: str
    architecture: str
    weights: str  # file name, relative to the card's folder
    input_size: tuple[int, int]  # (height, width) the network expects
    mean: tuple[float, float, float]  # per RGB channel, on pixel values scaled to 0..1
    std: tuple[float, float, float]
    threshold: float = 0.5
    in_channels: int = 3
    classes: int = 1
    # Keyword arguments of the architecture's constructor beyond the defaults, e.g. lite-unet's
    # {"decoder_channels": [128, 64, 32, 16]}: the weights only fit the network built with them.
    architecture_options: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""
    status: str = "interim"  # "interim" or "production"
    metrics: dict[str, Any] = field(default_factory=dict)
    data: str = ""
    recipe: str = ""
    date: str = ""
    command: str = ""
    notes: str = ""
    int8: dict[str, Any] = field(default_factory=dict)  # the verified int8 CPU model, if any
    parity: dict[str, Any] = field(default_factory=dict)  # backend -> its check on the test split
    # The frame-level decision (polypview.decision) and its validation figures, from
    # training.calibrate; empty: any pixel above ``threshold`` makes a polyp frame.
    decision: dict[str, Any] = field(default_factory=dict)
    folder: Path = field(default=Path("."), compare=False)

    @property
    def weights_path(self) -> Path:
        return self.folder / self.weights

    @property
    def card_path(self) -> Path:
        return self.folder / f"{self.name}.json"

    def to_json(self) -> dict[str, Any]:
        record = asdict(self)
        del record["folder"]
        return record

    @classmethod
    def from_file(cls, path: Path) -> ModelCard:
        try:
            record = json.loads(path.read_text())
        except FileNotFoundError:
            raise ModelError(f"model card not found: {path}") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ModelError(f"model card {path} is not readable JSON: {error}") from None
        known = {name for name in cls.__dataclass_fields__ if name != "folder"}
        if not isinstance(record, dict):
            raise ModelError(f"model card {path} is not a JSON object")
        missing = {"name", "architecture", "weights", "input_size", "mean", "std"} - record.keys()
        if missing:
            raise ModelError(f"model card {path} lacks {', '.join(sorted(missing))}")
        if record["architecture"] not in model_names():
            raise ModelError(
                f"model card {path} names unknown architecture {record['architecture']!r}; "
                f"known: {', '.join(model_names())}"
            )
        fields = {key: value for key, value in record.items() if key in known}
        try:
            fields["input_size"] = tuple(int(v) for v in record["input_size"])
            fields["mean"] = tuple(float(v) for v in record["mean"])
            fields["std"] = tuple(float(v) for v in record["std"])
        except (TypeError, ValueError):
            raise ModelError(f"model card {path} has malformed input_size, mean or std") from None
        if len(fields["input_size"]) != 2 or len(fields["mean"]) != 3 or len(fields["std"]) != 3:
            raise ModelError(f"model card {path}: input_size needs 2 values, mean and std 3 each")
        options = fields.get("architecture_options", {})
        if not isinstance(options, dict):
            raise ModelError(f"model card {path}: architecture_options must be a JSON object")
        _check_decision(path, fields.get("decision", {}))
        return cls(**fields, folder=path.parent)

    def save(self) -> Path:
        self.card_path.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        return self.card_path


def _check_decision(path: Path, decision: object) -> None:
    """A card's frame-level decision must build one (``polypview.decision.FrameDecision``)."""
    if decision == {}:
        return
    from polypview.decision import FrameDecision

    try:
        FrameDecision(float(decision["area_fraction"]), float(decision["threshold"]))
    except (TypeError, KeyError, ValueError) as error:
        raise ModelError(f"model card {path} has a malformed decision: {error}") from None


def installed_models(folder: Path | None = None) -> list[ModelCard]:
    """Cards of the models in ``folder`` whose card parses; broken ones are reported on loading."""
    cards = []
    for path in sorted((folder or MODELS_DIR).glob("*.json")):
        try:
            cards.append(ModelCard.from_file(path))
        except ModelError:
            continue
    return cards


def find_model(reference: str | None = None, folder: Path | None = None) -> ModelCard:
    """A card from a model name in ``folder``, or from a path to a card or to its weights."""
    reference = reference or DEFAULT_MODEL
    folder = folder or MODELS_DIR
    path = Path(reference)
    if path.suffix in {".json", ".safetensors"} or path.exists():
        if path.is_dir():
            raise ModelError(f"model path {path} is a folder; give a .safetensors or .json file")
        if not path.exists():
            raise ModelError(f"model file not found: {path}")
        if not path.with_suffix(".json").exists():
            raise ModelError(f"no model card beside {path} (expected {path.with_suffix('.json')})")
        return ModelCard.from_file(path.with_suffix(".json"))
    card_path = folder / f"{reference}.json"
    if card_path.exists():
        return ModelCard.from_file(card_path)
    if reference in model_names():
        raise ModelError(
            f"no trained weights are installed for '{reference}' (looked in {folder}); "
            "train them with `python -m training.train` or pass --model PATH"
        )
    installed = ", ".join(card.name for card in installed_models(folder)) or "none"
    raise ModelError(f"unknown model '{reference}'; installed: {installed}")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_network(card: ModelCard) -> nn.Module:
    """The card's network in eval mode with its weights, checked to fit exactly."""
    path = card.weights_path
    if not path.exists():
        raise ModelError(f"weights file not found: {path}")
    if card.sha256 and file_sha256(path) != card.sha256:
        raise ModelError(f"weights file {path} does not match its card's checksum (corrupted?)")
    try:
        state = load_file(path)
    except (SafetensorError, OSError, ValueError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ModelError(f"weights file {path} is corrupted or not safetensors: {reason}") from None
    network = create_model(
        card.architecture,
        in_channels=card.in_channels,
        classes=card.classes,
        **card.architecture_options,
    )
    expected = network.state_dict()
    missing = sorted(expected.keys() - state.keys())
    unexpected = sorted(state.keys() - expected.keys())
    reshaped = sorted(
        key for key in expected.keys() & state.keys() if expected[key].shape != state[key].shape
    )
    if missing or unexpected or reshaped:
        example = (missing or unexpected or reshaped)[0]
        raise ModelError(
            f"weights {path} do not fit architecture '{card.architecture}': "
            f"{len(missing)} missing, {len(unexpected)} unexpected, "
            f"{len(reshaped)} of other shape (e.g. {example})"
        )
    network.load_state_dict({key: value.float() for key, value in state.items()})
    return network.eval()


def save_model(network: nn.Module, card: ModelCard, *, half: bool = False) -> ModelCard:
    """Write the weights (optionally fp16) and the card, with the card's checksum filled in."""
    card.folder.mkdir(parents=True, exist_ok=True)
    dtype = torch.float16 if half else torch.float32
    state = {
        key: (value.to(dtype) if value.is_floating_point() else value).contiguous()
        for key, value in network.state_dict().items()
    }
    save_file(state, card.weights_path, metadata={"architecture": card.architecture})
    saved = ModelCard(**{**asdict(card), "sha256": file_sha256(card.weights_path)})
    saved.save()
    return saved
