"""Re-tune the persistence filter on clips: false alerts on polyp-free video against delay.

    python scripts/tune_persistence.py --model lite-unet [--backend auto] [--json FILE]
        [--cache MASKS.npz] [--clips negative demo real]

Every frame of each clip is segmented once (lockstep, the model's frame-level decision
included) and the masks are replayed through ``polypview.tracking.Tracker`` under each candidate
``FilterSettings``, with capture times at the clip's frame rate. Polyp-free clips (the 14
sequences of ../shared/data/polypgen-negative/clips; the centre A ones were trained on, the
centre B ones never) give the share of frames alerted and the false-alert events per clip; the
bundled demo clip (mask sidecar) and the real clip (boxes) give the delay from a polyp's first
frame to its first alert and the share of polyp frames alerted.

Each setting is also judged by the video-level metrics (``polypview.video_metrics``, as
``training.evaluate --clip`` reports them): false-positive events per minute of polyp-free video
for tau = 0.5, 1 and 2 s, and on the demo and real clips per-polyp sensitivity (a detection run of
at least 0.5 s starting within 3 s of the polyp's first frame), first-detection latency and
false-positive events. ``--cache FILE.npz`` keeps the masks, so a second run only replays them.
"""

from __future__ import annotations

import argparse
import itertools
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from polypview.segmenter import Segmenter
from polypview.tracking import FilterSettings, Tracker, TrackUpdate
from polypview.video import VideoSource
from polypview.video_metrics import Truth, judge_frame, video_metrics
from training.clip_truth import clip_truth
from training.data import DEFAULT_ROOT
from training.make_demo import load_demo_masks

SHARED = DEFAULT_ROOT.parent
NEGATIVE_CLIPS = SHARED / "polypgen-negative" / "clips"
REAL_CLIP = SHARED / "video" / "polyp_clip_560x480_25fps.mp4"
DEMO_CLIP = Path(__file__).resolve().parents[1] / "assets" / "demo.mp4"
MASK_WIDTH = 320  # masks are kept at this width: the tracker labels at reduced size anyway


@dataclass
class Clip:
    name: str
    frame_rate: float
    masks: list[np.ndarray]  # the app's mask per frame, reduced
    probabilities: list[np.ndarray] | None  # None: read from a cache, which keeps masks only
    truth: list[bool] | None  # whether each frame shows a polyp; None: polyp-free clip
    polyps: list[dict[str, Truth]] | None = None  # the named truth, at the masks' size


def segment_clip(segmenter: Segmenter, path: Path, truth: list[bool] | None) -> Clip:
    masks, probabilities = [], []
    with VideoSource(path) as source:
        frame_rate = float(source.frame_rate)
        for frame in source:
            result = segmenter(frame.image)
            height, width = result.mask.shape
            size = (MASK_WIDTH, round(height * MASK_WIDTH / width))
            masks.append(cv2.resize(result.mask, size, interpolation=cv2.INTER_NEAREST))
            probabilities.append(cv2.resize(result.probability_map, size))
    return Clip(path.stem, frame_rate, masks, probabilities, truth)


def real_clip_truth(path: Path) -> list[bool]:
    boxes = json.loads(path.with_suffix(".boxes.json").read_text())
    return [bool(frame) for frame in boxes["frames"]]


def named_truth(path: Path, mask_shape: tuple[int, int]) -> list[dict[str, Truth]]:
    """The clip's named polyps, scaled to the reduced masks."""
    height, width = mask_shape
    with VideoSource(path) as source:
        scale = width / source.width
    scaled: list[dict[str, Truth]] = []
    for frame in clip_truth(path):
        scaled.append(
            {
                name: cv2.resize(region.astype(np.uint8), (width, height), cv2.INTER_NEAREST) > 0
                if isinstance(region, np.ndarray)
                else tuple(round(v * scale) for v in region)  # type: ignore[misc]
                for name, region in frame.items()
            }
        )
    return scaled


def track(clip: Clip, settings: FilterSettings) -> list[TrackUpdate]:
    tracker = Tracker(settings)
    probabilities = clip.probabilities or [None] * len(clip.masks)
    return [
        tracker.update(mask, probability, index / clip.frame_rate)
        for index, (mask, probability) in enumerate(zip(clip.masks, probabilities, strict=True))
    ]


def replay(clip: Clip, settings: FilterSettings) -> list[bool]:
    return [update.alert for update in track(clip, settings)]


def over_time(clip: Clip, settings: FilterSettings) -> dict:
    """The video-level metrics of ``clip`` under ``settings``."""
    truth = clip.polyps or [{} for _ in clip.masks]
    outcomes = [
        judge_frame(polyps, [d.box for d in update.detections], update.alert, mask)
        for polyps, update, mask in zip(truth, track(clip, settings), clip.masks, strict=True)
    ]
    return video_metrics(outcomes, clip.frame_rate).to_json() | {
        "minutes": len(outcomes) / clip.frame_rate / 60
    }


def events(alerts: list[bool]) -> int:
    """Alert onsets: each time the alert goes from off to on."""
    return sum(on and not before for before, on in zip([False, *alerts], alerts, strict=False))


