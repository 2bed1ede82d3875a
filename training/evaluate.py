"""Score a model as users see it: through the app's segmenter, on each image at its own size.

    python -m training.evaluate --model resunetpp            # test120 of ../shared/data/kvasir-seg
    python -m training.evaluate --model models/unet.safetensors --tta --json
    python -m training.evaluate --model unet --split pranet_test100 --worst unet-pranet.png

Each image goes through ``polypview.segmenter.Segmenter`` at its original resolution (the segmenter
resizes the mask back), is scored with ``training.metrics``, and the scores are averaged over
images, as the Kvasir-SEG papers report them. A clip (``--clip``) is also judged over time, as the
app shows it (its tracker and persistence filter on, at the clip's frame rate): per-polyp
sensitivity, first-detection latency, false-positive events per minute and flicker
(``polypview.video_metrics``). The worst cases by Dice are drawn into a PNG grid:
truth contour green, prediction red. After training, ``evaluate`` fills the model card's metrics.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
from tqdm import tqdm

from polypview.backends import backend_names
from polypview.errors import OutputError, PolypviewError
from polypview.segmenter import Segmenter, resize_for_model
from polypview.tracking import FilterSettings, Tracker
from polypview.video_metrics import FrameOutcome, Truth, VideoMetrics, judge_frame, video_metrics
from training.data import DEFAULT_ROOT, pair_files, read_pair, resolve_dataset
from training.metrics import SCORE_NAMES, dice_from_counts, image_counts, scores_from_counts

DEFAULT_SPLIT = "test120"
FLIPS = (None, 1, 0)  # identity, horizontal, vertical (cv2.flip codes)
WORST_COUNT = 8
TILE_SIZE = 256
GRID_COLUMNS = 4
TRUTH_COLOUR = (0, 200, 0)  # BGR
PREDICTION_COLOUR = (0, 0, 255)
LABELS = {
    "dice": "Dice",
    "iou": "IoU",
    "precision": "precision",
    "recall": "recall",
    "f2": "F2",
    "miou": "mIoU",
}
# Published figures on Kvasir-SEG (../shared/data/README.md); mIoU averages polyp and background.
REFERENCE_FIGURES = {
    "ResUNet++ paper (ISM 2019)": {"dice": 0.8133, "miou": 0.7927},
    "ResUNet++ re-run, 512 px, 880/120 (IEEE Access 2021)": {"dice": 0.7143},
    "ResUNet++ re-run, 256 px, 880/120 (NanoNet paper)": {"dice": 0.7310},
    "ColonSegNet, 880/120": {"dice": 0.8206, "iou": 0.7239},
}


class PairFiles(NamedTuple):
    image_id: str
    image: Path
    mask: Path


class Pair(NamedTuple):
    image_id: str
    image: np.ndarray  # BGR uint8 H x W x 3 at its original resolution
    truth: np.ndarray  # bool H x W


class Scored(NamedTuple):
    pair: Pair
    prediction: np.ndarray  # bool H x W, what the app shows
    counts: np.ndarray  # tp, fp, fn, tn
    seconds: float  # segmentation only (all TTA passes), not reading files


@dataclass(frozen=True)
class EvaluationResult:
    """Means over images of the per-image scores: what a model card's ``metrics[split]`` holds."""

    dice: float
    iou: float
    precision: float
    recall: float
    f2: float
    miou: float
    images: int

    @classmethod
    def from_counts(cls, counts: np.ndarray) -> EvaluationResult:
        """From per-image counts shaped ``[N, 4]``."""
        scores = scores_from_counts(counts)
        return cls(**{name: float(scores[name].mean()) for name in SCORE_NAMES}, images=len(counts))


def list_pairs(root: Path | str, split: str | Path | None = DEFAULT_SPLIT) -> list[PairFiles]:
    """The image and mask files of ``split`` (a name in ``root/splits`` or a file of image ids),
    or, for ``None``, of every image with a mask of the same stem."""
    try:
        ids = resolve_dataset(root, split)
        files = pair_files(Path(root))
    except (FileNotFoundError, ValueError) as error:
        raise PolypviewError(str(error)) from None
    if not ids:
        raise PolypviewError(f"split {split} of {root} lists no images")
    return [PairFiles(image_id, *files[image_id]) for image_id in ids]


