"""What a batch shows while it runs: one overall bar (frames, with videos in its postfix, and the
ETA from frames) and a line per finished video, both on stderr.

The bar's total is the frames the containers say they hold; a video that fails takes its frames
not processed back out of it. Frames count as they are segmented here, and all at once when a
worker elsewhere (Ray) reports its video finished.
"""

from __future__ import annotations

import sys

from tqdm import tqdm

from polypview.batch.summary import VideoRecord


class BatchProgress:
    def __init__(self, videos: int, frames: int | None) -> None:
        self.videos = videos
        self.finished = 0
        self._counted = 0  # frames of the videos in flight already shown (this process's)
        # disable=None: a bar on a terminal, nothing in logs and pipes; the lines always print.
        self._bar = tqdm(
            total=frames, unit="frame", file=sys.stderr, disable=None, dynamic_ncols=True
        )
        self._bar.set_postfix_str(self._videos_done())

    def frame(self) -> None:
        self._counted += 1
        self._bar.update()

    def video_done(self, record: VideoRecord, planned_frames: int | None) -> None:
        self.finished += 1
        processed = record.frames if record.status == "done" else self._counted  # failed
        self._bar.update(max(0, processed - self._counted))
        if planned_frames is not None and self._bar.total is not None:
            self._bar.total = max(self._bar.n, self._bar.total - planned_frames + processed)
        self._counted = 0
        self._bar.set_postfix_str(self._videos_done())
        self._bar.write(describe(record), file=sys.stderr)

    def close(self) -> None:
        self._bar.close()

    def _videos_done(self) -> str:
        return f"{self.finished}/{self.videos} videos"


def describe(record: VideoRecord) -> str:
    """One line for a finished (or failed, or skipped) video."""
    if record.status == "failed":
        return f"failed  {record.name}: {record.reason}"
    figures = (
        f"{record.frames} frames, {record.seconds:.1f} s of video, "
        f"{record.tracks} track{'s' * (record.tracks != 1)}, "
        f"{record.alerts_per_minute:g} alerts/min"
    )
    if record.status == "skipped":
        return f"skipped {record.name}: done before ({figures})"
    return f"done    {record.name}: {figures}, {record.processing_fps:.1f} frames/s"
