"""The pipeline's wiring with fake sources and segmenters that the test steps by hand.

No test measures time: progress is driven by queues, semaphores and a fake clock, and every wait
has a generous deadline only to turn a deadlock into a failure.
"""

from __future__ import annotations

import itertools
import json
import queue
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from polypview.cli import main
from polypview.errors import VideoError
from polypview.frame import Frame
from polypview.modelfile import ModelCard
from polypview.overlay import OverlayOptions
from polypview.pipeline import Mailbox, Pipeline, Result, Stats, lockstep_results
from polypview.segmenter import Segmentation
from polypview.video import VideoSource

DEADLOCK_GUARD_S = 10.0
HEIGHT, WIDTH = 6, 8
OVERLAY = OverlayOptions(style="fill", opacity=1.0)


def make_frame(index: int, capture_time: float = 0.0) -> Frame:
    """A tiny frame whose pixels all hold its index, so a segmenter can tell which it got."""
    image = np.full((HEIGHT, WIDTH, 3), index % 256, np.uint8)
    return Frame(index, index / 30, image, capture_time)


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLOCK_GUARD_S
    while not condition():
        assert time.monotonic() < deadline, "the pipeline never got there"
        time.sleep(0.001)


class FakeClock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class ScriptedSource:
    """A source the test feeds: each ``read`` takes the next Frame, None (the end) or an error."""

    name = "scripted"
    width, height, fps = WIDTH, HEIGHT, 30.0

    def __init__(self, *items: Frame | Exception | None, live: bool = True) -> None:
        self.live = live
        self.script: queue.Queue[Frame | Exception | None] = queue.Queue()
        self.feed(*items)

    def feed(self, *items: Frame | Exception | None) -> None:
        for item in items:
            self.script.put(item)

    def read(self) -> Frame | None:
        item = self.script.get(timeout=DEADLOCK_GUARD_S)
        if isinstance(item, Exception):
            raise item
        return item

    def close(self) -> None:
        pass


class ReconnectingSource(ScriptedSource):
    """A device that comes back on the attempts whose outcome is True."""

    def __init__(self, *items: Frame | Exception | None, outcomes: list[bool]) -> None:
        super().__init__(*items)
        self.outcomes = iter(outcomes)
        self.attempts = 0
        self.attempted = threading.Event()

    def try_reconnect(self) -> bool:
        self.attempts += 1
        self.attempted.set()
        return next(self.outcomes, False)


class CountingSource:
    """``count`` frames as fast as they are read, counting how many are alive at each read."""

    name = "counting"
    width, height, fps, live = WIDTH, HEIGHT, 30.0, True

    def __init__(self, count: int) -> None:
        self.count = count
        self.produced = 0
        self.alive = 0
        self.most_alive = 0
        self.ended = threading.Event()

    def read(self) -> Frame | None:
        if self.produced == self.count:
            self.ended.set()
            return None
        frame = make_frame(self.produced)
        self.produced += 1
        self.alive += 1  # only the capture thread reads, and finalizers run in the freeing thread
        weakref.finalize(frame.image, self._freed)
        self.most_alive = max(self.most_alive, self.alive)
        return frame

    def _freed(self) -> None:
        self.alive -= 1

    def close(self) -> None:
        pass


class FakeSegmenter:
    """Fills a square in its mask; waits for a permit per call when gated; fails where told."""

    def __init__(self, *, gated: bool = False, fail_on: tuple[int, ...] = ()) -> None:
        self.permits = threading.Semaphore(0) if gated else None
        self.fail_on = fail_on
        self.calls: list[int] = []
        self.started: queue.Queue[int] = queue.Queue()
        self.masks: dict[int, np.ndarray] = {}

    def release(self, calls: int = 1) -> None:
        assert self.permits is not None
        self.permits.release(calls)

    def __call__(self, image: np.ndarray) -> Segmentation:
        index = int(image[0, 0, 0])
        self.calls.append(index)
        self.started.put(index)
        if self.permits is not None:
            assert self.permits.acquire(timeout=DEADLOCK_GUARD_S)
        if index in self.fail_on:
            raise RuntimeError(f"cannot segment frame {index}")
        mask = np.zeros(image.shape[:2], np.uint8)
        mask[1:4, 2:5] = 255
        self.masks[index] = mask
        return Segmentation(mask.astype(np.float32) / 255, mask)

    def next_started(self) -> int:
        return self.started.get(timeout=DEADLOCK_GUARD_S)