def load_pairs(files: Iterable[PairFiles]) -> Iterator[Pair]:
    """Each image at full size with its bool mask, read only when it is reached."""
    for image_id, image_path, mask_path in files:
        try:
            yield Pair(image_id, *read_pair(image_path, mask_path))
        except ValueError as error:
            raise PolypviewError(str(error)) from None


def split_pairs(root: Path | str, split: str | Path | None = DEFAULT_SPLIT) -> Iterator[Pair]:
    """The pairs of ``split``, read one at a time; a bad split fails here, not on iterating."""
    return load_pairs(list_pairs(root, split))


def predict(segmenter: Segmenter, frame: np.ndarray, tta: bool = False) -> np.ndarray:
    """The bool mask the app shows (empty where the frame-level decision finds no polyp); with
    ``tta``, from the probability averaged over flips."""
    if not tta:
        return segmenter(frame).mask > 0
    probability = np.mean(
        [_flip(segmenter.undecided(_flip(frame, code)).probability, code) for code in FLIPS],
        axis=0,
    )
    return segmenter.from_probability(probability).mask > 0


def score_images(
    segmenter: Segmenter, pairs: Iterable[Pair], tta: bool = False
) -> Iterator[Scored]:
    """Each pair with the app's prediction and its confusion counts."""
    for pair in pairs:
        start = time.perf_counter()
        prediction = predict(segmenter, pair.image, tta)
        seconds = time.perf_counter() - start
        yield Scored(pair, prediction, image_counts(prediction, pair.truth), seconds)


def evaluate(segmenter: Segmenter, pairs: Iterable[Pair], tta: bool = False) -> EvaluationResult:
    """Mean per-image scores of ``segmenter`` on ``pairs``."""
    counts = [scored.counts for scored in score_images(segmenter, pairs, tta)]
    if not counts:
        raise PolypviewError("no images to evaluate")
    return EvaluationResult.from_counts(np.stack(counts))


def draw_worst(cases: list[Scored]) -> np.ndarray:
    """A BGR grid of tiles: image, truth contour green, prediction red, Dice in the corner."""
    rows = -(-len(cases) // GRID_COLUMNS)
    columns = min(len(cases), GRID_COLUMNS)
    grid = np.zeros((rows * TILE_SIZE, columns * TILE_SIZE, 3), np.uint8)
    for index, case in enumerate(cases):
        row, column = divmod(index, GRID_COLUMNS)
        top, left = row * TILE_SIZE, column * TILE_SIZE
        grid[top : top + TILE_SIZE, left : left + TILE_SIZE] = _tile(case)
    return grid


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training.evaluate",
        description="Score a model through the app's segmenter on Kvasir-SEG-style data.",
    )
    parser.add_argument("--model", required=True, help="installed model name or model file path")
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_ROOT, help="images/ and masks/ (default: %(default)s)"
    )
    parser.add_argument(
        "--split",
        help=f"split name in DATA/splits or a file of image ids (default: {DEFAULT_SPLIT}, "
        "or every image with a mask when DATA has no splits/)",
    )
    parser.add_argument("--backend", default="auto", choices=["auto", *backend_names()])
    parser.add_argument("--threshold", type=float, help="mask threshold (default: the card's)")
    parser.add_argument(
        "--tta", action="store_true", help="average the probability over the frame and its flips"
    )
    parser.add_argument("--json", action="store_true", help="end with one JSON line of results")
    parser.add_argument(
        "--worst", type=Path, help="PNG of the worst cases by Dice (default: ./MODEL-worst.png)"
    )
    parser.add_argument("--limit", type=int, help="score only the first N images")
    parser.add_argument(
        "--clip",
        type=Path,
        help="score a video against its mask sidecar (CLIP.masks.npz, as assets/demo.mp4 has) "
        "instead of DATA",
    )
    return parser


