"""What a batch did to each video, as one record per video, written as CSV and JSON.

A record is what a finished video's done marker holds, what a worker sends back, and a row of
``DIR/summary.csv`` / an entry of ``DIR/summary.json``. Both summaries are written beside their
final names and renamed, so a reader never sees half of one.
"""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

from polypview.errors import OutputError

Status = Literal["done", "skipped", "failed", "not run"]
SUMMARY_CSV = "summary.csv"
SUMMARY_JSON = "summary.json"


@dataclass(frozen=True, slots=True)
class VideoRecord:
    """One video's outcome. ``done``: finished by this run; ``skipped``: finished by an earlier
    run (its figures are from then); ``failed``: ``reason`` says why in one line; ``not run``: the
    batch was interrupted first."""

    name: str
    video: str
    status: Status
    frames: int = 0
    seconds: float = 0.0  # the video's playing time
    processing_seconds: float = 0.0
    processing_fps: float = 0.0
    frames_with_polyp: int = 0
    tracks: int = 0  # polyps found: tracks that passed the persistence filter
    alerts: int = 0  # times the alert came on
    alerts_per_minute: float = 0.0  # of video
    reason: str = ""
    host: str = ""  # the machine that processed it

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> VideoRecord:
        known = {field.name for field in fields(cls)}
        return cls(**{key: value for key, value in record.items() if key in known})


def totals(records: Sequence[VideoRecord]) -> dict[str, Any]:
    """Counts by status and the sums a reader looks for first."""
    finished = [record for record in records if record.status in ("done", "skipped")]
    processed = [record for record in records if record.status == "done"]
    busy = sum(record.processing_seconds for record in processed)
    return {
        "videos": len(records),
        **{status: count for status, count in Counter(r.status for r in records).items()},
        "frames": sum(record.frames for record in finished),
        "seconds": round(sum(record.seconds for record in finished), 3),
        "tracks": sum(record.tracks for record in finished),
        "alerts": sum(record.alerts for record in finished),
        "frames_processed_here": sum(record.frames for record in processed),
        "worker_seconds": round(busy, 3),
    }


def write_summary(
    out_dir: Path, records: Sequence[VideoRecord], about: dict[str, Any]
) -> dict[str, Any]:
    """``DIR/summary.csv`` and ``DIR/summary.json``; returns what the JSON holds."""
    summary = about | {
        "totals": totals(records),
        "videos": [record.to_json() for record in records],
    }
    columns = [field.name for field in fields(VideoRecord)]
    _write_atomically(out_dir / SUMMARY_JSON, lambda f: json.dump(summary, f, indent=1))
    _write_atomically(
        out_dir / SUMMARY_CSV,
        lambda f: _write_csv(f, columns, [record.to_json() for record in records]),
    )
    return summary


def _write_csv(stream: Any, columns: list[str], rows: list[dict[str, Any]]) -> None:
    writer = csv.DictWriter(stream, columns)
    writer.writeheader()
    writer.writerows(rows)


def _write_atomically(path: Path, write: Any) -> None:
    staging = path.with_name(f".{path.name}.partial")
    try:
        with staging.open("w", encoding="utf-8", newline="") as stream:
            write(stream)
        os.replace(staging, path)
    except OSError as error:
        staging.unlink(missing_ok=True)
        raise OutputError(f"cannot write {path}: {error.strerror}") from None
