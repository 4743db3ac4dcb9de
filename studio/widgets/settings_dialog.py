"""Preferences: compute device, torch threads, jobs running at once, where batches run."""

from __future__ import annotations

import os

from qtpy.QtWidgets import QComboBox, QDialog, QDialogButtonBox, QFormLayout, QLineEdit, QSpinBox, QWidget

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
        self._add_batch_rows(layout, settings)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addRow(buttons)

    def _add_batch_rows(self, layout: QFormLayout, settings: StudioSettings) -> None:
        """Executor, cluster address and workers for batch actions (e.g. the codec RD sweep)."""
        from engines.batch.executors import ray_available

        self.executor = QComboBox()
        for key, text in (("serial", "serial (this process)"), ("local", "local Ray (this machine)"),
                          ("cluster", "Ray cluster (address below)")):
            self.executor.addItem(text, key)
        if not ray_available():
            for row in (1, 2):
                self.executor.model().item(row).setEnabled(False)
            self.executor.setToolTip('Ray is not installed: pip install -e ".[cluster]"')
        self.executor.setCurrentIndex(max(0, self.executor.findData(settings.executor)))
        layout.addRow("Batches run on", self.executor)
        self.address = QLineEdit(settings.cluster_address)
        self.address.setPlaceholderText("auto, ray://HOST:10001 or HOST:6379")
        self.address.setToolTip("auto = the cluster started here with 'ray start --head'; token-auth clusters "
                                "need RAY_AUTH_MODE=token and RAY_AUTH_TOKEN in the studio's environment")
        layout.addRow("Cluster address", self.address)
        self.workers = QSpinBox()
        self.workers.setRange(0, 4096)
        self.workers.setSpecialValueText("one per core")
        self.workers.setValue(settings.batch_workers)
        layout.addRow("Batch workers", self.workers)
        self.executor.currentIndexChanged.connect(self._update_batch_rows)
        self._update_batch_rows()

    def _update_batch_rows(self) -> None:
        kind = self.executor.currentData()
        self.address.setEnabled(kind == "cluster")
        self.workers.setEnabled(kind != "serial")

    def store(self, settings: StudioSettings) -> None:
        """Write the dialog's values into ``settings``."""
        settings.device = self.device.currentText()
        settings.threads = self.threads.value()
        settings.max_running_jobs = self.max_jobs.value()
        settings.executor = self.executor.currentData()
        settings.cluster_address = self.address.text() or "auto"
        settings.batch_workers = self.workers.value()
