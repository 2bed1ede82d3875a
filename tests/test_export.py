"""The exporter's cancel hook (the rest of export is tested through the CLI, test_cli.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from polypview.export import ExportCancelled, export_annotated, partial_path
from polypview.modelfile import ModelCard
from polypview.overlay import OverlayOptions
from polypview.segmenter import Segmenter
from polypview.video import VideoSource


def test_a_cancelled_export_stops_and_leaves_no_file(
    clip: Path, stand_in_model: ModelCard, tmp_path: Path
) -> None:
    output = tmp_path / "out.mp4"
    written: list[int] = []
    partial_seen: list[bool] = []

    def on_frame(frames: int) -> None:
        written.append(frames)
        partial_seen.append(partial_path(output).exists())

    with VideoSource(clip) as source:
        segmenter = Segmenter.open(str(stand_in_model.card_path), "torch")
        with pytest.raises(ExportCancelled, match="cancelled"):
            export_annotated(
                source,
                segmenter,
                output,
                OverlayOptions(),
                on_frame=on_frame,
                cancelled=lambda: len(written) >= 5,
            )
    assert written == [1, 2, 3, 4, 5] and all(partial_seen)
    assert not output.exists() and not partial_path(output).exists()
