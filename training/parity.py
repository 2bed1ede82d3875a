"""Does a faster backend show the same masks as the torch fp32 reference?

    python -m training.parity --model resunetpp --backends openvino-bf16 [--record] [--json]

The acceleration work's accuracy limit, in one place: on real test images at their original
resolution, through the app's own segmenter, a backend's masks must agree with the reference's
(mean mask Dice agreement at least ``AGREEMENT_LIMIT``) and its test Dice against the ground truth
must stay within ``TEST_DICE_LIMIT`` of the reference's. The minimum agreement and the count of
images under the limit are reported beside the mean, so a few bad images never hide in it.
``--record`` writes each result into the model card (``parity``), with the weights' checksum and
the CPU: ``auto`` takes a reduced precision (bf16) only for weights that passed it there.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from datetime import date
from pathlib import Path

import numpy as np

from polypview.backends import backend_names, create_backend
from polypview.errors import PolypviewError
from polypview.hardware import cpu_name
from polypview.modelfile import ModelCard, find_model, load_network
from polypview.segmenter import Segmenter
from training.data import DEFAULT_ROOT
from training.evaluate import DEFAULT_SPLIT, Pair, split_pairs
from training.metrics import dice_from_counts, image_counts

AGREEMENT_LIMIT = 0.99  # mean mask Dice between a backend's masks and the reference's
TEST_DICE_LIMIT = 0.005  # largest change of test Dice against the ground truth
REFERENCE_BACKEND = "torch"


@dataclass(frozen=True)
class ParityResult:
    backend: str
    images: int
    agreement_mean: float
    agreement_min: float
    images_under_limit: int
    reference_dice: float
    candidate_dice: float

    @property
    def dice_change(self) -> float:
        return self.candidate_dice - self.reference_dice

    @property
    def passed(self) -> bool:
        return self.agreement_mean >= AGREEMENT_LIMIT and abs(self.dice_change) <= TEST_DICE_LIMIT

    def to_json(self) -> dict[str, object]:
        fields = {
            key: round(value, 5) if isinstance(value, float) else value
            for key, value in asdict(self).items()
        }
        return fields | {"dice_change": round(self.dice_change, 5), "passed": self.passed}

    def summary(self) -> str:
        verdict = "passes" if self.passed else "FAILS"
        return (
            f"{self.backend}: mask agreement mean {self.agreement_mean:.4f} (min "
            f"{self.agreement_min:.3f}, {self.images_under_limit}/{self.images} images under "
            f"{AGREEMENT_LIMIT}); test Dice {self.candidate_dice:.4f} vs {self.reference_dice:.4f} "
            f"({self.dice_change:+.4f}): {verdict}"
        )


def compare(
    reference: Segmenter, candidates: dict[str, Segmenter], pairs: Iterable[Pair]
) -> list[ParityResult]:
    """Each candidate's masks against the reference's and the truth, image by image."""
    reference_counts: list[np.ndarray] = []
    counts: dict[str, list[np.ndarray]] = {name: [] for name in candidates}
    agreement: dict[str, list[float]] = {name: [] for name in candidates}
    for pair in pairs:
        expected = reference(pair.image).mask > 0
        reference_counts.append(image_counts(expected, pair.truth))
        for name, segmenter in candidates.items():
            actual = segmenter(pair.image).mask > 0
            counts[name].append(image_counts(actual, pair.truth))
            agreement[name].append(float(dice_from_counts(image_counts(actual, expected))))
    if not reference_counts:
        raise PolypviewError("no images to compare on")
    reference_dice = float(dice_from_counts(np.stack(reference_counts)).mean())
    results = []
    for name in candidates:
        scores = np.asarray(agreement[name])
        results.append(
            ParityResult(
                backend=name,
                images=len(scores),
                agreement_mean=float(scores.mean()),
                agreement_min=float(scores.min()),
                images_under_limit=int((scores < AGREEMENT_LIMIT).sum()),
                reference_dice=reference_dice,
                candidate_dice=float(dice_from_counts(np.stack(counts[name])).mean()),
            )
        )
    return results


def record(card: ModelCard, results: list[ParityResult], split: str, command: str) -> Path:
    """``results`` in ``card``'s ``parity`` record, tied to its weights; the card's path."""
    checked = {
        result.backend: result.to_json()
        | {
            "weights_sha256": card.sha256,
            "split": split,
            "cpu": cpu_name(),
            "date": date.today().isoformat(),
            "command": command,
        }
        for result in results
    }
    return replace(card, parity=card.parity | checked).save()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.parity", description=__doc__)
    parser.add_argument("--model", default=None, help="installed model name or model file path")
    parser.add_argument("--backends", nargs="+", required=True, choices=backend_names())
    parser.add_argument("--data", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--split", default=DEFAULT_SPLIT)
    parser.add_argument("--limit", type=int, help="compare on the first N images only")
    parser.add_argument(
        "--record", action="store_true", help="write the results into the model card"
    )
    parser.add_argument("--json", action="store_true", help="end with one JSON line of results")
    args = parser.parse_args(argv)
    command = shlex.join(["python", "-m", "training.parity", *(argv or sys.argv[1:])])
    try:
        card = find_model(args.model)
        network = load_network(card)
        reference = Segmenter(card, create_backend(REFERENCE_BACKEND, network, card))
        candidates = {
            name: Segmenter(card, create_backend(name, network, card)) for name in args.backends
        }
        pairs = list(split_pairs(args.data, args.split))[: args.limit]
        results = compare(reference, candidates, pairs)
    except PolypviewError as error:
        print(f"parity: {error}", file=sys.stderr)
        return 1
    for result in results:
        print(f"{card.name} {result.summary()}")
    if args.record:
        if args.limit is not None:
            print("parity: --record needs the whole split; nothing recorded", file=sys.stderr)
            return 1
        print(f"recorded in {record(card, results, args.split, command)}")
    if args.json:
        print(json.dumps({"model": card.name, "results": [r.to_json() for r in results]}))
    return 0 if all(result.passed for result in results) else 2


if __name__ == "__main__":
    sys.exit(main())
