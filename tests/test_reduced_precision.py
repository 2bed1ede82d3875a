"""Reduced precision on the CPU: the int8 model (installed beside the weights, found by ``auto``,
refused when stale), bf16 (taken by ``auto`` only for weights that passed parity in it), and the
one parity rule every faster backend is judged by."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from conftest import make_stand_in
from polypview.backends import create_backend, status, unusable_for
from polypview.errors import BackendError
from polypview.modelfile import ModelCard, find_model, load_network
from polypview.segmenter import Segmenter
from training.evaluate import Pair
from training.parity import AGREEMENT_LIMIT, TEST_DICE_LIMIT, ParityResult, compare, record

pytestmark = pytest.mark.skipif(
    not status("openvino").available, reason=f"openvino: {status('openvino').reason}"
)


@pytest.fixture(scope="module")
def quantised_card(tmp_path_factory: pytest.TempPathFactory) -> ModelCard:
    """A stand-in UNet quantised by NNCF on random calibration inputs and installed as
    training.quantise installs it."""
    nncf = pytest.importorskip("nncf", reason="nncf comes with the train extra")
    from polypview.backends.openvino_cpu import convert
    from training.quantise import save_int8

    card = make_stand_in(tmp_path_factory.mktemp("int8"), "unet")
    rng = np.random.default_rng(0)
    calibration = [rng.standard_normal((1, 3, 64, 64), dtype=np.float32) for _ in range(8)]
    model = nncf.quantize(
        convert(load_network(card), card), nncf.Dataset(calibration), subset_size=8
    )
    installed = save_int8(model, card, {"weights_sha256": card.sha256})
    installed.save()
    return find_model(str(installed.card_path))  # as the app reads it back


def test_auto_picks_the_installed_int8_model_and_it_tracks_fp32(quantised_card: ModelCard) -> None:
    network = load_network(quantised_card)
    backend = create_backend("auto", network, quantised_card)
    assert backend.name == "openvino-int8" and backend.precision == "int8"
    batch = np.random.default_rng(1).standard_normal((1, 3, 64, 64), dtype=np.float32)
    expected = create_backend("openvino", network, quantised_card).infer(batch).ravel()
    actual = backend.infer(batch).ravel()
    assert np.corrcoef(expected, actual)[0, 1] > 0.95


def test_int8_made_from_other_weights_is_refused_and_auto_moves_on(
    quantised_card: ModelCard,
) -> None:
    retrained = replace(quantised_card, sha256="0" * 64)
    assert "made from other weights" in (unusable_for("openvino-int8", retrained) or "")
    with pytest.raises(BackendError, match="re-run `python -m training\\.quantise"):
        create_backend("openvino-int8", load_network(quantised_card), retrained)
    assert create_backend("auto", load_network(quantised_card), retrained).name == "openvino"


def test_a_model_without_int8_says_how_to_make_one(stand_in_model: ModelCard) -> None:
    reason = unusable_for("openvino-int8", stand_in_model)
    assert reason is not None and "python -m training.quantise --model unet" in reason
    assert unusable_for("openvino", stand_in_model) is None


def test_a_damaged_int8_file_is_refused(quantised_card: ModelCard, tmp_path: Path) -> None:
    copy = replace(quantised_card, folder=tmp_path)
    for suffix in (".xml", ".bin"):
        source = (quantised_card.folder / quantised_card.int8["file"]).with_suffix(suffix)
        (tmp_path / source.name).write_bytes(source.read_bytes())
    weights = (tmp_path / quantised_card.int8["file"]).with_suffix(".bin")
    weights.write_bytes(weights.read_bytes()[:-16])
    with pytest.raises(BackendError, match="does not match its card"):
        create_backend("openvino-int8", load_network(quantised_card), copy)


def parity(agreement: float, candidate_dice: float, backend: str = "x") -> ParityResult:
    return ParityResult(backend, 10, agreement, agreement, 0, 0.80, candidate_dice)


needs_bf16 = pytest.mark.skipif(
    not status("openvino-bf16").available,
    reason=f"openvino-bf16: {status('openvino-bf16').reason}",
)


@needs_bf16
def test_auto_takes_bf16_only_for_weights_that_passed_parity_in_it(tmp_path: Path) -> None:
    card = make_stand_in(tmp_path, "unet")
    network = load_network(card)
    assert create_backend("auto", network, card).name == "openvino"
    assert create_backend("openvino-bf16", network, card).precision == "bf16"  # asked for: runs

    failed = find_model(str(record(card, [parity(0.95, 0.80, "openvino-bf16")], "t", "cmd")))
    assert create_backend("auto", network, failed).name == "openvino"
    passed = find_model(str(record(card, [parity(0.995, 0.80, "openvino-bf16")], "t", "cmd")))
    assert passed.parity["openvino-bf16"]["weights_sha256"] == card.sha256
    assert create_backend("auto", network, passed).name == "openvino-bf16"
    retrained = replace(passed, sha256="0" * 64)
    assert create_backend("auto", network, retrained).name == "openvino"


def test_the_parity_rule_needs_both_mask_agreement_and_test_dice() -> None:
    assert parity(AGREEMENT_LIMIT, 0.80 - TEST_DICE_LIMIT + 1e-6).passed
    assert not parity(AGREEMENT_LIMIT - 1e-4, 0.80).passed
    assert not parity(1.0, 0.80 + TEST_DICE_LIMIT + 1e-4).passed


def test_compare_scores_agreement_and_dice_image_by_image(stand_in_model: ModelCard) -> None:
    reference = Segmenter(
        stand_in_model, create_backend("torch", load_network(stand_in_model), stand_in_model)
    )

    class Inverted:
        """The reference's mask turned inside out: agreement 0 wherever it finds anything."""

        def __call__(self, image: np.ndarray):
            segmentation = reference(image)
            return replace(segmentation, mask=255 - segmentation.mask)

    rng = np.random.default_rng(0)
    pairs = [
        Pair(f"image{index}", rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), truth)
        for index, truth in enumerate(
            [np.zeros((48, 64), bool), np.ones((48, 64), bool), rng.random((48, 64)) > 0.5]
        )
    ]
    same, inverted = compare(reference, {"same": reference, "inverted": Inverted()}, pairs)
    assert same.agreement_mean == 1.0 and same.dice_change == 0.0 and same.passed
    assert inverted.agreement_min < 0.5 and not inverted.passed
    assert inverted.images == 3 and inverted.images_under_limit >= 1


def test_the_decoder_concatenations_are_left_out_of_int8(tmp_path: Path) -> None:
    """What NNCF is told to leave in fp32: every concatenation, the upsampling feeding it and the
    layers it feeds (ResUNet++'s unsquashed attention would otherwise set their one int8 scale)."""
    from polypview.backends.openvino_cpu import convert
    from training.quantise import concatenation_scope

    card = make_stand_in(tmp_path, "resunetpp")
    model = convert(load_network(card), card)
    kept = set(concatenation_scope(model))
    kinds = {op.get_friendly_name(): op.get_type_name() for op in model.get_ordered_ops()}
    concatenations = {name for name, kind in kinds.items() if kind == "Concat"}
    assert len(concatenations) == 3 and concatenations <= kept
    assert {kinds[name] for name in kept} >= {"Concat", "Interpolate"}
    assert len(kept) < len(kinds) / 4  # the rest is quantised
