"""Open capture device: the devices found, by name, and the modes the chosen one actually offers.

A device's modes are read from its driver when it is picked (V4L2 on Linux: instant). Where the
driver cannot be asked (Windows, macOS, a node that is not V4L2), "Try common modes" asks the
device through OpenCV instead, on request and off the GUI thread: that takes seconds and needs
the device free, so Open waits for it.
"""

from __future__ import annotations

from collections.abc import Callable

from PyQt6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QWidget,
)

from polypview import sources
from polypview.errors import VideoError
from polypview.gui.controller import DeviceMode
from polypview.gui.threads import Background
from polypview.sources import CaptureMode, DeviceInfo, list_devices

ModeLister = Callable[[int | str], list[CaptureMode]]


class DeviceDialog(QDialog):
    """``chosen()`` gives the device's spec and mode once accepted.

    ``list_modes`` (instant, may raise VideoError with the reason) and ``probe_modes`` (slow, run
    in the background) default to those of ``polypview.sources``; tests pass their own.
    """

    def __init__(
        self,
        devices: list[DeviceInfo] | None = None,
        parent: QWidget | None = None,
        *,
        list_modes: ModeLister = sources.list_modes,
        probe_modes: ModeLister = sources.probe_modes,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Open capture device")
        self._devices = list_devices() if devices is None else devices
        self._list_modes, self._probe_modes = list_modes, probe_modes
        self._probed: dict[int | str, list[CaptureMode]] = {}  # the probe's finds, by target
        self._probing: int | str | None = None  # the target of the device being probed
        self._background = Background(self)
        self.device_list = QListWidget()
        for device in self._devices:
            self.device_list.addItem(f"{device.name}  ({device.backend} {device.target})")
        self.modes = QComboBox()
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.probe_button = QPushButton("Try common modes")
        self.probe_button.setToolTip(
            "Ask the device, through OpenCV, which common modes it takes (a few seconds)"
        )
        self.probe_button.clicked.connect(self._probe)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Open | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.open_button = buttons.button(QDialogButtonBox.StandardButton.Open)
        form = QFormLayout(self)
        if self._devices:
            form.addRow(self.device_list)
        else:
            form.addRow(QLabel("No capture devices found. Is the capture card plugged in?"))
        form.addRow("Mode", self.modes)
        form.addRow(self.note)
        form.addRow(self.probe_button)
        form.addRow(buttons)
        self.device_list.currentRowChanged.connect(self._show_modes)
        if self._devices:
            self.device_list.setCurrentRow(0)
        else:
            self._show_modes(-1)

    def chosen(self) -> tuple[str, DeviceMode] | None:
        device = self._current()
        if device is None:
            return None
        return device.spec, self.modes.currentData()

    def _current(self) -> DeviceInfo | None:
        row = self.device_list.currentRow()
        return self._devices[row] if 0 <= row < len(self._devices) else None

    def _show_modes(self, _row: int = -1) -> None:
        """Fill the modes of the device now picked: the probe's answer if it was asked, else what
        the driver lists; the device's own mode always comes first."""
        self.modes.clear()
        self.modes.addItem(DeviceMode().label, DeviceMode())
        device = self._current()
        modes: list[CaptureMode] = []
        note, can_probe = "", False
        if device is not None and device.target in self._probed:
            modes = self._probed[device.target]
            if not modes:
                note = "The device took none of the common modes: open it in its own mode."
        elif device is not None:
            try:
                modes = self._list_modes(device.target)
            except VideoError as error:
                note, can_probe = f"{error}.", True
            if not modes and not note:
                note, can_probe = "The driver lists no mode this app can read.", True
        for mode in modes:
            self.modes.addItem(
                mode.label, DeviceMode(mode.width, mode.height, mode.fps, mode.fourcc)
            )
        if device is not None and device.target == self._probing:
            note = f"Asking {device.name} for the common modes (a few seconds) ..."
        self.note.setText(note)
        self.note.setVisible(bool(note))
        self.probe_button.setVisible(can_probe)
        self._enable_buttons()

    def _enable_buttons(self) -> None:
        """Open waits for a probe, which holds the device; one probe at a time."""
        self.probe_button.setEnabled(self._probing is None)
        if self.open_button is not None:
            self.open_button.setEnabled(self._current() is not None and self._probing is None)

    def _probe(self) -> None:
        device = self._current()
        if device is None or self._probing is not None:
            return
        target = self._probing = device.target
        self._background.run(
            "probe-modes",
            lambda: self._probe_modes(target),
            lambda modes: self._probe_done(target, modes, ""),
            lambda message: self._probe_done(target, [], message),
        )
        self._show_modes()

    def _probe_done(self, target: int | str, modes: list[CaptureMode], failure: str) -> None:
        self._probing = None
        if not failure:
            self._probed[target] = modes
        self._show_modes()
        current = self._current()
        if failure and current is not None and current.target == target:
            self.note.setText(f"{failure}.")
            self.note.setVisible(True)