class Collector:
    """A sink that keeps every result and lets the test wait for the next one."""

    def __init__(self) -> None:
        self.results: queue.Queue[Result] = queue.Queue()
        self.all: list[Result] = []

    def __call__(self, result: Result) -> None:
        self.all.append(result)
        self.results.put(result)

    def next(self) -> Result:
        return self.results.get(timeout=DEADLOCK_GUARD_S)


# Mailbox


def test_mailbox_keeps_the_newest_item_and_counts_the_overwritten() -> None:
    mailbox: Mailbox[int] = Mailbox()
    assert mailbox.put(1) is False
    assert mailbox.put(2) is True
    assert mailbox.put(3) is True
    assert mailbox.get(timeout=0) == 3
    assert mailbox.get(timeout=0) is None  # nothing new
    assert mailbox.dropped == 2


def test_mailbox_close_wakes_a_waiting_reader_and_drops_the_unread() -> None:
    mailbox: Mailbox[int] = Mailbox()
    got: list[int | None] = []
    reader = threading.Thread(target=lambda: got.append(mailbox.get()))
    reader.start()
    mailbox.close()
    reader.join(DEADLOCK_GUARD_S)
    assert got == [None] and mailbox.closed
    closing: Mailbox[int] = Mailbox()
    closing.put(7)
    closing.close()
    assert closing.get() is None and closing.dropped == 1
    assert closing.put(8) is False and closing.get(timeout=0) is None


def test_mailbox_across_threads_delivers_in_order_and_accounts_for_every_item() -> None:
    mailbox: Mailbox[int] = Mailbox()
    count = 20_000

    def produce() -> None:
        for item in range(count):
            mailbox.put(item)
        mailbox.close()

    producer = threading.Thread(target=produce)
    producer.start()
    received = []
    while (item := mailbox.get(timeout=DEADLOCK_GUARD_S)) is not None:
        received.append(item)
    producer.join(DEADLOCK_GUARD_S)
    assert all(a < b for a, b in itertools.pairwise(received))
    assert len(received) + mailbox.dropped == count


# Live mode


def test_live_shows_every_frame_with_the_newest_finished_mask() -> None:
    segmenter = FakeSegmenter(gated=True)
    sink = Collector()
    source = ScriptedSource(make_frame(0))
    with Pipeline(source, segmenter, overlay=OVERLAY, sinks=[sink], stale_after_s=np.inf):
        first = sink.next()
        assert first.mask is None and first.mask_index is None and not first.stale
        assert segmenter.next_started() == 0  # busy with frame 0 from now on
        source.feed(make_frame(1), make_frame(2), make_frame(3))
        assert [sink.next().mask_index for _ in range(3)] == [None, None, None]
        segmenter.release()  # mask 0 is published; frames 1 and 2 were overwritten by 3
        assert segmenter.next_started() == 3
        source.feed(make_frame(4))
        shown = sink.next()
        assert (shown.frame.index, shown.mask_index) == (4, 0)
        assert shown.mask is segmenter.masks[0] and not shown.stale
        assert (shown.annotated[2, 3] == OVERLAY.colour).all()
        assert (shown.frame.image[2, 3] == 4).all()  # the frame itself is left as it was
        segmenter.release()  # mask 3
        assert segmenter.next_started() == 4
        source.feed(make_frame(5))
        assert sink.next().mask_index == 3
        segmenter.release(100)
        source.feed(None)
    assert segmenter.calls[:2] == [0, 3]
    assert [result.frame.index for result in sink.all] == [0, 1, 2, 3, 4, 5]
    assert sink.all[-1].mask_index == 3


def test_live_hides_a_stale_mask_and_says_so() -> None:
    clock = FakeClock()
    segmenter = FakeSegmenter(gated=True)
    sink = Collector()
    source = ScriptedSource(make_frame(0, clock.now))
    pipeline = Pipeline(
        source, segmenter, overlay=OVERLAY, sinks=[sink], stale_after_s=0.25, clock=clock
    )
    with pipeline:
        sink.next()
        segmenter.release()  # frame 0 -> mask 0, published at once
        wait_until(lambda: pipeline.stats.frames_segmented == 1)
        clock.now = 0.1
        source.feed(make_frame(1, clock.now))
        fresh = sink.next()
        assert fresh.mask is segmenter.masks[0] and not fresh.stale
        clock.now = 1.0  # the segmenter is still busy with frame 1: mask 0 is 1 s old
        source.feed(make_frame(2, clock.now))
        stale = sink.next()
        assert stale.stale and stale.mask is None
        assert (stale.mask_index, stale.mask_capture_time) == (0, 0.0)
        assert np.array_equal(stale.annotated, stale.frame.image)
        assert stale.annotated is not stale.frame.image
        segmenter.release(100)
        source.feed(None)
        assert pipeline.wait(DEADLOCK_GUARD_S)
    figures = pipeline.stats.snapshot()
    assert figures["stale"] == 1 and figures["frames_shown"] == 3
    assert figures["annotation_delay_ms_p50"] == pytest.approx(100)
    assert figures["video_delay_ms_p99"] == 0


