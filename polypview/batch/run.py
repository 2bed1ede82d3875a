"""A batch, wired in one place: plan the videos, skip the finished, run the rest on one engine,
write the summary.

A rerun with the same output folder skips every video with a done marker and retries the others
(failed, interrupted or new ones). One batch at a time per output folder: its partial folder
(``DIR/.partial``) is cleared when a batch starts and when it ends.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from polypview.batch.job import PARTIAL_DIR, JobSettings, finished_record
from polypview.batch.plan import find_videos, frame_count, plan_jobs
from polypview.batch.progress import BatchProgress, describe
from polypview.batch.summary import VideoRecord, write_summary
from polypview.errors import OutputError
from polypview.modelfile import find_model, load_network

EMBEDDED = "embedded"


def run_batch(
    inputs: Sequence[Path],
    out_dir: Path,
    settings: JobSettings,
    ray_address: str | None = None,
    actors: int | None = None,
) -> dict[str, Any]:
    """Process every video ``inputs`` name into ``out_dir``; returns the summary written there.

    Without ``ray_address`` the videos run here, one after another; with it, on that Ray cluster
    (``local``: one started here). A video that fails is recorded and the others go on; Ctrl-C
    records what was finished and leaves no partial output under a final name.
    """
    if ray_address is not None:
        from polypview.batch.cluster import import_ray

        import_ray()  # without the cluster extra: one line, before any work
    out_dir = out_dir.absolute()  # workers elsewhere (Ray) do not share this working folder
    _prepare(out_dir)
    card = find_model(settings.model)
    load_network(card)  # a missing or broken model is one line here, before any video
    settings = replace(settings, model=str(card.card_path.absolute()))
    jobs = plan_jobs(find_videos(inputs, out_dir), out_dir)
    records: dict[str, VideoRecord] = {}
    for job in jobs:
        if (done := finished_record(job)) is not None:
            records[job.name] = replace(done, status="skipped")
            print(describe(records[job.name]), file=sys.stderr)
    todo = [job for job in jobs if job.name not in records]
    planned = {job.name: frame_count(job.video) for job in todo}
    known = [frames for frames in planned.values() if frames is not None]
    progress = BatchProgress(len(todo), sum(known) if len(known) == len(todo) else None)

    def finished(record: VideoRecord) -> None:
        records[record.name] = record
        progress.video_done(record, planned[record.name])

    about = {
        "out_dir": str(out_dir),
        "engine": EMBEDDED if ray_address is None else f"ray:{ray_address}",
        "model": card.name,
        "model_file": settings.model,
        "backend": settings.backend,
    }
    try:
        if ray_address is None:
            from polypview.batch.embedded import run_embedded

            run_embedded(todo, settings, progress.frame, finished)
        else:
            from polypview.batch.cluster import run_on_ray

            run_on_ray(todo, settings, ray_address, finished, actors)
    finally:
        progress.close()
        shutil.rmtree(out_dir / PARTIAL_DIR, ignore_errors=True)
        ordered = [
            records.get(job.name) or VideoRecord(job.name, str(job.video), "not run")
            for job in jobs
        ]
        summary = write_summary(out_dir, ordered, about)
    return summary


def _prepare(out_dir: Path) -> None:
    """The output folder, created if needed; what a killed batch left half-written, removed."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"--out is not a folder: {out_dir}") from None
    except OSError as error:
        raise OutputError(f"cannot create the output folder {out_dir}: {error.strerror}") from None
    shutil.rmtree(out_dir / PARTIAL_DIR, ignore_errors=True)
