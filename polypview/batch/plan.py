"""Which videos a batch covers, and the folder each one's outputs go to.

Inputs are video files, folders (searched, subfolders included, for video files) and list files
(``.txt``: one path a line, relative to the list's folder; blank lines and ``#`` comments
skipped). A path that does not exist is kept as a job: it fails in the summary with its reason,
like any broken video, instead of stopping the batch.

Each video's outputs go to ``DIR/<name>/``, ``<name>`` being its file name without the suffix; two
videos of one name (``day1/scope.mp4``, ``day2/scope.mp4``) get the first 8 hex digits of a hash of
their full path appended, so each keeps its folder from run to run.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import av

from polypview.errors import PolypviewError

VIDEO_SUFFIXES = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm", ".mpg", ".mpeg", ".ts", ".mts", ".wmv"}
)
LIST_SUFFIXES = frozenset({".txt", ".lst"})


@dataclass(frozen=True, slots=True)
class VideoJob:
    """One video of the batch: where it is, and the name of its folder in the output folder."""

    video: Path
    name: str
    out_dir: Path

    @property
    def folder(self) -> Path:
        """``DIR/<name>/``: present only once the video is finished (``polypview.batch.job``)."""
        return self.out_dir / self.name


def find_videos(inputs: Sequence[Path], out_dir: Path) -> list[Path]:
    """The videos ``inputs`` name, in the order given, each once; none from inside ``out_dir``."""
    found: dict[Path, None] = {}  # an ordered set
    for path in _expanded(inputs):
        absolute = Path(os.path.normpath(path.absolute()))  # day2/../day1/a.mp4 is day1/a.mp4
        if not absolute.resolve().is_relative_to(out_dir.resolve()):
            found.setdefault(absolute)
    if not found:
        shown = ", ".join(str(path) for path in inputs)
        raise PolypviewError(f"no videos found in {shown}")
    return list(found)


def plan_jobs(videos: Sequence[Path], out_dir: Path) -> list[VideoJob]:
    """A job per video, named by its file name, with a path hash where two names collide."""
    counts = Counter(video.stem for video in videos)
    return [
        VideoJob(
            video,
            video.stem if counts[video.stem] == 1 else f"{video.stem}-{_path_hash(video)}",
            out_dir,
        )
        for video in videos
    ]


def frame_count(video: Path) -> int | None:
    """The frames the container says it holds, for the progress bar's ETA; None when it cannot
    say (a broken video is reported when its job runs, not here)."""
    try:
        with av.open(str(video)) as container:
            if not container.streams.video:
                return None
            stream = container.streams.video[0]
            if stream.frames:
                return stream.frames
            if stream.duration and stream.time_base and stream.average_rate:
                return round(stream.duration * stream.time_base * stream.average_rate)
            return None
    except (av.FFmpegError, OSError):
        return None


def _expanded(inputs: Iterable[Path]) -> Iterable[Path]:
    for path in inputs:
        if path.is_dir():
            yield from sorted(
                found
                for found in path.rglob("*")
                if found.suffix.lower() in VIDEO_SUFFIXES and found.is_file()
            )
        elif path.suffix.lower() in LIST_SUFFIXES:
            yield from _listed(path)
        else:
            yield path


def _listed(list_file: Path) -> list[Path]:
    try:
        lines = list_file.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise PolypviewError(f"list of videos not found: {list_file}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise PolypviewError(f"cannot read the list of videos {list_file}: {error}") from None
    entries = [line.strip() for line in lines]
    listed = [list_file.parent / entry for entry in entries if entry and not entry.startswith("#")]
    return list(_expanded(listed))


def _path_hash(video: Path) -> str:
    return hashlib.sha1(str(video.absolute()).encode()).hexdigest()[:8]
