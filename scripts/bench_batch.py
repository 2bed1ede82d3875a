"""``polypview batch`` throughput on N copies of the demo clip: embedded against ``--ray local``.

    .venv/bin/python scripts/bench_batch.py                      # 4 copies, lite-unet
    .venv/bin/python scripts/bench_batch.py --copies 8 --model unet --engines embedded
    .venv/bin/python scripts/bench_batch.py --copies 2 --frames 100   # a short run

Each engine runs the real command in a child process into a fresh folder, so the time includes
what a user waits for: imports, the model load (per actor on Ray) and, for ``--ray local``,
starting Ray. Prints a Markdown table row per engine (docs/batch.md); asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "assets" / "demo.mp4"


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} threads"
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} threads"


def run(engine: str, videos: list[Path], out: Path, model: str) -> dict:
    command = [sys.executable, "-m", "polypview", "batch", *map(str, videos), "--out", str(out)]
    command += ["--model", model, "--json"] + (["--ray", "local"] if engine == "ray" else [])
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{engine} failed:\n{done.stderr[-2000:]}")
    summary = json.loads(done.stdout.splitlines()[-1])
    return {"engine": engine, "wall_s": seconds} | summary["totals"]


def first_frames(source: Path, frames: int, target: Path) -> None:
    """The first ``frames`` frames of ``source`` as a clip of its own."""
    sys.path.insert(0, str(REPO))
    from polypview.video import ClipWriter, VideoSource

    with VideoSource(source) as video:
        size = {"width": video.width, "height": video.height, "frame_rate": video.frame_rate}
        with ClipWriter(target, **size) as writer:
            for _, frame in zip(range(frames), video, strict=False):
                writer.write(frame.image, frame.pts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--model", default="lite-unet")
    parser.add_argument("--engines", nargs="+", default=["embedded", "ray"])
    parser.add_argument("--frames", type=int, help="only the demo's first N frames (default all)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        clip = DEMO
        if args.frames:
            clip = root / "demo-cut.mp4"
            first_frames(DEMO, args.frames, clip)
        videos = []
        for index in range(args.copies):
            videos.append(root / f"demo{index}.mp4")
            shutil.copy(clip, videos[-1])
        shown = f"the first {args.frames} frames of " if args.frames else ""
        print(f"{args.copies} copies of {shown}{DEMO.name}, model {args.model}, on {cpu_name()}")
        print("| engine | videos | frames | wall s | frames/s (wall) | frames/s per worker |")
        print("|---|---:|---:|---:|---:|---:|")
        for engine in args.engines:
            figures = run(engine, videos, root / f"out-{engine}", args.model)
            per_worker = figures["frames"] / figures["worker_seconds"]
            print(
                f"| {engine} | {figures['videos']} | {figures['frames']} | "
                f"{figures['wall_s']:.1f} | {figures['frames'] / figures['wall_s']:.1f} | "
                f"{per_worker:.1f} |"
            )


if __name__ == "__main__":
    main()
