"""The ``polypview`` command: the window, and export, info and benchmarks as subcommands.

``polypview`` alone, with a video or with ``--device``, opens the desktop window; PyQt6 is
imported only then (``polypview.gui``), so the subcommands run where Qt cannot.

Every failure a user can cause (a bad file, a missing model, a full disk) ends as one line on
stderr and a non-zero exit; tracebacks are for ``POLYPVIEW_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from polypview import __version__
from polypview.errors import PolypviewError

if TYPE_CHECKING:
    from polypview.modelfile import ModelCard

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130
FRAME_STAGE_LABELS = ("upload", "pre", "infer", "post", "download")
COMMANDS = ("export", "report", "batch", "info", "bench")
WINDOW_USAGE = (
    "polypview [SOURCE] [--device N|PATH|NAME] [--model NAME|PATH] [--backend NAME] "
    "[--screenshot FILE [--after S]]"
)


def build_parser() -> argparse.ArgumentParser:
    from polypview.backends import backend_names
    from polypview.nets import model_names

    backends = ["auto", *backend_names()]
    parser = argparse.ArgumentParser(
        prog="polypview",
        description="Polyp segmentation overlaid on colonoscopy video.",
        epilog=f"Without a command, polypview opens its window: {WINDOW_USAGE} "
        "(polypview SOURCE --help says more).",
    )
    parser.add_argument("--version", action="version", version=f"polypview {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    export = commands.add_parser("export", help="segment every frame of a video into an mp4")
    export.add_argument("input", type=Path, help="video file or folder of images")
    export.add_argument("-o", "--output", type=Path, required=True, help="annotated .mp4 to write")
    export.add_argument("--model", help="installed model name or path to its .safetensors/.json")
    export.add_argument("--backend", default="auto", choices=backends)
    export.add_argument("--style", default="contour", choices=["contour", "fill", "box"])
    export.add_argument("--colour", "--color", default="#00ff00", help="overlay colour: #rrggbb")
    export.add_argument("--threshold", type=float, help="mask threshold (default: the model's)")
    export.add_argument(
        "--min-area",
        type=float,
        default=0.0,
        metavar="PERCENT",
        help="drop regions smaller than this share of the frame (default: keep all)",
    )
    export.add_argument("--start", type=float, default=0.0, metavar="SEC")
    export.add_argument("--end", type=float, metavar="SEC")
    export.add_argument("--json", action="store_true", help="end with one JSON summary line")

    report = commands.add_parser(
        "report",
        help="a procedure report (HTML): detection tracks, alerts and key frames of a video",
        description="Report on a video: segmented here with the tracker on, or, for a polypview "
        "recording (its .detections.jsonl beside it), read from its log.",
    )
    report.add_argument("input", type=Path, help="video file or polypview recording")
    report.add_argument(
        "-o", "--output", type=Path, help="report to write (default: INPUT.report.html beside it)"
    )
    report.add_argument("--model", help="installed model name or path (videos, not recordings)")
    report.add_argument("--backend", default="auto", choices=backends)
    report.add_argument("--json", action="store_true", help="end with the report as one JSON line")

    batch = commands.add_parser(
        "batch",
        help="annotate many videos into a folder, here or across a Ray cluster",
        description="Each video gets DIR/<name>/ with its annotated mp4 and detection log; DIR "
        "gets summary.csv and summary.json. A rerun skips finished videos and retries the rest.",
    )
    batch.add_argument(
        "inputs", nargs="+", type=Path, metavar="INPUT", help="video, folder, or .txt list"
    )
    batch.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    batch.add_argument("--report", action="store_true", help="also write each video's report")
    batch.add_argument("--model", help="installed model name or path to its .safetensors/.json")
    batch.add_argument("--backend", default="auto", choices=backends)
    batch.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="run on the Ray cluster at ADDRESS (host:port), or 'local' (the default): one "
        "started here; needs pip install 'polypview[cluster]'",
    )
    batch.add_argument("--json", action="store_true", help="end with the summary as one JSON line")

    info = commands.add_parser(
        "info", help="versions, backends, installed models and capture devices"
    )
    info.add_argument("--json", action="store_true")
    info.add_argument(
        "--no-timing",
        action="store_true",
        help="do not time the models here (so no 'fastest'; a few seconds quicker)",
    )

    bench = commands.add_parser("bench", help="benchmarks that print figures")
    what = bench.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    inference = what.add_parser("inference", help="batch-1 latency per model and backend")
    inference.add_argument(
        "--models",
        nargs="+",
        default=model_names(),
        metavar="MODEL",
        help="architectures (the installed model of each, or an untrained stand-in) or model "
        f"files; default: {' '.join(model_names())}",
    )
    inference.add_argument("--backends", nargs="+", default=backend_names(), help="or: all")
    inference.add_argument("--runs", type=int, default=30)
    inference.add_argument("--json", action="store_true")
    pipeline = what.add_parser("pipeline", help="live video and annotation delay from a source")
    pipeline.add_argument(
        "--source",
        required=True,
        help="video file (played in real time), device:N, device:NAME, rtsp://... or "
        "synthetic:WxH@FPS",
    )
    pipeline.add_argument(
        "--model",
        help="installed model name or path (default: the default model, or an untrained "
        "stand-in of its architecture, which times the same)",
    )
    pipeline.add_argument("--backend", default="auto", choices=backends)
    pipeline.add_argument("--duration", type=float, default=10.0, metavar="S")
    pipeline.add_argument("--record", type=Path, metavar="DIR", help="also record, as the app")
    pipeline.add_argument(
        "--samples", type=int, default=5, metavar="N", help="memory and delay samples over the run"
    )
    pipeline.add_argument("--json", action="store_true")
    return parser


def run_export(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from polypview.export import check_output_path, export_annotated
    from polypview.overlay import OverlayOptions, parse_colour
    from polypview.segmenter import Segmenter
    from polypview.video import VideoSource

    if args.threshold is not None and not 0 < args.threshold < 1:
        raise PolypviewError(f"--threshold must lie between 0 and 1, got {args.threshold}")
    if not 0 <= args.min_area < 100:
        raise PolypviewError(
            f"--min-area must lie between 0 and 100 (percent), got {args.min_area}"
        )
    try:
        overlay = OverlayOptions(style=args.style, colour=parse_colour(args.colour))
    except ValueError as error:
        raise PolypviewError(f"--colour: {error}") from None
    with VideoSource(args.input, start=args.start, end=args.end) as source:
        check_output_path(args.output, args.input)
        segmenter = Segmenter.open(
            args.model,
            args.backend,
            threshold=args.threshold,
            min_area_fraction=args.min_area / 100,
        )
        total = source.frame_count
        if total is not None and (args.start or args.end is not None):
            end = args.end if args.end is not None else source.duration or 0
            total = max(0, round((end - args.start) * source.fps))
        # disable=None: a progress bar on a terminal, nothing in logs and pipes.
        with tqdm(total=total, unit="frame", file=sys.stderr, disable=None, leave=False) as bar:
            summary = export_annotated(
                source, segmenter, args.output, overlay, on_frame=lambda _: bar.update()
            )
    print(
        f"{summary.frames} frames in {summary.seconds:.1f} s ({summary.fps:.1f} frames/s), "
        f"{summary.frames_with_polyp} with a polyp; model {segmenter.card.name} on "
        f"{segmenter.backend.name}; wrote {summary.output}"
    )
    if args.json:
        record = asdict(summary) | {
            "model": segmenter.card.name,
            "backend": segmenter.backend.name,
        }
        print(json.dumps(record))


def run_report(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from polypview.procedure import is_recording, make_procedure
    from polypview.report import check_report_path, default_report_path, write_report

    output = args.output or default_report_path(args.input)
    check_report_path(output)
    if args.model and args.input.is_file() and is_recording(args.input):
        print("polypview: --model is ignored: a recording's log is read", file=sys.stderr)

    with tqdm(unit="frame", file=sys.stderr, disable=None, leave=False) as bar:

        def on_progress(done: int, total: int | None) -> None:
            bar.total = total
            bar.update(done - bar.n)

        procedure = make_procedure(args.input, args.model, args.backend, on_progress)
    write_report(procedure, output)
    print(
        f"{procedure.frames} frames ({procedure.duration_s:.1f} s): {len(procedure.tracks)} "
        f"tracks, {procedure.alerts} alerts ({procedure.alerts_per_minute:.1f} per minute); "
        f"wrote {output}"
    )
    if args.json:
        print(json.dumps(procedure.to_json()))


def run_batch(args: argparse.Namespace) -> int:
    from polypview.batch.job import JobSettings
    from polypview.batch.run import run_batch as run

    settings = JobSettings(model=args.model, backend=args.backend, report=args.report)
    summary = run(args.inputs, args.out, settings, ray_address=args.ray)
    totals = summary["totals"]
    counts = ", ".join(
        f"{totals[status]} {status}" for status in ("done", "skipped", "failed") if status in totals
    )
    print(
        f"{totals['videos']} videos ({counts}), {totals['frames']} frames, "
        f"{totals['tracks']} tracks; summary in {args.out / 'summary.csv'}"
    )
    if args.json:
        print(json.dumps(summary))
    return EXIT_ERROR if totals.get("failed") else 0


def model_info(card: ModelCard, choice: tuple[str | None, dict[str, str]]) -> dict:
    """The card, the backend ``auto`` runs it on, and why faster usable ones were passed over."""
    from polypview.backends import status

    chosen, passed_over = choice
    return card.to_json() | {
        "auto_backend": chosen,
        "auto_passed_over": {
            name: reason for name, reason in passed_over.items() if status(name).available
        },
    }


# The frame ``info`` times each model on: a common capture size.
TIMING_FRAME = (480, 640)
TIMING_RUNS = 5


def time_model(card: ModelCard) -> dict:
    """Median milliseconds per 640x480 frame here, on the backend ``auto`` picks for ``card``."""
    import numpy

    from polypview.segmenter import Segmenter

    segmenter = Segmenter.open(str(card.weights_path))
    frame = numpy.random.default_rng(0).integers(0, 256, (*TIMING_FRAME, 3), numpy.uint8)
    segmenter(frame)  # warm-up: first-call allocation and compilation
    seconds = []
    for _ in range(TIMING_RUNS):
        started = time.perf_counter()
        segmenter(frame)
        seconds.append(time.perf_counter() - started)
    return {"ms": round(1000 * statistics.median(seconds), 1), "backend": segmenter.backend.name}


def rank_models(models: list[dict]) -> dict:
    """Which installed model is most accurate (test120 Dice) and which fastest here (timed)."""
    scored = [m for m in models if isinstance(m["metrics"].get("test120"), dict)]
    timed = [m for m in models if m.get("timing")]
    best = max(scored, key=lambda m: m["metrics"]["test120"].get("dice", -1), default=None)
    fastest = min(timed, key=lambda m: m["timing"]["ms"], default=None)
    return {
        "most_accurate": best and best["name"],
        "fastest": fastest and fastest["name"],
    }


def collect_info(timing: bool = True) -> dict:
    import cv2
    import numpy
    import torch

    from polypview.backends import auto_choice, backend_names, status
    from polypview.modelfile import MODELS_DIR, installed_models
    from polypview.sources import list_devices

    try:  # video needs it, but info and the inference benchmark run without (GPU hosts)
        import av

        av_version = av.__version__
    except ImportError:
        av_version = "not installed"
    models = []
    for card in installed_models():
        record = model_info(card, auto_choice(card))
        if timing and record["auto_backend"]:
            try:
                record["timing"] = time_model(card)
            except PolypviewError as error:  # a broken model: info still reports the rest
                record["timing_error"] = str(error)
        models.append(record)
    return {
        "polypview": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {
            "torch": torch.__version__,
            "av": av_version,
            "opencv": cv2.__version__,
            "numpy": numpy.__version__,
        },
        "models_dir": str(MODELS_DIR),
        "models": models,
        **rank_models(models),
        "backends": [asdict(status(name)) for name in backend_names()],
        "devices": [asdict(device) for device in list_devices()],
    }


def run_info(args: argparse.Namespace) -> None:
    from polypview.sources import DeviceInfo, describe_devices

    info = collect_info(timing=not args.no_timing)
    if args.json:
        print(json.dumps(info))
        return
    print(f"polypview {info['polypview']} on Python {info['python']}, {info['platform']}")
    print("  " + ", ".join(f"{name} {version}" for name, version in info["versions"].items()))
    print("backends:")
    for backend in info["backends"]:
        mark = "yes" if backend["available"] else "no "
        print(f"  {mark} {backend['name']:<13} {backend['reason']}")
    print(f"models in {info['models_dir']}:")
    if not info["models"]:
        print("  no trained weights are installed yet (see training/ to train them)")
    for card in info["models"]:
        timing = card.get("timing")
        print(
            f"  {card['name']:<10} {card['architecture']:<10} {card['status']}, "
            f"auto runs it on {card['auto_backend'] or 'nothing usable'}"
            + (f", {timing['ms']} ms per 640x480 frame here" if timing else "")
        )
        for name, reason in card["auto_passed_over"].items():
            print(f"    not {name}: {reason}")
        for split, figures in card["metrics"].items():
            shown = (
                figures
                if not isinstance(figures, dict)
                else ", ".join(f"{name} {value}" for name, value in figures.items())
            )
            print(f"    {split}: {shown}")
        decision = card["decision"]
        if decision.get("validation"):
            figures = decision["validation"]
            print(
                f"    frame-level decision: polyp when {decision['area_fraction']:.2%} of the "
                f"frame reaches {decision['threshold']:.2f}; on validation "
                f"{figures['frames_flagged']:.1%} of {figures['polyp_free_frames']} polyp-free "
                f"frames flagged, {figures['frames_missed']:.1%} of {figures['polyp_frames']} "
                "polyp frames missed"
            )
    if info["most_accurate"]:
        print(f"most accurate: {info['most_accurate']} (Kvasir-SEG test120 Dice)")
    if info["fastest"]:
        print(f"fastest here: {info['fastest']}")
    print("capture devices:")
    devices = [DeviceInfo(**device) for device in info["devices"]]
    print("  " + describe_devices(devices).replace("\n", "\n  "))


def run_bench(args: argparse.Namespace) -> None:
    {"inference": run_bench_inference, "pipeline": run_bench_pipeline}[args.benchmark](args)


def run_bench_inference(args: argparse.Namespace) -> None:
    from polypview.backends import backend_names, status
    from polypview.bench import FRAME_SIZE, bench_inference

    wanted = backend_names() if args.backends == ["all"] else args.backends
    unknown = [name for name in wanted if name not in backend_names()]
    if unknown:
        raise PolypviewError(f"unknown backend {unknown[0]!r}; choose from {backend_names()}")
    usable = [name for name in wanted if status(name).available]
    unusable = {name: status(name).reason for name in wanted if name not in usable}
    bench = bench_inference(args.models, usable, runs=args.runs)
    skipped = unusable | bench.skipped
    for name, reason in sorted(skipped.items()):
        print(f"skipping backend {name}: {reason}", file=sys.stderr)
    print(f"on {bench.device}, {args.runs} runs after warm-up; ratios against eager fp32 (torch)")
    print("batch-1 inference, input and output in the backend's memory")
    header = ("model", "backend", "precision", "median ms", "p90 ms", "vs torch")
    print("{:<10} {:<9} {:<9} {:>9} {:>8} {:>8}".format(*header))
    for row in bench.inference:
        print(
            f"{row.model:<10} {row.backend:<9} {row.precision:<9} {row.median_ms:>9.1f} "
            f"{row.p90_ms:>8.1f} {row.speedup:>7.2f}x"
        )
    height, width = FRAME_SIZE
    print(f"one {width}x{height} BGR frame to its mask in host memory (stage medians in ms)")
    columns = ("model", "backend", "median ms", "p90 ms", "vs torch", *FRAME_STAGE_LABELS)
    print("{:<10} {:<9} {:>9} {:>8} {:>8} {:>7} {:>7} {:>7} {:>7} {:>8}".format(*columns))
    for row in bench.frames:
        stages = " ".join(f"{ms:>7.2f}" for ms in row.stages_ms.values())  # in STAGES' order
        print(
            f"{row.model:<10} {row.backend:<9} {row.median_ms:>9.1f} {row.p90_ms:>8.1f} "
            f"{row.speedup:>7.2f}x {stages}"
        )
    if args.json:
        record = {
            "device": bench.device,
            "runs": args.runs,
            "results": [asdict(row) for row in bench.inference],
            "frames": [asdict(row) for row in bench.frames],
            "skipped": skipped,
        }
        print(json.dumps(record))


def run_bench_pipeline(args: argparse.Namespace) -> None:
    from polypview.bench import bench_pipeline

    if not args.duration > 0:
        raise PolypviewError(f"--duration must be more than 0 seconds, got {args.duration}")
    if args.record is not None and not args.record.is_dir():
        raise PolypviewError(f"--record folder does not exist: {args.record}")
    if args.samples < 1:
        raise PolypviewError(f"--samples must be at least 1, got {args.samples}")
    figures = bench_pipeline(
        args.source, args.model, args.backend, args.duration, args.record, args.samples
    )
    for event in figures["events"]:
        print(f"polypview: {event}", file=sys.stderr)
    print(
        f"live pipeline for {figures['duration_s']:.1f} s: {figures['source']} -> "
        f"{figures['model']} ({figures['model_status']}) on {figures['backend']}, "
        f"{figures['device']}"
    )
    print(f"{'':<20} {'median':>8} {'p99':>8}")
    for label, name in (("video delay ms", "video"), ("annotation delay ms", "annotation")):
        median, p99 = (figures[f"{name}_delay_ms_p{q}"] for q in (50, 99))
        shown = ("-", "-") if median is None else (f"{median:.2f}", f"{p99:.2f}")
        print(f"{label:<20} {shown[0]:>8} {shown[1]:>8}")
    print(
        f"shown {figures['shown_fps']:.1f} frames/s, segmented {figures['segmented_fps']:.1f} "
        f"frames/s, {figures['dropped']} dropped before segmentation, {figures['stale']} stale"
    )
    for sample in figures["samples"]:
        print(
            f"  at {sample['t_s']:>7.1f} s: {sample['rss_mb']:.0f} MB resident, video delay "
            f"{sample['video_delay_ms_p50']} ms, annotation delay "
            f"{sample['annotation_delay_ms_p50']} ms (medians of the latest samples)"
        )
    if args.json:
        print(json.dumps(figures))


def build_window_parser() -> argparse.ArgumentParser:
    from polypview.backends import backend_names

    parser = argparse.ArgumentParser(
        prog="polypview",
        usage=WINDOW_USAGE,
        description="Open the window on SOURCE (default: the bundled demo clip). "
        f"Commands: {', '.join(COMMANDS)} (polypview --help).",
    )
    parser.add_argument(
        "source",
        nargs="?",
        help="video file, folder of images, device:N, device:NAME, rtsp://... or synthetic:WxH@FPS",
    )
    parser.add_argument(
        "--device",
        metavar="N|PATH|NAME",
        help="capture device: its index, its path, or (part of) its name (polypview info lists "
        "them)",
    )
    parser.add_argument("--model", help="installed model name or path (default: the last used)")
    parser.add_argument("--backend", choices=["auto", *backend_names()])
    parser.add_argument("--screenshot", type=Path, metavar="FILE", help="save the window, quit")
    parser.add_argument(
        "--after", type=float, default=3.0, metavar="S", help="seconds before the screenshot"
    )
    return parser


def opens_window(argv: list[str]) -> bool:
    """The window, unless the first argument is a command or asks for the commands' help."""
    return not argv or argv[0] not in (*COMMANDS, "-h", "--help", "--version")


