"""The embedded engine: a batch's videos one after another in this process, the model loaded once.

Each video runs through ``run_job`` (lockstep: every frame segmented, in order), so the only state
carried from one video to the next is the loaded model; each video gets a tracker of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from polypview.batch.job import JobSettings, run_job
from polypview.batch.plan import VideoJob
from polypview.batch.summary import VideoRecord
from polypview.segmenter import Segmenter


def run_embedded(
    jobs: Sequence[VideoJob],
    settings: JobSettings,
    on_frame: Callable[[], None],
    on_done: Callable[[VideoRecord], None],
) -> None:
    """Run every job here, in order; ``on_done`` gets each record as its video finishes."""
    if not jobs:
        return
    segmenter = Segmenter.open(settings.model, settings.backend)
    for job in jobs:
        on_done(run_job(job, segmenter, settings, on_frame=lambda _: on_frame()))
