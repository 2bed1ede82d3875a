"""The command line end to end, and every bad input a user can give it.

Each bad input must end as exactly one line on stderr, a non-zero exit, no traceback, and no
output file left behind looking valid.
"""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import av
import pytest
from cv2_enumerate_cameras import CameraInfo

from conftest import camera, make_stand_in
from polypview.cli import main
from polypview.modelfile import ModelCard
from videos import BAD_VIDEOS, bad_input, run_child, write_clip


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_clear_line(code: int, err: str, expected: str) -> None:
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("polypview: error: ") and expected in lines[0], lines[0]
    assert "Traceback" not in err


def assert_no_output(output: Path) -> None:
    leftovers = sorted(path.name for path in output.parent.glob(f"{output.stem}*"))
    assert leftovers == [], leftovers


def decoded_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_export_writes_every_frame_and_reports(
    capsys: pytest.CaptureFixture[str], clip: Path, stand_in_model: ModelCard, tmp_path: Path
) -> None:
    output = tmp_path / "annotated.mp4"
    code, out, err = run_cli(
        capsys, "export", clip, "-o", output, "--model", stand_in_model.weights_path, "--json"
    )
    assert code == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["frames"] == 12 == decoded_frames(output)
    assert summary["seconds"] > 0 and summary["fps"] > 0
    assert 0 <= summary["frames_with_polyp"] <= 12
    assert "12 frames in" in out
    assert not (tmp_path / "annotated.partial.mp4").exists()


