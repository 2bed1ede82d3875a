"""``polypview batch --ray`` against a real Ray cluster started here on the loopback address.

The cluster (one node, 2 CPUs, no GPU) is started once for this module with ``ray start`` in a
temporary folder and stopped afterwards, its processes ended by id. Skipped without Ray
(``pip install 'polypview[cluster]'``, which the test extra includes).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest

from polypview.batch.job import PARTIAL_DIR
from polypview.modelfile import ModelCard
from videos import REPO, write_clip

pytest.importorskip("ray")
pytestmark = pytest.mark.slow

RAY = Path(sys.executable).with_name("ray")
START_TIMEOUT_S = 300
BATCH_TIMEOUT_S = 600


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def processes_using(text: str) -> list[int]:
    """Ids of this user's processes whose command line mentions ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                found.append(int(entry.name))
        except OSError:  # ended meanwhile, or not ours
            continue
    return found


def holder_of(path: Path) -> int | None:
    """The id of a process that has ``path`` open."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                if os.readlink(fd) == str(path):
                    return int(entry.name)
        except OSError:
            continue
    return None


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The address of a one-node Ray cluster on 127.0.0.1, stopped when the module ends."""
    temp = tmp_path_factory.mktemp("ray")  # short: Ray's socket paths must stay under 108 bytes
    home = tmp_path_factory.mktemp("home")  # Ray keeps an auth token in ~/.ray: one of our own
    port = free_port()
    env = os.environ | {"PYTHONPATH": str(REPO), "RAY_USAGE_STATS_ENABLED": "0"}
    command = [
        str(RAY), "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
        "--num-cpus", "2", "--num-gpus", "0", "--temp-dir", str(temp),
        "--include-dashboard", "false", "--disable-usage-stats",
    ]  # fmt: skip
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("HOME", str(home))  # for ray start and every batch run in this module
            started = subprocess.run(
                command, env=env | {"HOME": str(home)}, capture_output=True, text=True,
                timeout=START_TIMEOUT_S,
            )  # fmt: skip
            if started.returncode != 0:
                pytest.fail(f"ray start failed:\n{started.stdout}\n{started.stderr}")
            yield f"127.0.0.1:{port}"
    finally:
        for pid in processes_using(str(temp)):
            with contextlib.suppress(ProcessLookupError):  # ended with the others
                os.kill(pid, signal.SIGKILL)


def batch(*argv: object, timeout: float = BATCH_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "polypview", "batch", *map(str, argv), "--json"],
        env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def decoded(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="bgr24") for frame in container.decode(video=0)]


def statuses(run: subprocess.CompletedProcess[str]) -> dict[str, str]:
    summary = json.loads(run.stdout.splitlines()[-1])
    return {video["name"]: video["status"] for video in summary["videos"]}


def test_ray_results_equal_the_single_process_run_and_a_rerun_skips_them(
    ray_cluster: str, stand_in_model: ModelCard, tmp_path: Path
) -> None:
    clips = [
        write_clip(tmp_path / "a.mp4", 12, size=(96, 64)),
        write_clip(tmp_path / "b.mp4", 8, size=(96, 64)),
        tmp_path / "missing.mp4",
    ]
    model = ("--model", stand_in_model.card_path, "--backend", "torch")
    here = batch(*clips, "--out", tmp_path / "here", *model)
    there = batch(*clips, "--out", tmp_path / "there", *model, "--ray", ray_cluster)
    assert there.returncode == here.returncode == 1, there.stderr
    assert statuses(there) == statuses(here) == {"a": "done", "b": "done", "missing": "failed"}
    for name in ("a", "b"):
        log = f"{name}/{name}.detections.jsonl"
        assert (tmp_path / "there" / log).read_text() == (tmp_path / "here" / log).read_text()
        ours, theirs = (decoded(tmp_path / out / name / f"{name}.mp4") for out in ("here", "there"))
        assert len(ours) == len(theirs) and all(map(np.array_equal, ours, theirs))
    again = batch(*clips[:2], "--out", tmp_path / "there", *model, "--ray", ray_cluster)
    assert again.returncode == 0, again.stderr
    assert statuses(again) == {"a": "skipped", "b": "skipped"}


def test_a_worker_killed_mid_video_is_retried_and_its_partial_output_never_final(
    ray_cluster: str, stand_in_model: ModelCard, tmp_path: Path
) -> None:
    frames = 300  # long enough to be caught mid-video on a fast machine
    clip = write_clip(tmp_path / "long.mp4", frames, size=(96, 64))
    out = tmp_path / "out"
    env = os.environ | {"PYTHONPATH": str(REPO)}
    command = [
        sys.executable, "-m", "polypview", "batch", str(clip), "--out", str(out), "--json",
        "--model", str(stand_in_model.card_path), "--backend", "torch", "--ray", ray_cluster,
    ]  # fmt: skip
    log = out / PARTIAL_DIR / "long" / "long.detections.jsonl"
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) as driver:
        deadline = time.monotonic() + BATCH_TIMEOUT_S
        while not (log.exists() and len(log.read_text().splitlines()) >= 5):
            assert driver.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        worker = holder_of(log.absolute())
        assert worker is not None and worker != driver.pid
        os.kill(worker, signal.SIGKILL)  # the worker is lost mid-video
        assert not (out / "long").exists()
        stdout, _ = driver.communicate(timeout=BATCH_TIMEOUT_S)
    assert driver.returncode == 0
    [record] = json.loads(stdout.splitlines()[-1])["videos"]
    assert record["status"] == "done" and record["frames"] == frames
    assert len(decoded(out / "long" / "long.mp4")) == frames
    lines = (out / "long" / "long.detections.jsonl").read_text().splitlines()
    assert [json.loads(line)["frame"] for line in lines[1:]] == list(range(frames))
    assert not (out / PARTIAL_DIR).exists()
