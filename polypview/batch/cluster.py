"""The Ray engine: a batch's videos as tasks on a pool of actors, each with the model loaded once.

Ray's batch-inference shape: ``VideoAnnotator.__init__`` loads the model, ``annotate`` runs one
video through ``run_job`` (the embedded engine's function) and returns its record. An actor
reserves one GPU where the cluster has GPUs, one CPU otherwise, and there are as many actors as
that allows (at most one per video). Placement, restarts and retries are Ray's: a worker process
that dies mid-video is restarted (``MAX_RESTARTS``) and the video retried on it
(``MAX_TASK_RETRIES``); the attempt starts by clearing the dead one's partial folder, and only a
finished folder is ever renamed to its final name. A video whose worker is lost for good fails
in the summary, and the rest go on.

Inputs, the output folder and the model file must be at paths every node sees (shared storage),
and every node needs polypview installed; ``local`` starts a Ray instance on this machine.

Ray is an optional extra (``pip install 'polypview[cluster]'``): this module is imported only for
``--ray``, and imports Ray only when called.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from polypview.batch.job import JobSettings, run_job
from polypview.batch.plan import VideoJob
from polypview.batch.summary import VideoRecord
from polypview.errors import PolypviewError
from polypview.segmenter import Segmenter

LOCAL = "local"
MAX_RESTARTS = 3  # an actor whose process dies is started again up to this many times
MAX_TASK_RETRIES = 3  # and the video it was on is retried on it up to this many times
RAY_MISSING = "--ray needs Ray, an optional extra: pip install 'polypview[cluster]'"
PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder polypview is imported from


class VideoAnnotator:
    """A Ray actor's body: the model loaded once, then one video per ``annotate`` call."""

    def __init__(self, settings: JobSettings) -> None:
        self.settings = settings
        self.segmenter = Segmenter.open(settings.model, settings.backend)

    def annotate(self, job: VideoJob) -> VideoRecord:
        return run_job(job, self.segmenter, self.settings)


def import_ray() -> ModuleType:
    """Ray, or one line saying how to install it."""
    try:
        import ray
    except ImportError:
        raise PolypviewError(RAY_MISSING) from None
    return ray


def run_on_ray(
    jobs: Sequence[VideoJob],
    settings: JobSettings,
    address: str,
    on_done: Callable[[VideoRecord], None],
    actors: int | None = None,
) -> None:
    """Run every job on the Ray cluster at ``address`` (``local``: start one here); ``on_done``
    gets each record as its video finishes, in the order they finish."""
    ray = import_ray()
    _connect(ray, address)
    try:
        if jobs:
            _dispatch(ray, jobs, settings, on_done, actors)
    finally:
        ray.shutdown()


def _connect(ray: ModuleType, address: str) -> None:
    quiet: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
    try:
        if address == LOCAL:
            # The workers import this very polypview, whether installed or run from a checkout.
            path = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")]))
            runtime_env = {"env_vars": {"PYTHONPATH": path}}
            ray.init(include_dashboard=False, runtime_env=runtime_env, **quiet)
        else:
            ray.init(address=address, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as error:
        where = "start Ray on this machine" if address == LOCAL else f"reach Ray at {address}"
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise PolypviewError(f"cannot {where}: {reason}") from None


def _dispatch(
    ray: ModuleType,
    jobs: Sequence[VideoJob],
    settings: JobSettings,
    on_done: Callable[[VideoRecord], None],
    actors: int | None,
) -> None:
    """Keep every actor busy with one video until all are done; a lost actor leaves the pool."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    reserve = {"num_gpus": 1} if gpus else {"num_cpus": 1}
    count = min(len(jobs), actors or gpus or max(1, int(resources.get("CPU", 1))))
    remote = ray.remote(max_restarts=MAX_RESTARTS, max_task_retries=MAX_TASK_RETRIES)
    annotator = remote(VideoAnnotator).options(**reserve)
    pool = [annotator.remote(settings) for _ in range(count)]
    idle = list(pool)
    waiting = deque(jobs)
    running: dict[Any, tuple[VideoJob, Any]] = {}
    lost = ""
    try:
        while waiting or running:
            while idle and waiting:
                actor, job = idle.pop(), waiting.popleft()
                running[actor.annotate.remote(job)] = (job, actor)
            if not running:  # every actor is lost: the rest cannot run
                for job in waiting:
                    on_done(_failed(job, f"no Ray workers left ({lost})"))
                return
            [ready], _ = ray.wait(list(running), num_returns=1)
            job, actor = running.pop(ready)
            try:
                record = ray.get(ready)
            except ray.exceptions.RayActorError as error:
                lost = f"worker lost after {MAX_TASK_RETRIES} retries: {_first_line(error)}"
                record = _failed(job, lost)
            except ray.exceptions.RayError as error:
                record = _failed(job, f"Ray failed: {_first_line(error)}")
                idle.append(actor)
            else:
                idle.append(actor)
            on_done(record)
    finally:
        for actor in pool:
            ray.kill(actor)


def _failed(job: VideoJob, reason: str) -> VideoRecord:
    return VideoRecord(job.name, str(job.video), "failed", reason=reason)


def _first_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