def test_export_of_a_real_colonoscopy_clip_keeps_every_frame_and_its_time(
    capsys: pytest.CaptureFixture[str], real_clip: Path, stand_in_model: ModelCard, tmp_path: Path
) -> None:
    output = tmp_path / "real.mp4"
    code, out, err = run_cli(
        capsys, "export", real_clip, "-o", output, "--model", stand_in_model.weights_path, "--json"
    )
    assert code == 0, err
    assert json.loads(out.strip().splitlines()[-1])["frames"] == 53
    with av.open(str(output)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        assert (stream.width, stream.height, stream.average_rate) == (560, 480, 25)
    assert len(frames) == 53
    assert [round(frame.time, 3) for frame in frames] == [round(i * 0.04, 3) for i in range(53)]


def test_export_honours_start_end_and_styles(
    capsys: pytest.CaptureFixture[str], clip: Path, stand_in_model: ModelCard, tmp_path: Path
) -> None:
    output = tmp_path / "part.mp4"
    model = stand_in_model.weights_path
    code, out, err = run_cli(
        capsys, "export", clip, "-o", output, "--model", model, "--start", "0.2", "--end", "0.4",
        "--style", "box", "--colour", "red", "--threshold", "0.4", "--min-area", "0.5", "--json",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out.strip().splitlines()[-1])["frames"] == 5 == decoded_frames(output)


def test_info_lists_backends_models_and_devices(
    capsys: pytest.CaptureFixture[str], cameras: list[CameraInfo]
) -> None:
    cameras[:] = [camera(0, "USB Capture HDMI 4K+", (0x2935, 0x0006))]
    code, out, _ = run_cli(capsys, "info", "--json", "--no-timing")
    assert code == 0
    info = json.loads(out.strip().splitlines()[-1])
    assert info["devices"] == [
        {
            "name": "USB Capture HDMI 4K+",
            "backend": "V4L2",
            "index": 0,
            "path": "/dev/video0",
            "vendor_id": 0x2935,
            "product_id": 0x0006,
        }
    ]
    assert {backend["name"] for backend in info["backends"]} >= {"torch"}
    assert all({"name", "available", "reason"} <= backend.keys() for backend in info["backends"])
    assert isinstance(info["models"], list)
    assert all("name" in card and "metrics" in card for card in info["models"])
    usable = {backend["name"] for backend in info["backends"] if backend["available"]}
    for card in info["models"]:  # auto's choice is a usable backend; what it skipped, it says why
        assert card["auto_backend"] in usable
        assert all(reason for reason in card["auto_passed_over"].values())
    code, out, _ = run_cli(capsys, "info", "--no-timing")
    assert code == 0 and "backends:" in out
    assert "capture devices:\n  device:/dev/video0 USB Capture HDMI 4K+  (V4L2, " in out


def test_an_unknown_device_name_lists_the_devices_there_are(
    capsys: pytest.CaptureFixture[str], cameras: list[CameraInfo]
) -> None:
    cameras[:] = [camera(0, "Integrated Camera"), camera(2, "Cam Link 4K")]
    code, _, err = run_cli(capsys, "--device", "Magewell")
    assert_one_clear_line(
        code,
        err,
        "no capture device named 'Magewell' (found: Integrated Camera at device:/dev/video0, "
        "Cam Link 4K at device:/dev/video2)",
    )


def test_info_names_the_most_accurate_and_the_fastest_model(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_stand_in(tmp_path, "unet", name="small", metrics={"test120": {"dice": 0.5}})
    make_stand_in(tmp_path, "resunetpp", name="large", metrics={"test120": {"dice": 0.6}})
    monkeypatch.setattr("polypview.modelfile.MODELS_DIR", tmp_path)
    code, out, err = run_cli(capsys, "info", "--json")
    assert code == 0, err
    info = json.loads(out.strip().splitlines()[-1])
    timings = {model["name"]: model["timing"]["ms"] for model in info["models"]}
    assert info["most_accurate"] == "large"
    assert info["fastest"] == min(timings, key=timings.get)
    assert all(ms > 0 for ms in timings.values())


def test_bench_inference_prints_figures(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(
        capsys, "bench", "inference", "--models", "unet", "--runs", "2", "--json"
    )
    assert code == 0, err
    results = json.loads(out.strip().splitlines()[-1])["results"]
    assert {row["backend"] for row in results} >= {"torch"}
    assert all(row["model"] == "unet" and row["median_ms"] > 0 for row in results)


def test_bench_inference_takes_model_files_beside_architectures(
    capsys: pytest.CaptureFixture[str], stand_in_model: ModelCard
) -> None:
    code, out, err = run_cli(
        capsys, "bench", "inference", "--models", str(stand_in_model.card_path), "--runs", "2",
        "--backends", "torch", "--json",
    )  # fmt: skip
    assert code == 0, err
    results = json.loads(out.strip().splitlines()[-1])["results"]
    assert {row["model"] for row in results} == {stand_in_model.name}
    code, out, err = run_cli(capsys, "bench", "inference", "--models", "no-such-model")
    assert code != 0 and err.count("\n") == 1 and "no-such-model" in err


# --- bad inputs -------------------------------------------------------------------------------


@pytest.mark.parametrize(("case", "expected"), BAD_VIDEOS, ids=[case for case, _ in BAD_VIDEOS])
def test_bad_videos_get_one_clear_line(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    stand_in_model: ModelCard,
    case: str,
    expected: str,
) -> None:
    video = bad_input(tmp_path, case)
    output = tmp_path / "out" / "result.mp4"
    output.parent.mkdir()
    code, _, err = run_cli(
        capsys, "export", video, "-o", output, "--model", stand_in_model.weights_path
    )
    assert_one_clear_line(code, err, expected)
    assert_no_output(output)


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("missing/out.mp4", "output folder does not exist"),
        ("afile/out.mp4", "output folder is not a folder"),
        ("out.avi", "output must be an .mp4 file"),
    ],
)
def test_unwritable_outputs_are_refused_before_work(
    capsys: pytest.CaptureFixture[str],
    clip: Path,
    stand_in_model: ModelCard,
    tmp_path: Path,
    output: str,
    expected: str,
) -> None:
    (tmp_path / "afile").write_text("a file, not a folder")
    code, _, err = run_cli(
        capsys, "export", clip, "-o", tmp_path / output, "--model", stand_in_model.weights_path
    )
    assert_one_clear_line(code, err, expected)


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--threshold", "1.5", "--threshold must lie between 0 and 1"),
        ("--min-area", "-1", "--min-area must lie between 0 and 100"),
        ("--colour", "#12345", "--colour:"),
    ],
)
def test_bad_options_are_refused(
    capsys: pytest.CaptureFixture[str],
    clip: Path,
    stand_in_model: ModelCard,
    tmp_path: Path,
    option: str,
    value: str,
    expected: str,
) -> None:
    output = tmp_path / "out.mp4"
    model = stand_in_model.weights_path
    code, _, err = run_cli(capsys, "export", clip, "-o", output, "--model", model, option, value)
    assert_one_clear_line(code, err, expected)
    assert_no_output(output)