def clip_pairs(clip: Path) -> tuple[int, float, Iterator[Pair]]:
    """Frames of ``clip`` with their ground truth from the sidecar beside it, decoded lazily; the
    count of frames and their rate."""
    from polypview.video import VideoSource
    from training.make_demo import load_demo_masks

    sidecar = clip.with_suffix(".masks.npz")
    if not sidecar.is_file():
        raise PolypviewError(f"no mask sidecar beside {clip} (expected {sidecar})")
    masks = load_demo_masks(sidecar)
    source = VideoSource(clip)

    def pairs() -> Iterator[Pair]:
        with source:
            for frame in source:
                if frame.index >= len(masks):
                    raise PolypviewError(f"{clip} has more frames than {sidecar} has masks")
                yield Pair(f"frame {frame.index}", frame.image, masks[frame.index])

    return len(masks), source.fps, pairs()


def run(args: argparse.Namespace) -> None:
    if args.threshold is not None and not 0 <= args.threshold <= 1:
        raise PolypviewError(f"--threshold must lie between 0 and 1, got {args.threshold}")
    if args.limit is not None and args.limit < 1:
        raise PolypviewError(f"--limit must be at least 1, got {args.limit}")
    if args.worst is not None and args.worst.suffix.lower() != ".png":
        raise OutputError(f"--worst must name a .png file, got {args.worst}")
    if args.worst is not None and not args.worst.parent.is_dir():
        raise OutputError(f"folder for --worst does not exist: {args.worst.parent}")
    over_time: ClipJudge | None = None
    if args.clip is not None:
        from training.clip_truth import clip_truth  # PyAV only where a clip is read

        split, data = args.clip.stem, args.clip
        total, frame_rate, pairs = clip_pairs(args.clip)
        over_time = ClipJudge(clip_truth(args.clip), frame_rate)
    else:
        split = args.split or (DEFAULT_SPLIT if (args.data / "splits").is_dir() else None)
        files = list_pairs(args.data, split)
        data, total, pairs = args.data, len(files), load_pairs(files)
    total = min(total, args.limit or total)
    pairs = itertools.islice(pairs, total)
    segmenter = Segmenter.open(args.model, args.backend, threshold=args.threshold)
    counts, seconds, worst = [], 0.0, []
    # Frame level: [polyp frames, of them missed, polyp-free frames, of them flagged].
    frames = np.zeros(4, np.int64)
    bar = tqdm(pairs, total=total, unit="image", file=sys.stderr, disable=None)
    with bar:
        for index, scored in enumerate(score_images(segmenter, bar, args.tta)):
            counts.append(scored.counts)
            seconds += scored.seconds
            has_polyp, found = bool(scored.pair.truth.any()), bool(scored.prediction.any())
            frames += (has_polyp, has_polyp and not found, not has_polyp, found and not has_polyp)
            if over_time is not None:
                over_time.add(scored.prediction)
            # Keep the lowest Dice: push each, drop the best kept; earlier images win ties.
            heapq.heappush(worst, (-float(dice_from_counts(scored.counts)), -index, scored))
            if len(worst) > WORST_COUNT:
                heapq.heappop(worst)
    worst_path = args.worst or Path(f"{segmenter.card.name}-worst.png")
    cases = [scored for *_, scored in sorted(worst, reverse=True)]
    if not cv2.imwrite(str(worst_path), draw_worst(cases)):
        raise OutputError(f"cannot write {worst_path}")

    result = EvaluationResult.from_counts(np.stack(counts))
    report = {
        **asdict(result),
        "seconds_per_image": seconds / result.images,
        "model": segmenter.card.name,
        "backend": segmenter.backend.name,
        "data": str(data),
        "split": Path(split).stem if split else "all",
        "tta": args.tta,
        "threshold": segmenter.threshold,
        **frame_decisions(*frames),
        "decision": {
            "area_fraction": segmenter.decision.area_fraction,
            "threshold": segmenter.decision.threshold,
        },
    }
    if over_time is not None:
        report |= over_time.metrics().to_json()
    print(
        f"{report['model']} on {report['split']} ({result.images} images), {report['backend']} "
        f"{segmenter.backend.precision}, threshold {segmenter.threshold:g}, "
        f"TTA {'on' if args.tta else 'off'}: {report['seconds_per_image']:.3f} s per image"
    )
    for name in SCORE_NAMES:
        print(f"  {LABELS[name]:<10} {report[name]:.4f}")
    print(
        "frames (the app's polyp / no-polyp decision): "
        + "; ".join(
            f"{report[share]:.1%} of {report[count]} {label}"
            for share, count, label in (
                ("frames_missed", "polyp_frames", "polyp frames missed"),
                ("frames_flagged", "polyp_free_frames", "polyp-free frames flagged"),
            )
            if report[count]
        )
    )
    print("published on Kvasir-SEG, for comparison:")
    for source, figures in REFERENCE_FIGURES.items():
        print(f"  {source}: " + ", ".join(f"{LABELS[k]} {v:.4f}" for k, v in figures.items()))
    print(f"worst {len(cases)} by Dice: {worst_path}")
    if over_time is not None:
        print_over_time(report)
    if args.json:
        print(json.dumps(report))