def test_live_memory_stays_flat_while_the_segmenter_lags_far_behind() -> None:
    source = CountingSource(5000)
    segmenter = FakeSegmenter(gated=True)
    shown = itertools.count()
    pipeline = Pipeline(source, segmenter, overlay=OVERLAY, sinks=[lambda _: next(shown)])
    with pipeline:
        assert source.ended.wait(DEADLOCK_GUARD_S)
        segmenter.release(100)
        assert pipeline.wait(DEADLOCK_GUARD_S)
    assert next(shown) == 5000  # every frame was shown
    assert len(segmenter.calls) <= 2  # frame 0, and perhaps the last one
    assert source.most_alive <= 5  # capture's frame, the mailbox's, the segmenter's: not 5000
    assert pipeline.stats.dropped >= 5000 - 3


def test_live_reports_a_failing_segmenter_and_keeps_the_video_going() -> None:
    statuses: list[str] = []
    segmenter = FakeSegmenter(fail_on=(0,))
    sink = Collector()
    source = ScriptedSource(make_frame(0))
    with Pipeline(source, segmenter, overlay=OVERLAY, sinks=[sink], on_status=statuses.append):
        sink.next()
        wait_until(lambda: len(statuses) == 1)
        assert statuses == ["segmentation failed: RuntimeError: cannot segment frame 0"]
        source.feed(make_frame(1))
        sink.next()
        wait_until(lambda: len(statuses) == 2)
        assert statuses[1] == "segmentation resumed"
        source.feed(None)
    assert [result.frame.index for result in sink.all] == [0, 1]


def test_a_sink_that_raises_stops_the_pipeline_with_a_report() -> None:
    statuses: list[str] = []

    def broken_sink(result: Result) -> None:
        raise ValueError("sink broke")

    source = ScriptedSource(make_frame(0))
    pipeline = Pipeline(
        source, FakeSegmenter(), overlay=OVERLAY, sinks=[broken_sink], on_status=statuses.append
    )
    with pipeline:
        assert pipeline.wait(DEADLOCK_GUARD_S)
    assert statuses == ["pipeline stopped: ValueError: sink broke"]


# Source failures


@pytest.mark.parametrize("mode", ["live", "lockstep"])
def test_a_source_failing_mid_stream_is_reported_and_ends_the_pipeline(mode: str) -> None:
    statuses: list[str] = []
    sink = Collector()
    source = ScriptedSource(
        make_frame(0), make_frame(1), VideoError("camera unplugged"), make_frame(2), live=False
    )
    pipeline = Pipeline(
        source, FakeSegmenter(), overlay=OVERLAY, mode=mode, sinks=[sink], on_status=statuses.append
    )
    with pipeline:
        assert pipeline.wait(DEADLOCK_GUARD_S)
    assert statuses == ["video lost: camera unplugged"]
    assert pipeline.source_failed
    assert pipeline.last_frame is not None and pipeline.last_frame.index == 1
    assert [result.frame.index for result in sink.all] == [0, 1]


def test_a_live_source_that_fails_is_reconnected() -> None:
    statuses: list[str] = []
    sink = Collector()
    source = ReconnectingSource(
        make_frame(0), VideoError("camera unplugged"), make_frame(1), None, outcomes=[False, True]
    )
    pipeline = Pipeline(
        source,
        FakeSegmenter(),
        overlay=OVERLAY,
        sinks=[sink],
        on_status=statuses.append,
        reconnect_interval_s=0,
    )
    with pipeline:
        assert pipeline.wait(DEADLOCK_GUARD_S)
    assert statuses == [
        "video lost: camera unplugged; reconnecting every 0 s",
        "reconnected to scripted",
        "end of scripted",
    ]
    assert source.attempts == 2 and not pipeline.source_failed
    assert [result.frame.index for result in sink.all] == [0, 1]


def test_stop_ends_a_pipeline_waiting_to_reconnect() -> None:
    source = ReconnectingSource(VideoError("camera unplugged"), outcomes=[])
    pipeline = Pipeline(
        source, FakeSegmenter(), overlay=OVERLAY, on_status=lambda _: None, reconnect_interval_s=0
    )
    pipeline.start()
    assert source.attempted.wait(DEADLOCK_GUARD_S)
    assert pipeline.running and pipeline.source_failed
    pipeline.stop()
    assert not pipeline.running


