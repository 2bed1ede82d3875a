"""``polypview`` without a command opens the window; with one, the commands run as before."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from polypview.cli import main, opens_window
from polypview.modelfile import ModelCard
from videos import REPO


@pytest.mark.parametrize(
    ("argv", "window"),
    [
        ([], True),
        (["clip.mp4"], True),
        (["--device", "0"], True),
        (["--screenshot", "out.png"], True),
        (["export", "clip.mp4", "-o", "out.mp4"], False),
        (["info"], False),
        (["report", "clip.mp4"], False),
        (["bench", "pipeline"], False),
        (["--help"], False),
        (["--version"], False),
    ],
)
def test_the_first_argument_chooses_window_or_command(argv: list[str], window: bool) -> None:
    assert opens_window(argv) is window


def test_help_names_the_commands_and_the_window(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    shown = capsys.readouterr().out
    assert "export" in shown and "report" in shown and "bench" in shown
    assert "opens its window" in shown


def test_window_arguments_are_checked_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["clip.mp4", "--device", "0"]) == 1
    assert capsys.readouterr().err == "polypview: error: give a video or --device, not both\n"


def run_polypview(*args: str, settings: Path) -> subprocess.CompletedProcess[str]:
    env = os.environ | {
        "QT_QPA_PLATFORM": "offscreen",
        "POLYPVIEW_SETTINGS": str(settings),
        "PYTHONPATH": str(REPO),
    }
    return subprocess.run(
        [sys.executable, "-m", "polypview", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_screenshot_saves_the_window_and_quits(
    clip: Path, stand_in_model: ModelCard, tmp_path: Path
) -> None:
    picture = tmp_path / "window.png"
    done = run_polypview(
        str(clip),
        "--model",
        str(stand_in_model.card_path),
        "--backend",
        "torch",
        "--screenshot",
        str(picture),
        "--after",
        "1.5",
        settings=tmp_path / "settings.ini",
    )
    assert done.returncode == 0, done.stderr
    image = cv2.imread(str(picture))
    assert image is not None and image.shape[0] >= 400 and image.shape[1] >= 600
    assert (tmp_path / "settings.ini").is_file()  # the test's own settings, never the user's


def test_a_screenshot_that_cannot_be_written_is_one_line(clip: Path, tmp_path: Path) -> None:
    done = run_polypview(
        str(clip), "--screenshot", str(tmp_path / "missing" / "x.png"), settings=tmp_path / "s.ini"
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("polypview: error: screenshot folder")
    assert "Traceback" not in done.stderr
