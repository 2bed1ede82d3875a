"""A short sound when a new polyp detection is raised: an aid, never a reason to fail.

QSoundEffect where Qt Multimedia loads (it needs the system's audio libraries), otherwise the
desktop's beep. With no audio device either one is silent; neither raises.
"""

from __future__ import annotations

import logging
import math
import struct
import tempfile
import wave
from pathlib import Path

from PyQt6.QtCore import QUrl
from PyQt6.QtWidgets import QApplication

from polypview.pipeline import Result

logger = logging.getLogger(__name__)
TONE_HZ, TONE_S, RATE = 880.0, 0.12, 22050


def write_tone(path: Path) -> Path:
    """A short sine tone with soft ends (no click), as 16-bit mono WAV."""
    count = round(TONE_S * RATE)
    samples = (
        round(12000 * math.sin(2 * math.pi * TONE_HZ * i / RATE) * math.sin(math.pi * i / count))
        for i in range(count)
    )
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(b"".join(struct.pack("<h", sample) for sample in samples))
    return path


class DetectionChime:
    """``on_result`` plays once each time the alert turns on, when ``enabled``."""

    def __init__(self, enabled: bool = False) -> None:
        self.enabled = enabled
        self.played = 0
        self._alert = False
        self._effect = None
        self._folder: tempfile.TemporaryDirectory[str] | None = None

    def on_result(self, result: Result) -> None:
        rising = result.alert and not self._alert
        self._alert = result.alert
        if rising and self.enabled:
            self.play()

    def play(self) -> None:
        self.played += 1
        effect = self._effect or self._load()
        if effect is not None:
            effect.play()
        else:
            QApplication.beep()

    def _load(self):
        """The sound effect, made on first use; None where Qt Multimedia cannot load."""
        try:
            from PyQt6.QtMultimedia import QSoundEffect
        except ImportError as error:
            logger.info("no Qt Multimedia (%s): the detection sound is the desktop's beep", error)
            self._load = lambda: None  # type: ignore[method-assign]
            return None
        self._folder = tempfile.TemporaryDirectory(prefix="polypview-sound-")
        effect = QSoundEffect()
        effect.setSource(QUrl.fromLocalFile(str(write_tone(Path(self._folder.name) / "tone.wav"))))
        self._effect = effect
        return effect