# Lockstep mode


class ListSource:
    """Frames as fast as they are read, counting the reads."""

    name = "list"
    width, height, fps, live = WIDTH, HEIGHT, 30.0, False

    def __init__(self, count: int) -> None:
        self.frames = iter([make_frame(index) for index in range(count)])
        self.reads = 0

    def read(self) -> Frame | None:
        self.reads += 1
        return next(self.frames, None)

    def close(self) -> None:
        pass


def test_lockstep_segments_every_frame_in_order_with_its_own_mask() -> None:
    source = ListSource(40)
    reads_when_segmenting = []
    segmenter = FakeSegmenter()

    def segment(image: np.ndarray) -> Segmentation:
        reads_when_segmenting.append(source.reads)
        return segmenter(image)

    sink = Collector()
    pipeline = Pipeline(
        source, segment, overlay=OVERLAY, mode="lockstep", sinks=[sink], queue_size=2
    )
    with pipeline:
        assert pipeline.wait(DEADLOCK_GUARD_S)
    assert [result.frame.index for result in sink.all] == list(range(40))
    assert all(result.mask is segmenter.masks[result.frame.index] for result in sink.all)
    assert all(result.mask_index == result.frame.index for result in sink.all)
    assert not any(result.stale for result in sink.all)
    # Bounded read-ahead: the frame segmented, the queue's 2, and one waiting to go in.
    assert all(reads <= index + 4 for index, reads in enumerate(reads_when_segmenting))
    assert pipeline.stats.frames_segmented == 40 and pipeline.stats.dropped == 0


def test_lockstep_stops_on_a_failing_segmenter_with_a_report() -> None:
    statuses: list[str] = []
    sink = Collector()
    pipeline = Pipeline(
        ListSource(10),
        FakeSegmenter(fail_on=(2,)),
        overlay=OVERLAY,
        mode="lockstep",
        sinks=[sink],
        on_status=statuses.append,
    )
    with pipeline:
        assert pipeline.wait(DEADLOCK_GUARD_S)
    assert "segmentation failed: RuntimeError: cannot segment frame 2" in statuses
    assert [result.frame.index for result in sink.all] == [0, 1]


def test_lockstep_results_yields_every_frame_and_passes_errors_on() -> None:
    segmenter = FakeSegmenter()
    results = list(lockstep_results(ListSource(5), segmenter, OVERLAY))
    assert [(r.frame.index, r.mask_index) for r in results] == [(i, i) for i in range(5)]
    assert all(r.mask is segmenter.masks[r.frame.index] for r in results)
    failing = ScriptedSource(make_frame(0), VideoError("file damaged at frame 1"), live=False)
    with pytest.raises(VideoError, match="damaged"):
        list(lockstep_results(failing, segmenter, OVERLAY))


def test_the_tracker_runs_on_each_mask_and_its_detections_travel_with_it() -> None:
    from polypview.tracking import FilterSettings, Tracker

    tracker = Tracker(FilterSettings(persist_frames=1, window_frames=1, min_area_fraction=0))
    results = list(lockstep_results(ListSource(3), FakeSegmenter(), OVERLAY, tracker))
    assert all(result.alert for result in results)
    assert {result.detections[0].box for result in results} == {(2, 1, 5, 4)}
    assert {result.detections[0].track_id for result in results} == {1}


# Stats


def stats_result(capture_time: float, shown_time: float, mask_time: float | None) -> Result:
    frame = make_frame(0, capture_time)
    mask = None if mask_time is None else np.zeros((HEIGHT, WIDTH), np.uint8)
    stale = mask_time is None
    return Result(frame, frame.image, mask, 0, mask_time, stale, (), False, shown_time)


def test_stats_snapshot_on_known_samples() -> None:
    clock = FakeClock()
    stats = Stats(clock, samples=100, window_s=3.0)
    for i in range(100):  # 50 frames/s; video delays 1..100 ms; a mask 40 ms old on every other
        shown = 10 + i * 0.02
        stats.record_shown(
            stats_result(shown - (i + 1) / 1000, shown, shown - 0.04 if i % 2 else None)
        )
    for i in range(20):
        stats.record_segmented(10 + i * 0.1)
    for _ in range(7):
        stats.record_dropped()
    clock.now = 12.0
    figures = stats.snapshot()
    assert figures["video_delay_ms_p50"] == pytest.approx(50.5)
    assert figures["video_delay_ms_p99"] == pytest.approx(99.01)
    assert figures["annotation_delay_ms_p50"] == pytest.approx(40)
    assert figures["annotation_delay_ms_p99"] == pytest.approx(40)
    assert figures["shown_fps"] == pytest.approx(99 / 2.0)
    assert figures["segmented_fps"] == pytest.approx(19 / 2.0)
    assert (figures["dropped"], figures["frames_shown"], figures["frames_segmented"]) == (
        7,
        100,
        20,
    )
    assert figures["stale"] == 50