class ClipJudge:
    """Each frame's prediction through the app's tracker, judged against the clip's truth."""

    def __init__(self, truth: list[dict[str, Truth]], frame_rate: float) -> None:
        self.truth = truth
        self.frame_rate = frame_rate
        self.tracker = Tracker(FilterSettings())
        self.outcomes: list[FrameOutcome] = []

    def add(self, prediction: np.ndarray) -> None:
        index = len(self.outcomes)
        if index >= len(self.truth):
            raise PolypviewError(f"the clip has more frames than its ground truth ({index})")
        update = self.tracker.update(prediction, None, index / self.frame_rate)
        boxes = [detection.box for detection in update.detections]
        self.outcomes.append(judge_frame(self.truth[index], boxes, update.alert, prediction))

    def metrics(self) -> VideoMetrics:
        return video_metrics(self.outcomes, self.frame_rate)


def print_over_time(report: dict) -> None:
    latency = report["first_detection_s"]
    sensitivity = report["polyp_sensitivity"]
    print(
        "over time (tracker on): "
        + (
            f"{report['polyp_appearances_detected']} of {report['polyp_appearances']} polyp "
            f"appearances detected ({sensitivity:.0%})"
            if sensitivity is not None
            else "no polyp appears"
        )
        + (
            f"; first detection median {latency['median']:.2f} s, worst {latency['worst']:.2f} s"
            if latency["median"] is not None
            else ""
        )
    )
    events = ", ".join(f"{n} (>= {tau} s)" for tau, n in report["fp_events_per_minute"].items())
    flicker = report["flicker_per_minute"]
    print(
        f"  false-positive events per minute: {events}; flicker "
        + (f"{flicker:.1f} switches per minute of polyp" if flicker is not None else "n/a")
    )


def frame_decisions(polyp: int, missed: int, polyp_free: int, flagged: int) -> dict:
    """Shares of polyp frames the app misses and polyp-free frames it flags (None: no such frame).

    Per-image Dice on a polyp-free frame is all-or-nothing, so these say what Dice cannot."""
    return {
        "polyp_frames": int(polyp),
        "frames_missed": round(missed / polyp, 4) if polyp else None,
        "polyp_free_frames": int(polyp_free),
        "frames_flagged": round(flagged / polyp_free, 4) if polyp_free else None,
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except PolypviewError as error:
        print(f"evaluate: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("evaluate: interrupted", file=sys.stderr)
        return 130
    return 0


def _flip(image: np.ndarray, code: int | None) -> np.ndarray:
    return image if code is None else cv2.flip(image, code)


def _tile(case: Scored) -> np.ndarray:
    image_id, image, truth = case.pair
    height, width = truth.shape
    scale = TILE_SIZE / max(height, width)
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    picture = resize_for_model(image, size)
    for mask, colour in ((truth, TRUTH_COLOUR), (case.prediction, PREDICTION_COLOUR)):
        small = cv2.resize(mask.astype(np.uint8), size[::-1], interpolation=cv2.INTER_NEAREST)
        contours, _ = cv2.findContours(small, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(picture, contours, -1, colour, 2, cv2.LINE_AA)
    tile = np.zeros((TILE_SIZE, TILE_SIZE, 3), np.uint8)
    tile[: size[0], : size[1]] = picture
    dice = float(dice_from_counts(case.counts))
    for text, y in ((f"Dice {dice:.3f}", 18), (image_id[:28], TILE_SIZE - 8)):
        for colour, thickness in (((0, 0, 0), 3), ((255, 255, 255), 1)):
            cv2.putText(tile, text, (6, y), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, thickness)
    return tile


if __name__ == "__main__":
    sys.exit(main())