def test_output_never_overwrites_the_input(
    capsys: pytest.CaptureFixture[str], clip: Path, stand_in_model: ModelCard
) -> None:
    before = clip.read_bytes()
    code, _, err = run_cli(
        capsys, "export", clip, "-o", clip, "--model", stand_in_model.weights_path
    )
    assert_one_clear_line(code, err, "would overwrite the input")
    assert clip.read_bytes() == before


def test_full_disk_ends_cleanly(clip: Path, stand_in_model: ModelCard, tmp_path: Path) -> None:
    """A file-size limit makes writes fail as a full disk does; nothing half-written stays."""
    big = write_clip(tmp_path / "big.mp4", frames=60, size=(320, 240), noisy=True)
    output = tmp_path / "out" / "full.mp4"
    output.parent.mkdir()

    def limit_file_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    result = subprocess.run(
        [sys.executable, "-m", "polypview", "export", str(big), "-o", str(output),
         "--model", str(stand_in_model.weights_path), "--backend", "torch"],
        capture_output=True, text=True, preexec_fn=limit_file_size, timeout=120,
    )  # fmt: skip
    assert_one_clear_line(result.returncode, result.stderr, "cannot write")
    assert_no_output(output)


def test_wrong_architecture_weights_are_refused(
    capsys: pytest.CaptureFixture[str], clip: Path, tmp_path: Path
) -> None:
    card = make_stand_in(tmp_path, "unet")
    replace(card, architecture="resunet", sha256="").save()
    output = tmp_path / "out.mp4"
    code, _, err = run_cli(capsys, "export", clip, "-o", output, "--model", card.weights_path)
    assert_one_clear_line(code, err, "do not fit architecture 'resunet'")
    assert_no_output(output)


def test_corrupted_weights_are_refused(
    capsys: pytest.CaptureFixture[str], clip: Path, tmp_path: Path
) -> None:
    card = make_stand_in(tmp_path, "unet")
    card.weights_path.write_bytes(card.weights_path.read_bytes()[:5000])
    output = tmp_path / "out.mp4"
    code, _, err = run_cli(capsys, "export", clip, "-o", output, "--model", card.weights_path)
    assert_one_clear_line(code, err, "does not match its card's checksum")
    assert_no_output(output)


def test_no_installed_weights_is_said_plainly(
    capsys: pytest.CaptureFixture[str], clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("polypview.modelfile.MODELS_DIR", tmp_path)
    code, _, err = run_cli(capsys, "export", clip, "-o", tmp_path / "out.mp4")
    assert_one_clear_line(code, err, "no trained weights are installed for 'resunetpp'")


@pytest.mark.parametrize(
    "command",
    [
        ["info", "--json", "--no-timing"],
        ["bench", "pipeline", "--source", "synthetic:96x64@30", "--duration", "1", "--json"],
    ],
)
def test_gpu_hosts_without_pyav_run_info_and_the_pipeline_benchmark(
    command: list[str], stand_in_model: ModelCard
) -> None:
    """The GPU machines have no PyAV: what the GPU run measures must not need it."""
    if command[0] == "bench":
        command += ["--model", str(stand_in_model.card_path), "--backend", "torch"]
    child = run_child(
        "import sys; sys.modules['av'] = None\n"  # any `import av` now fails
        "from polypview.cli import main; sys.exit(main(sys.argv[1:]))",
        *command,
        stderr=subprocess.PIPE,
    )
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    figures = json.loads(out.strip().splitlines()[-1])
    if command[0] == "bench":
        assert figures["shown_fps"] > 0
    else:
        assert figures["versions"]["av"] == "not installed"