def score(clips: list[Clip], settings: FilterSettings) -> dict:
    negative = [c for c in clips if c.truth is None]
    positive = [c for c in clips if c.truth is not None]
    alerted = [replay(clip, settings) for clip in negative]
    record: dict = (
        {}
        if not negative
        else {
            "negative_frames_alerted": float(np.mean(np.concatenate(alerted))),
            "false_alerts_per_clip": float(np.mean([events(a) for a in alerted])),
            "negative_frames_alerted_centre_B": float(
                np.mean(
                    np.concatenate(
                        [a for c, a in zip(negative, alerted, strict=True) if "cB" in c.name]
                    )
                )
            ),
        }
    )
    for clip in positive:
        alerts = replay(clip, settings)
        first_truth = clip.truth.index(True)
        first_alert = next((i for i, on in enumerate(alerts) if on and i >= first_truth), None)
        delay = None if first_alert is None else (first_alert - first_truth) / clip.frame_rate
        found = [on for on, truth in zip(alerts, clip.truth, strict=True) if truth]
        record[f"{clip.name}_first_alert_delay_s"] = None if delay is None else round(delay, 3)
        record[f"{clip.name}_polyp_frames_alerted"] = float(np.mean(found))
    return record | video_scores(negative, positive, settings)


def video_scores(negative: list[Clip], positive: list[Clip], settings: FilterSettings) -> dict:
    """False-positive events per minute over all polyp-free clips; per positive clip, its
    sensitivity, first-detection latency and false-positive events."""
    judged = [over_time(clip, settings) for clip in negative]
    minutes = sum(j["minutes"] for j in judged)
    record = {
        f"negative_fp_events_per_min_{tau}": round(
            sum(j["fp_events_per_minute"][tau] * j["minutes"] for j in judged) / minutes, 3
        )
        for tau in (judged[0]["fp_events_per_minute"] if judged else ())
    }
    for clip in positive:
        figures = over_time(clip, settings)
        record[f"{clip.name}_polyp_sensitivity"] = figures["polyp_sensitivity"]
        record[f"{clip.name}_first_detection_median_s"] = figures["first_detection_s"]["median"]
        record[f"{clip.name}_first_detection_worst_s"] = figures["first_detection_s"]["worst"]
        record[f"{clip.name}_fp_events_per_min_0.5"] = figures["fp_events_per_minute"]["0.5"]
        record[f"{clip.name}_flicker_per_min"] = figures["flicker_per_minute"]
    return record


def save_cache(path: Path, clips: list[Clip]) -> None:
    arrays = {}
    for index, clip in enumerate(clips):
        arrays[f"{index}_masks"] = np.packbits(np.stack(clip.masks) > 0, axis=-1)
        arrays[f"{index}_shape"] = np.array(np.stack(clip.masks).shape)
    names = [(c.name, c.frame_rate) for c in clips]
    np.savez_compressed(path, names=json.dumps(names), **arrays)


def load_cache(path: Path) -> list[Clip]:
    clips = []
    with np.load(path) as cache:
        for index, (name, frame_rate) in enumerate(json.loads(str(cache["names"]))):
            width = int(cache[f"{index}_shape"][2])
            masks = np.unpackbits(cache[f"{index}_masks"], axis=-1, count=width).astype(np.uint8)
            clips.append(Clip(name, frame_rate, list(masks * 255), None, None))
    return clips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--json", type=Path, help="write every setting's figures here")
    parser.add_argument("--cache", type=Path, help="masks kept here (.npz): segment only once")
    parser.add_argument(
        "--clips",
        nargs="+",
        choices=("negative", "demo", "real"),
        default=["negative", "demo", "real"],
        help="which clips to segment (default: all; fewer where CPU time is short)",
    )
    args = parser.parse_args()
    segmenter = Segmenter.open(args.model, args.backend)
    paths = sorted(NEGATIVE_CLIPS.glob("*.mp4")) if "negative" in args.clips else []
    positives = [p for name, p in (("demo", DEMO_CLIP), ("real", REAL_CLIP)) if name in args.clips]
    if args.cache is not None and args.cache.is_file():
        clips = load_cache(args.cache)
    else:
        clips = [segment_clip(segmenter, path, None) for path in [*paths, *positives]]
        if args.cache is not None:
            save_cache(args.cache, clips)
    for clip, path in zip(clips[len(clips) - len(positives) :], positives, strict=True):
        if path == DEMO_CLIP:
            clip.truth = [bool(m.any()) for m in load_demo_masks(path.with_suffix(".masks.npz"))]
        else:
            clip.truth = real_clip_truth(path)
        clip.polyps = named_truth(path, clip.masks[0].shape)
    print(
        f"{segmenter.card.name} on {segmenter.backend.name}: "
        f"{sum(len(c.masks) for c in clips if c.truth is None)} polyp-free frames in "
        f"{sum(c.truth is None for c in clips)} clips; demo and real clip"
    )
    rows = []
    for persist, window, hold in itertools.product(
        (1, 2, 3, 4, 5, 6), (6, 8, 10), (0.0, 0.25, 0.5)
    ):
        if persist > window:
            continue
        settings = FilterSettings(persist_frames=persist, window_frames=window, hold_s=hold)
        rows.append(
            {"persist_frames": persist, "window_frames": window, "hold_s": hold}
            | score(clips, settings)
        )
    keys = [k for k in rows[0] if k not in ("persist_frames", "window_frames", "hold_s")]
    print("| k of n | hold s | " + " | ".join(keys) + " |")
    print("|---|---:|" + "---:|" * len(keys))
    for row in rows:
        cells = [f"{row[k]:.3f}" if isinstance(row[k], float) else str(row[k]) for k in keys]
        print(
            f"| {row['persist_frames']} of {row['window_frames']} | {row['hold_s']} | "
            + " | ".join(cells)
            + " |"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {"model": segmenter.card.name, "default": asdict(FilterSettings()), "rows": rows},
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
