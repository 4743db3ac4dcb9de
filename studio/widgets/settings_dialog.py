"""Preferences: compute device, torch threads, jobs running at once."""

from __future__ import annotations

import os

from qtpy.QtWidgets import QComboBox, QDialog, QDialogButtonBox, QFormLayout, QSpinBox, QWidget

from studio.settings import StudioSettings


class SettingsDialog(QDialog):
    """Edits the compute settings; the caller applies them when accepted."""

    def __init__(self, settings: StudioSettings, devices: list[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Preferences")
        layout = QFormLayout(self)
        self.device = QComboBox()
        self.device.addItems(["auto", *devices])
        self.device.setCurrentText(settings.device if settings.device in ["auto", *devices] else "auto")
        layout.addRow("Compute device", self.device)
        self.threads = QSpinBox()
        self.threads.setRange(0, max(64, os.cpu_count() or 1))
        self.threads.setSpecialValueText("one per core")
        self.threads.setValue(settings.threads)
        layout.addRow("CPU threads", self.threads)
        self.max_jobs = QSpinBox()
        self.max_jobs.setRange(1, 8)
        self.max_jobs.setValue(settings.max_running_jobs)
        layout.addRow("Jobs at once per device", self.max_jobs)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addRow(buttons)

    def store(self, settings: StudioSettings) -> None:
        """Write the dialog's values into ``settings``."""
        settings.device = self.device.currentText()
        settings.threads = self.threads.value()
        settings.max_running_jobs = self.max_jobs.value()
