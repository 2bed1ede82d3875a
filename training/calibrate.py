"""Choose a model's frame-level decision on validation data and store it in its card.

    python -m training.calibrate --model lite-unet --write [--plot docs/decision-lite-unet.png]

Every validation frame goes through the app's segmenter (the model's own backend, at the frame's
resolution). The frames come from Kvasir-SEG (the fixed-seed tenth of train880 that training
validates on), PolypGen's validation split and the negative set's validation centre, which no
model trains on; each counts as a polyp frame or a polyp-free one by its own truth mask (12 of
PolypGen's validation frames show no polyp). For each candidate area fraction and score threshold
(``polypview.decision``) the share of polyp-free frames flagged and of polyp frames missed are
counted: one FROC-style curve per area fraction.

The operating point: among the candidates with both shares within their targets (5% each by
default), the one with the widest margin to the nearer target, since unseen footage moves both;
where none meets both, the one that misses fewest polyp frames with false alarms within target;
failing that too, the one with fewest false alarms. A decision never rests on less than
``MIN_AREA`` of the frame: on the peak pixel alone, bf16 moved ResUNet++'s frames across the
threshold (parity 0.9784) and a fifth of the polyp-free centre A clip frames were flagged. Test
splits are never read to choose; with ``--write`` the card's test metrics are scored again under
the new decision, so they stay what the app shows.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from polypview.backends import backend_names
from polypview.decision import top_quantiles
from polypview.errors import PolypviewError
from polypview.segmenter import Segmenter
from training.data import DEFAULT_ROOT, DatasetSpec, resolve_dataset, validation_split
from training.evaluate import PairFiles, list_pairs, load_pairs

SHARED = DEFAULT_ROOT.parent
DEFAULT_POLYP = (f"{DEFAULT_ROOT}:train880", f"{SHARED / 'polypgen'}:train:val")
DEFAULT_NEGATIVE = (f"{SHARED / 'polypgen-negative'}:train:val",)
AREA_FRACTIONS = (0.0, 0.001, 0.0025, 0.005, 0.01, 0.02)  # 0.0: the peak pixel, plotted only
TARGET_SHARE = 0.05  # at most this share of polyp-free frames flagged, and of polyp frames missed
MIN_AREA = 0.001  # the smallest area a decision may rest on (``--min-area`` to change it)
# Steps of 0.01, finer at the top where confident networks separate their frames.
THRESHOLDS = (*np.round(np.arange(0.50, 0.99, 0.01), 2).tolist(), 0.99, 0.995, 0.998, 0.999)


@dataclass(frozen=True)
class OperatingPoint:
    area_fraction: float
    threshold: float
    frames_flagged: float  # share of polyp-free validation frames called polyp
    frames_missed: float  # share of polyp validation frames called polyp-free


def validation_files(spec: DatasetSpec, seed: int = 0) -> list[PairFiles]:
    """The validation frames of a dataset, exactly as ``training.train`` holds them out."""
    if spec.validation_split is not None:
        return list_pairs(spec.root, spec.validation_split)
    _, ids = validation_split(resolve_dataset(spec.root, spec.train_split), 0.1, seed)
    wanted = set(ids)
    return [files for files in list_pairs(spec.root, spec.train_split) if files.image_id in wanted]


def frame_scores(
    segmenter: Segmenter, files: list[PairFiles], label: str
) -> tuple[np.ndarray, np.ndarray]:
    """``[frames, area fractions]`` scores, each frame through the app's segmenter, and whether
    each frame's truth holds a polyp (a frame of a polyp dataset may have none in view)."""
    rows, has_polyp = [], []
    for pair in tqdm(load_pairs(files), total=len(files), desc=label, disable=None, leave=False):
        probability = segmenter(pair.image).probability_map
        rows.append(top_quantiles(probability, list(AREA_FRACTIONS)))
        has_polyp.append(bool(pair.truth.any()))
    return np.array(rows), np.array(has_polyp)


def curve(polyp: np.ndarray, negative: np.ndarray) -> list[OperatingPoint]:
    """Every candidate (area fraction, threshold) with its two error shares."""
    points = []
    for column, area in enumerate(AREA_FRACTIONS):
        for threshold in THRESHOLDS:
            points.append(
                OperatingPoint(
                    area,
                    float(threshold),
                    float(np.mean(negative[:, column] >= threshold)),
                    float(np.mean(polyp[:, column] < threshold)),
                )
            )
    return points


def choose(
    points: list[OperatingPoint], max_flagged: float, max_missed: float, min_area: float = MIN_AREA
) -> OperatingPoint:
    """The operating point by the rule in this module's docstring, among those resting on at
    least ``min_area`` of the frame."""
    points = [point for point in points if point.area_fraction >= min_area]
    if not points:
        raise ValueError(f"no candidate area reaches the minimum {min_area}")
    both = [p for p in points if p.frames_flagged <= max_flagged and p.frames_missed <= max_missed]
    if both:
        return max(
            both,
            key=lambda p: (
                min(max_flagged - p.frames_flagged, max_missed - p.frames_missed),
                -p.threshold,
            ),
        )
    quiet = [p for p in points if p.frames_flagged <= max_flagged]
    if quiet:
        return min(quiet, key=lambda p: (p.frames_missed, p.frames_flagged))
    return min(points, key=lambda p: (p.frames_flagged, p.frames_missed))


