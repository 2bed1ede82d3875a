"""Model files: cards and weights load only when they fit, and say why when they do not."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from conftest import make_stand_in
from polypview.errors import ModelError
from polypview.modelfile import ModelCard, find_model, installed_models, load_network


def test_saved_model_loads_with_identical_outputs(tmp_path: Path) -> None:
    card = make_stand_in(tmp_path, "resunetpp", input_size=(64, 64))
    loaded = find_model(str(card.weights_path))
    assert loaded == card
    torch.manual_seed(0)
    from polypview.nets import create_model

    original = create_model("resunetpp").eval()
    batch = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(original(batch), load_network(loaded)(batch))


def test_fp16_weights_load_as_float32(tmp_path: Path) -> None:
    from polypview.modelfile import save_model
    from polypview.nets import create_model

    card = make_stand_in(tmp_path, "unet")
    saved = save_model(create_model("unet"), replace(card, name="half"), half=False)
    half = save_model(
        create_model("unet"), replace(card, name="half16", weights="h.safetensors"), half=True
    )
    assert half.weights_path.stat().st_size < saved.weights_path.stat().st_size * 0.6
    assert next(load_network(half).parameters()).dtype == torch.float32


def test_models_are_found_by_name_in_their_folder(tmp_path: Path) -> None:
    make_stand_in(tmp_path, "unet")
    assert [card.name for card in installed_models(tmp_path)] == ["unet"]
    assert find_model("unet", tmp_path).architecture == "unet"


def test_missing_trained_weights_are_said_plainly(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no trained weights are installed for 'resunetpp'"):
        find_model("resunetpp", tmp_path)
    with pytest.raises(ModelError, match="unknown model 'nope'; installed: none"):
        find_model("nope", tmp_path)


def test_weights_of_another_architecture_are_refused(tmp_path: Path) -> None:
    card = make_stand_in(tmp_path, "unet")
    wrong = replace(card, architecture="resunetpp", sha256="")
    with pytest.raises(ModelError, match="do not fit architecture 'resunetpp'"):
        load_network(wrong)


def test_corrupted_weights_are_refused(tmp_path: Path) -> None:
    card = make_stand_in(tmp_path, "unet")
    data = bytearray(card.weights_path.read_bytes())
    data[100:200] = b"\xff" * 100
    card.weights_path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="does not match its card's checksum"):
        load_network(card)
    with pytest.raises(ModelError, match="corrupted or not safetensors"):
        load_network(replace(card, sha256=""))
    card.weights_path.write_bytes(b"not a model at all")
    with pytest.raises(ModelError, match="corrupted or not safetensors"):
        load_network(replace(card, sha256=""))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "not readable JSON"),
        ("[]", "not a JSON object"),
        ('{"name": "x"}', "lacks architecture, input_size, mean, std, weights"),
        (
            '{"name": "x", "architecture": "vit", "weights": "x.safetensors",'
            ' "input_size": [1, 1], "mean": [0, 0, 0], "std": [1, 1, 1]}',
            "unknown architecture 'vit'",
        ),
    ],
)
def test_malformed_cards_are_refused(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "x.json"
    path.write_text(content)
    with pytest.raises(ModelError, match=message):
        ModelCard.from_file(path)


def test_weights_without_a_card_are_refused(tmp_path: Path) -> None:
    card = make_stand_in(tmp_path, "unet")
    card.card_path.unlink()
    with pytest.raises(ModelError, match="no model card beside"):
        find_model(str(card.weights_path))


def test_card_round_trips_through_json(tmp_path: Path) -> None:
    card = make_stand_in(tmp_path, "unet", metrics={"test120": {"dice": 0.5}})
    assert json.loads(card.card_path.read_text())["metrics"] == {"test120": {"dice": 0.5}}
    assert ModelCard.from_file(card.card_path) == card