def test_stats_keep_only_the_last_samples_and_the_recent_window() -> None:
    clock = FakeClock()
    stats = Stats(clock, samples=4, window_s=1.0)
    assert stats.snapshot()["video_delay_ms_p50"] is None
    for i in range(6):
        stats.record_shown(stats_result(0.0, (i + 1) / 1000, None))
    assert stats.snapshot()["video_delay_ms_p50"] == pytest.approx(4.5)  # of 3, 4, 5, 6 ms
    assert stats.snapshot()["annotation_delay_ms_p99"] is None
    clock.now = 5.0  # nothing shown in the last second
    assert stats.snapshot()["shown_fps"] == 0


# The benchmark command


def test_bench_pipeline_command_prints_the_figures(
    capsys: pytest.CaptureFixture[str], stand_in_model: ModelCard
) -> None:
    argv = ["bench", "pipeline", "--source", "synthetic:64x48@30", "--backend", "torch"]
    argv += ["--model", str(stand_in_model.weights_path), "--duration", "0.5", "--json"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "video delay ms" in out and "untrained test stand-in" in out
    figures = json.loads(out.strip().splitlines()[-1])
    keys = {f"{name}_delay_ms_p{q}" for name in ("video", "annotation") for q in (50, 99)}
    keys |= {"shown_fps", "segmented_fps", "dropped", "source", "model", "backend", "device"}
    assert keys <= figures.keys()
    assert figures["frames_shown"] >= 1 and figures["backend"] == "torch"


def test_bench_pipeline_records_and_samples_memory(
    capsys: pytest.CaptureFixture[str], stand_in_model: ModelCard, tmp_path: Path
) -> None:
    argv = ["bench", "pipeline", "--source", "synthetic:64x48@30", "--backend", "torch"]
    argv += ["--model", str(stand_in_model.weights_path), "--duration", "1", "--json"]
    assert main([*argv, "--record", str(tmp_path)]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(figures["samples"]) == 5
    assert all(sample["rss_mb"] > 0 for sample in figures["samples"])
    (recording,) = tmp_path.glob("bench-*.mp4")
    with VideoSource(recording) as video:
        assert sum(1 for _ in video) >= 1
    assert recording.with_suffix(".detections.jsonl").exists()
    assert main([*argv, "--record", str(tmp_path / "missing")]) == 1


# Changes while running (the GUI's model switch, overlay and filter controls)


def test_segmenter_tracker_and_overlay_are_replaced_while_running() -> None:
    from polypview.overlay import OverlayStyle
    from polypview.tracking import FilterSettings, SmoothedSegmenter, Tracker

    first, second = FakeSegmenter(), FakeSegmenter()
    sink = Collector()
    source = ScriptedSource(make_frame(0))
    with Pipeline(source, first, overlay=OVERLAY, sinks=[sink], stale_after_s=np.inf) as pipeline:
        sink.next()
        wait_until(lambda: pipeline.stats.frames_segmented == 1)
        pipeline.replace_segmenter(second)
        source.feed(make_frame(1))
        assert second.next_started() == 1
        wait_until(lambda: pipeline.stats.frames_segmented == 2)
        pipeline.replace_tracker(
            Tracker(FilterSettings(persist_frames=1, window_frames=1, min_area_fraction=0))
        )
        source.feed(make_frame(2))
        assert second.next_started() == 2
        wait_until(lambda: pipeline.stats.frames_segmented == 3)
        source.feed(make_frame(3))
        shown = [sink.next() for _ in range(3)][-1]
        assert (shown.frame.index, shown.mask_index) == (3, 2)
        assert shown.alert and shown.detections[0].box == (2, 1, 5, 4)
        assert (shown.annotated[2, 3] == OVERLAY.colour).all()

        pipeline.overlay = OverlayOptions(style=OverlayStyle.OFF)
        source.feed(make_frame(4))
        plain = sink.next()
        assert plain.mask is not None
        np.testing.assert_array_equal(plain.annotated, plain.frame.image)

        pipeline.replace_tracker(Tracker(FilterSettings(smoothing=0.5)))
        assert isinstance(pipeline.segmenter, SmoothedSegmenter)
        assert pipeline.segmenter.segmenter is second
        pipeline.replace_tracker(None)
        assert pipeline.segmenter is second and pipeline.tracker is None
        source.feed(None)
    assert first.calls == [0]