def run_window(args: argparse.Namespace) -> int:
    if args.source is not None and args.device is not None:
        raise PolypviewError("give a video or --device, not both")
    if args.after < 0:
        raise PolypviewError(f"--after must be 0 or more seconds, got {args.after}")
    if args.device is not None:  # an unknown or ambiguous name ends here, before the window
        from polypview.sources import resolve_device

        resolve_device(args.device)
    from polypview.gui.app import run_window as run_app

    return run_app(args)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(format="polypview: warning: %(message)s", level=logging.WARNING)
    argv = sys.argv[1:] if argv is None else argv
    if opens_window(argv):
        args = build_window_parser().parse_args(argv)
        run = run_window
    else:
        args = build_parser().parse_args(argv)
        commands = {
            "export": run_export,
            "report": run_report,
            "batch": run_batch,
            "info": run_info,
            "bench": run_bench,
        }
        run = commands[args.command]
    try:
        code = run(args)
    except PolypviewError as error:
        print(f"polypview: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("polypview: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:
        if os.environ.get("POLYPVIEW_DEBUG"):
            raise
        print(
            f"polypview: unexpected error: {type(error).__name__}: {error} "
            "(POLYPVIEW_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return EXIT_ERROR
    return code or 0


if __name__ == "__main__":
    sys.exit(main())
