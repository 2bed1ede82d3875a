"""int8 for the CPU runtime: calibrated on training images only, kept only within the limits.

    python -m training.quantise --model resunetpp [--data DIR] [--calibration 300]

Post-training quantisation with NNCF of the model's OpenVINO conversion:

1. Calibration: ``--calibration`` training images (never a test image), prepared as the app
   prepares frames, set the int8 ranges.
2. Accuracy control: layers whose int8 version changes the masks most go back to fp32 until the
   masks on the held-out validation tenth of the training ids agree with the fp32 model's within
   ``VALIDATION_MAX_DROP`` (mean mask Dice).
3. Parity on the test split (``training.parity``): mean mask agreement with the torch fp32
   reference and test Dice within the project's limits; and speed: at least ``MIN_SPEEDUP``
   faster than the fastest other OpenVINO precision here. Only then are ``models/NAME.int8.xml``
   and ``.bin`` written and the card's ``int8`` record filled; otherwise nothing is kept.

The decoder's concatenations stay in fp32, with the upsampling that feeds them and the layers they
feed: ResUNet++'s attention gates are not squashed, so the features they gate reach thousands while
the skip features beside them stay near ten, and the one int8 scale that NNCF gives everything
meeting at a concatenation wipes out the skips (mask agreement 0.0 on the interim ResUNet++).
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
import tempfile
import time
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from polypview.backends import create_backend, status
from polypview.backends.openvino_int8 import OpenVINOInt8Backend
from polypview.errors import PolypviewError
from polypview.hardware import cpu_name
from polypview.modelfile import MODELS_DIR, ModelCard, file_sha256, find_model, load_network
from polypview.segmenter import Segmenter
from training.data import DEFAULT_ROOT, validation_split
from training.evaluate import PairFiles, list_pairs, load_pairs, split_pairs
from training.parity import ParityResult, compare

CALIBRATION_IMAGES = 300
MIN_SPEEDUP = 1.1  # over the fastest other CPU precision, or the int8 model is not worth it
RIVALS = ("openvino", "openvino-bf16")  # measured beside it, where usable
VALIDATION_MAX_DROP = 0.005  # mean mask Dice against the fp32 model on the validation ids
SEED = 0


def concatenation_scope(model: Any) -> list[str]:
    """The names of the concatenations, the upsampling feeding them and the layers they feed."""
    names = set()
    for op in model.get_ordered_ops():
        if op.get_type_name() != "Concat":
            continue
        names.add(op.get_friendly_name())
        for value in op.inputs():
            producer = value.get_source_output().get_node()
            if producer.get_type_name() == "Interpolate":
                names.add(producer.get_friendly_name())
        names.update(
            target.get_node().get_friendly_name() for target in op.output(0).get_target_inputs()
        )
    return sorted(names)


def prepared(segmenter: Segmenter, files: list[PairFiles]) -> list[np.ndarray]:
    """The network's inputs for these images, made by the app's own preprocessing."""
    return [np.asarray(segmenter.preprocess(pair.image)) for pair in load_pairs(files)]


def quantise(card: ModelCard, data: Path, calibration: int) -> tuple[object, dict[str, object]]:
    """The int8 OpenVINO model of ``card`` and the record of how it was made."""
    import nncf
    import openvino as ov

    from polypview.backends.openvino_cpu import COMPILE_OPTIONS, convert

    network = load_network(card)
    reference = Segmenter(card, create_backend("torch", network, card))
    files = {pair.image_id: pair for pair in list_pairs(data, "train880")}
    train_ids, validation_ids = validation_split(files)
    rng = np.random.default_rng(SEED)
    calibration_ids = sorted(rng.choice(train_ids, min(calibration, len(train_ids)), False))
    calibration_set = prepared(reference, [files[image_id] for image_id in calibration_ids])
    validation_set = prepared(reference, [files[image_id] for image_id in validation_ids])
    model = convert(network, card)
    logit_threshold = float(np.log(card.threshold / (1 - card.threshold)))
    fp32 = ov.Core().compile_model(model, "CPU", COMPILE_OPTIONS)
    expected = [fp32(batch)[0] >= logit_threshold for batch in validation_set]

    def agreement(compiled: object, batches: list[np.ndarray]) -> float:
        """Mean mask Dice against the fp32 model's masks, at the model's size."""
        scores = []
        for batch, truth in zip(batches, expected, strict=True):
            mask = compiled(batch)[0] >= logit_threshold  # type: ignore[operator]
            total = mask.sum() + truth.sum()
            scores.append(1.0 if total == 0 else 2.0 * (mask & truth).sum() / total)
        return float(np.mean(scores))

    quantised = nncf.quantize_with_accuracy_control(
        model,
        nncf.Dataset(calibration_set),
        nncf.Dataset(validation_set),
        validation_fn=agreement,
        max_drop=VALIDATION_MAX_DROP,
        drop_type=nncf.DropType.ABSOLUTE,
        preset=nncf.QuantizationPreset.MIXED,
        subset_size=len(calibration_set),
        ignored_scope=nncf.IgnoredScope(names=concatenation_scope(model)),
    )
    record: dict[str, object] = {
        "weights_sha256": card.sha256,
        "calibration": (
            f"{len(calibration_ids)} train880 images (seed {SEED}, outside the validation "
            f"tenth); accuracy control on the {len(validation_ids)} validation images, mean "
            f"mask Dice vs fp32 within {VALIDATION_MAX_DROP}; the decoder's concatenations, "
            "their upsampling and the layers they feed left in fp32"
        ),
        "tools": f"NNCF {nncf.__version__}, OpenVINO {ov.get_version().split('-')[0]}",
    }
    return quantised, record


def median_ms(backend: object, batch: np.ndarray, runs: int = 30) -> float:
    for _ in range(3):
        backend.infer(batch)  # type: ignore[attr-defined]
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        backend.infer(batch)  # type: ignore[attr-defined]
        times.append((time.perf_counter() - started) * 1000)
    return float(np.median(times))


def save_int8(model: object, card: ModelCard, record: dict[str, object]) -> ModelCard:
    """``model`` written beside ``card``'s weights as ``NAME.int8.xml``/``.bin``; ``card`` with
    its ``int8`` record pointing there (not yet saved). The .xml is written last, so a present
    .xml always has its complete .bin."""
    import openvino as ov

    name = f"{card.name}.int8.xml"
    with tempfile.TemporaryDirectory(dir=card.folder) as scratch:
        staged = Path(scratch) / name
        ov.save_model(model, staged, compress_to_fp16=False)
        checksum = file_sha256(staged.with_suffix(".bin"))
        for suffix in (".bin", ".xml"):
            os.replace(staged.with_suffix(suffix), (card.folder / name).with_suffix(suffix))
    return replace(card, int8=record | {"file": name, "bin_sha256": checksum})


def run(args: argparse.Namespace, command: str) -> int:
    card = find_model(args.model, args.models_dir)
    quantised, record = quantise(card, args.data, args.calibration)
    network = load_network(card)
    reference = Segmenter(card, create_backend("torch", network, card))
    with tempfile.TemporaryDirectory() as scratch:  # judged before anything is installed
        candidate_card = save_int8(quantised, replace(card, folder=Path(scratch)), record)
        candidate = Segmenter(candidate_card, OpenVINOInt8Backend(candidate_card))
        (parity,) = compare(reference, {"openvino-int8": candidate}, split_pairs(args.data))
        print(f"{card.name} {parity.summary()}")
        if not parity.passed:
            print(f"quantise: int8 {card.name} is outside the accuracy limit; nothing was kept")
            return 2
        test_image = next(split_pairs(args.data)).image
        batch = np.asarray(reference.preprocess(test_image))
        rivals = [name for name in RIVALS if status(name).available]
        speeds = {"torch": median_ms(reference.backend, batch)} | {
            name: median_ms(create_backend(name, network, card), batch) for name in rivals
        }
        speeds["openvino-int8"] = median_ms(candidate.backend, batch)
    print(
        f"batch-1 median on {cpu_name()}: "
        + ", ".join(f"{key} {value:.1f} ms" for key, value in speeds.items())
    )
    fastest = min(rivals, key=speeds.__getitem__)
    if speeds["openvino-int8"] * MIN_SPEEDUP > speeds[fastest]:
        # Accuracy control may have put most layers back in fp32: then int8 is int8 in name only.
        print(
            f"quantise: int8 {card.name} is not at least {MIN_SPEEDUP}x faster than {fastest} "
            "here; nothing was kept"
        )
        return 2
    installed = save_int8(
        quantised,
        card,
        record
        | {
            "test": parity_record(parity),
            "speed_ms": {key: round(value, 1) for key, value in speeds.items()},
            "speed_cpu": cpu_name(),
            "date": date.today().isoformat(),
            "command": command,
        },
    )
    installed.save()
    print(f"wrote {card.folder / installed.int8['file']} (and .bin); {card.card_path} records it")
    return 0


def parity_record(parity: ParityResult) -> dict[str, object]:
    return {
        key: value for key, value in parity.to_json().items() if key not in ("backend", "passed")
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.quantise", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--model", required=True, help="installed model name or model file path")
    parser.add_argument("--data", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--models-dir", type=Path, default=MODELS_DIR)
    parser.add_argument(
        "--calibration",
        type=int,
        default=CALIBRATION_IMAGES,
        help="training images to calibrate on",
    )
    args = parser.parse_args(argv)
    command = shlex.join(["python", "-m", "training.quantise", *(argv or sys.argv[1:])])
    logging.getLogger("nncf").setLevel(logging.WARNING)
    try:
        return run(args, command)
    except PolypviewError as error:
        print(f"quantise: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