def plot(points: list[OperatingPoint], chosen: OperatingPoint, title: str, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axis = pyplot.subplots(figsize=(6, 4.2), layout="constrained")
    for area in AREA_FRACTIONS:
        line = sorted((p for p in points if p.area_fraction == area), key=lambda p: p.threshold)
        axis.plot(
            [p.frames_flagged for p in line],
            [1 - p.frames_missed for p in line],
            label=f"area >= {area:.2%}" if area else "peak",
        )
    axis.plot(chosen.frames_flagged, 1 - chosen.frames_missed, "ko", label="default")
    axis.axvline(TARGET_SHARE, color="grey", linestyle=":", linewidth=1)
    axis.axhline(0.95, color="grey", linestyle=":", linewidth=1)
    axis.set_xlabel("polyp-free validation frames flagged")
    axis.set_ylabel("polyp validation frames found")
    axis.set_title(title, fontsize=10)
    axis.set_xlim(0, 0.5)
    axis.set_ylim(min(0.5, 0.95 - chosen.frames_missed), 1.0)  # the default stays in view
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="lower right")
    figure.savefig(png, dpi=110)
    pyplot.close(figure)


def calibrate(args: argparse.Namespace) -> dict:
    segmenter = Segmenter.open(args.model, args.backend)
    decision = decide(
        segmenter,
        args.polyp,
        args.negative,
        args.max_flagged,
        args.max_missed,
        args.plot,
        args.min_area,
    )
    if args.write:
        from training.export import rescored

        rescored(replace(segmenter.card, decision=decision)).save()
    return decision


def decide(
    segmenter: Segmenter,
    polyp_data: list[str] = list(DEFAULT_POLYP),  # noqa: B006 - never mutated
    negative_data: list[str] = list(DEFAULT_NEGATIVE),  # noqa: B006
    max_flagged: float = TARGET_SHARE,
    max_missed: float = TARGET_SHARE,
    plot_path: Path | None = None,
    min_area: float = MIN_AREA,
) -> dict:
    """The card's ``decision`` for ``segmenter``'s model, chosen on the validation frames;
    ``min_area`` leaves out decisions resting on fewer pixels (0: the peak pixel may decide)."""
    card = segmenter.card
    polyp_specs = [DatasetSpec.parse(text) for text in polyp_data]
    negative_specs = [DatasetSpec.parse(text) for text in negative_data]
    scored = [
        frame_scores(segmenter, validation_files(spec), str(spec))
        for spec in [*polyp_specs, *negative_specs]
    ]
    scores = np.concatenate([rows for rows, _ in scored])
    truth = np.concatenate([has_polyp for _, has_polyp in scored])
    polyp, negative = scores[truth], scores[~truth]  # by each frame's truth, not its dataset
    points = curve(polyp, negative)
    chosen = choose(points, max_flagged, max_missed, min_area)
    decision = {
        "area_fraction": chosen.area_fraction,
        "threshold": chosen.threshold,
        "validation": {
            "frames_flagged": round(chosen.frames_flagged, 4),
            "frames_missed": round(chosen.frames_missed, 4),
            "polyp_frames": len(polyp),
            "polyp_free_frames": len(negative),
            "polyp_data": [str(s) for s in polyp_specs],
            "polyp_free_data": [str(s) for s in negative_specs],
            "backend": f"{segmenter.backend.name} {segmenter.backend.precision}",
            "weights_sha256": card.sha256,
        },
    }
    if plot_path:
        plot(points, chosen, f"{card.name}: frame-level decision on validation", plot_path)
    return decision


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.calibrate", description=__doc__)
    parser.add_argument("--model", required=True, help="installed model name or model file path")
    parser.add_argument("--backend", default="auto", choices=["auto", *backend_names()])
    parser.add_argument("--polyp", nargs="+", default=list(DEFAULT_POLYP), metavar="PATH:SPLITS")
    parser.add_argument(
        "--negative", nargs="+", default=list(DEFAULT_NEGATIVE), metavar="PATH:SPLITS"
    )
    parser.add_argument("--max-flagged", type=float, default=TARGET_SHARE)
    parser.add_argument("--max-missed", type=float, default=TARGET_SHARE)
    parser.add_argument(
        "--min-area",
        type=float,
        default=MIN_AREA,
        help=f"smallest share of the frame a decision may rest on (default {MIN_AREA}; 0 lets "
        "the peak pixel alone decide, which reduced precision can move across the threshold)",
    )
    parser.add_argument("--write", action="store_true", help="store the decision in the card")
    parser.add_argument("--plot", type=Path, help="PNG of the curves and the chosen point")
    args = parser.parse_args(argv)
    if not 0 <= args.min_area <= max(AREA_FRACTIONS):
        parser.error(f"--min-area must be between 0 and {max(AREA_FRACTIONS)}")
    try:
        decision = calibrate(args)
    except (PolypviewError, FileNotFoundError, ValueError) as error:
        print(f"calibrate: error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(decision))
    return 0


if __name__ == "__main__":
    sys.exit(main())
