"""Offline export: every frame of a clip segmented, annotated and written, none dropped.

The pipeline's lockstep mode does the work (capture -> segment -> overlay, in order); this module
adds the output's safety: checked before any work, written under a partial name, renamed when done.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from polypview.errors import OutputError, PolypviewError
from polypview.overlay import OverlayOptions
from polypview.pipeline import Result, Segment, lockstep_results
from polypview.tracking import Tracker
from polypview.video import ClipWriter, VideoSource


@dataclass(frozen=True)
class ExportSummary:
    output: str
    frames: int
    seconds: float  # wall-clock time the export took
    fps: float  # frames processed per wall-clock second
    frames_with_polyp: int


class ExportCancelled(PolypviewError):
    """The export was cancelled; its partial file has been removed."""


def check_output_path(output: Path, source_path: Path) -> None:
    """Refuse an output that cannot be written, before any work is done."""
    if output.suffix.lower() != ".mp4":
        raise OutputError(f"output must be an .mp4 file: {output}")
    folder = output.parent
    if not folder.exists():
        raise OutputError(f"output folder does not exist: {folder}")
    if not folder.is_dir():
        raise OutputError(f"output folder is not a folder: {folder}")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"output folder is not writable: {folder}")
    if output.is_dir():
        raise OutputError(f"output is a folder: {output}")
    if output.exists() and output.resolve() == source_path.resolve():
        raise OutputError(f"output would overwrite the input: {output}")


def partial_path(output: Path) -> Path:
    return output.with_name(f"{output.stem}.partial.mp4")


def export_annotated(
    source: VideoSource,
    segmenter: Segment,
    output: Path,
    overlay: OverlayOptions,
    on_frame: Callable[[int], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
    *,
    tracker: Tracker | None = None,
    on_result: Callable[[Result, float], None] | None = None,
) -> ExportSummary:
    """Segment and annotate every frame of ``source`` into ``output``.

    The clip is written to ``<stem>.partial.mp4`` and renamed when complete, so a finished file is
    never half-written; the partial file is removed on error, and one left by a killed process still
    plays up to its last second (the writer is crash-safe). ``cancelled`` is asked before each
    frame (from the exporting thread); once it says True the export raises ``ExportCancelled``.
    With ``tracker``, detections and alerts are found as in the app; ``on_result`` sees each
    result with its time in the clip (the batch's detection log and figures).
    """
    check_output_path(output, Path(source.path))
    staging = partial_path(output)
    frames = with_polyp = 0
    first_pts: float | None = None
    started = time.perf_counter()
    try:
        with ClipWriter(
            staging, width=source.width, height=source.height, frame_rate=source.frame_rate
        ) as writer:
            for result in lockstep_results(source, segmenter, overlay, tracker):
                if cancelled is not None and cancelled():
                    raise ExportCancelled(f"export to {output} cancelled")
                first_pts = result.frame.pts if first_pts is None else first_pts
                # The clip starts at zero; the source's spacing of frames is kept exactly.
                writer.write(result.annotated, pts=result.frame.pts - first_pts)
                if on_result is not None:
                    on_result(result, result.frame.pts - first_pts)
                frames += 1
                with_polyp += result.mask is not None and bool(result.mask.any())
                if on_frame is not None:
                    on_frame(frames)
        if frames == 0:
            raise OutputError(f"no frames to export from {source.path} in the chosen time range")
        os.replace(staging, output)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    seconds = time.perf_counter() - started
    return ExportSummary(
        str(output), frames, round(seconds, 3), round(frames / seconds, 2), with_polyp
    )
