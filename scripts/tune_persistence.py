"""Re-tune the persistence filter on clips: false alerts on polyp-free video against delay.

    python scripts/tune_persistence.py --model lite-unet [--backend auto] [--json FILE]

Every frame of each clip is segmented once (lockstep, the model's frame-level decision
included) and the masks are replayed through ``polypview.tracking.Tracker`` under each candidate
``FilterSettings``, with capture times at the clip's frame rate. Polyp-free clips (the 14
sequences of ../shared/data/polypgen-negative/clips; the centre A ones were trained on, the
centre B ones never) give the share of frames alerted and the false-alert events per clip; the
bundled demo clip (mask sidecar) and the real clip (boxes) give the delay from a polyp's first
frame to its first alert and the share of polyp frames alerted.
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
from polypview.tracking import FilterSettings, Tracker
from polypview.video import VideoSource
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
    probabilities: list[np.ndarray]
    truth: list[bool] | None  # whether each frame shows a polyp; None: polyp-free clip


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


def replay(clip: Clip, settings: FilterSettings) -> list[bool]:
    tracker = Tracker(settings)
    return [
        tracker.update(mask, probability, index / clip.frame_rate).alert
        for index, (mask, probability) in enumerate(
            zip(clip.masks, clip.probabilities, strict=True)
        )
    ]


def events(alerts: list[bool]) -> int:
    """Alert onsets: each time the alert goes from off to on."""
    return sum(on and not before for before, on in zip([False, *alerts], alerts, strict=False))


def score(clips: list[Clip], settings: FilterSettings) -> dict:
    negative = [c for c in clips if c.truth is None]
    positive = [c for c in clips if c.truth is not None]
    alerted = [replay(clip, settings) for clip in negative]
    record: dict = {
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
    for clip in positive:
        alerts = replay(clip, settings)
        first_truth = clip.truth.index(True)
        first_alert = next((i for i, on in enumerate(alerts) if on and i >= first_truth), None)
        delay = None if first_alert is None else (first_alert - first_truth) / clip.frame_rate
        found = [on for on, truth in zip(alerts, clip.truth, strict=True) if truth]
        record[f"{clip.name}_first_alert_delay_s"] = None if delay is None else round(delay, 3)
        record[f"{clip.name}_polyp_frames_alerted"] = float(np.mean(found))
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--json", type=Path, help="write every setting's figures here")
    args = parser.parse_args()
    segmenter = Segmenter.open(args.model, args.backend)
    clips = [segment_clip(segmenter, path, None) for path in sorted(NEGATIVE_CLIPS.glob("*.mp4"))]
    demo_truth = [bool(mask.any()) for mask in load_demo_masks(DEMO_CLIP.with_suffix(".masks.npz"))]
    clips.append(segment_clip(segmenter, DEMO_CLIP, demo_truth))
    clips.append(segment_clip(segmenter, REAL_CLIP, real_clip_truth(REAL_CLIP)))
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
