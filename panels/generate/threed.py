"""The Generate panel's 3D mode: class/prompt/image → 3D Gaussians or spheres by score distillation.

A self-contained page: settings on the left (model, class or prompt, reference image, method,
steps, guidance, primitive, count, seed), a strip of 4 orbit views updated during the run and a
loss plot (pyqtgraph) on the right. Run / Pause / Cancel go through the studio job queue;
"Open in Render" saves the scene to a temporary .ply (as a job) and sends it to the Render panel;
Export writes the .ply and a 36-frame turntable with provenance sidecars (as a job). Dropping an
image onto the page makes it the reference of an image → 3D run.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from engines.distill3d.settings import DistillSettings
from panels.generate.widgets import ImageSlot, ImageView, read_image_file

__all__ = ["ThreeDMode", "install_3d_mode"]

METHOD_LABELS = {"sds": "SDS (DreamFusion)", "sjc": "SJC (perturb-and-average)", "vsd": "VSD (camera-conditioned copy)",
                 "esd": "ESD (entropic, λ on camera)", "sdi": "SDI (DDIM-inverted noise)"}
VIEW_NAMES = ("front", "side", "back", "other side")
#: the controls start at the engine's defaults
DEFAULTS = DistillSettings()


class ThreeDMode(QWidget):
    """The 3D page; ``panel`` is the GeneratePanel (for its model list and services)."""

    def __init__(self, panel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.panel = panel
        self.services = panel.services
        self.handle = None
        self.result = None
        self.losses: list[float] = []
        self.setAcceptDrops(True)
        outer = QHBoxLayout(self)
        outer.addWidget(self._build_controls(), 0)
        outer.addLayout(self._build_views(), 1)
        self.refresh_models()

    # ------------------------------------------------------------------ layout
    def _build_controls(self) -> QWidget:
        box = QWidget()
        box.setMaximumWidth(340)
        form = QFormLayout(box)
        self.model_combo = QComboBox()
        self.model_combo.currentIndexChanged.connect(self._model_changed)
        form.addRow("Model", self.model_combo)
        self.class_combo = QComboBox()
        form.addRow("Class", self.class_combo)
        self.prompt = QLineEdit()
        self.prompt.setPlaceholderText("a prompt (text models; view suffixes are added)")
        form.addRow("Prompt", self.prompt)
        self.ref_slot = ImageSlot("Reference image (image → 3D)", "Drop an image here\nfor image → 3D")
        self.ref_slot.setMaximumHeight(150)
        form.addRow(self.ref_slot)
        self.method_combo = QComboBox()
        for key, label in METHOD_LABELS.items():
            self.method_combo.addItem(label, key)
        self.method_combo.setCurrentIndex(self.method_combo.findData(DEFAULTS.method))
        form.addRow("Method", self.method_combo)
        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(1, 20000)
        self.steps_spin.setValue(DEFAULTS.steps)
        form.addRow("Steps", self.steps_spin)
        self.guidance_spin = QDoubleSpinBox()
        self.guidance_spin.setRange(0.0, 200.0)
        self.guidance_spin.setValue(DEFAULTS.guidance)
        self.guidance_spin.setToolTip("Classifier-free guidance, diffusers convention: ε_u + s·(ε_c − ε_u)")
        form.addRow("Guidance", self.guidance_spin)
        self.primitive_combo = QComboBox()
        self.primitive_combo.addItem("Gaussians", "gaussians")
        self.primitive_combo.addItem("Spheres (Pulsar)", "spheres")
        self.primitive_combo.setCurrentIndex(self.primitive_combo.findData(DEFAULTS.primitive))
        form.addRow("Primitive", self.primitive_combo)
        self.count_spin = QSpinBox()
        self.count_spin.setRange(10, 100000)
        self.count_spin.setValue(DEFAULTS.count)
        form.addRow("Count", self.count_spin)
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 2)
        self.seed_spin.setValue(DEFAULTS.seed)
        form.addRow("Seed", self.seed_spin)
        row = QHBoxLayout()
        self.run_button = QPushButton("Run")
        self.pause_button = QPushButton("Pause")
        self.cancel_button = QPushButton("Cancel")
        for b in (self.run_button, self.pause_button, self.cancel_button):
            row.addWidget(b)
        self.pause_button.setEnabled(False)
        self.cancel_button.setEnabled(False)
        form.addRow(row)
        self.run_button.clicked.connect(self.run)
        self.pause_button.clicked.connect(self.toggle_pause)
        self.cancel_button.clicked.connect(self.cancel)
        return box

    def _build_views(self) -> QVBoxLayout:
        import pyqtgraph as pg

        layout = QVBoxLayout()
        strip = QHBoxLayout()
        self.views = []
        for name in VIEW_NAMES:
            column = QVBoxLayout()
            view = ImageView(f"{name}\nview")
            view.setMinimumSize(120, 120)
            self.views.append(view)
            column.addWidget(view, 1)
            caption = QLabel(name)
            caption.setAlignment(Qt.AlignCenter)
            column.addWidget(caption)
            strip.addLayout(column, 1)
        layout.addLayout(strip, 3)
        self.plot = pg.PlotWidget()
        self.plot.setLabel("bottom", "step")
        self.plot.setLabel("left", "loss")
        self.plot.setMinimumHeight(140)
        self.curve = self.plot.plot([], [], pen=pg.mkPen("#4fc3f7", width=1.5))
        layout.addWidget(self.plot, 2)
        status = QHBoxLayout()
        self.status = QLabel("Choose a class (or drop an image) and press Run.")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setMaximumWidth(220)
        status.addWidget(self.status, 1)
        status.addWidget(self.progress)
        layout.addLayout(status)
        actions = QHBoxLayout()
        actions.addStretch(1)
        self.render_button = QPushButton("Open in Render")
        self.export_button = QPushButton("Export .ply + turntable…")
        for b in (self.render_button, self.export_button):
            b.setEnabled(False)
            actions.addWidget(b)
        self.render_button.clicked.connect(self.open_in_render)
        self.export_button.clicked.connect(self._export_dialog)
        layout.addLayout(actions)
        return layout

    # ------------------------------------------------------------------ models
    def refresh_models(self) -> None:
        """Mirror the Generate panel's model list."""
        before = self.model_combo.currentData()
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        for info in self.panel.models:
            self.model_combo.addItem(info.name, info.path)
        self.model_combo.setPlaceholderText("scanning…" if self.panel.scanning_models else "no models")
        # with a placeholder the box selects nothing by itself: keep the model, else the first
        self.model_combo.setCurrentIndex(max(0, self.model_combo.findData(before)) if self.model_combo.count() else -1)
        self.model_combo.blockSignals(False)
        self._model_changed()

    def _info(self):
        path = self.model_combo.currentData()
        return next((m for m in self.panel.models if m.path == path), None)

    def _model_changed(self) -> None:
        info = self._info()
        is_class = info is not None and info.conditioning == "class"
        self.class_combo.clear()
        self.class_combo.addItem("(unconditional)", None)
        if is_class:
            for i, name in enumerate(info.class_names):
                self.class_combo.addItem(name, i)
            self.class_combo.setCurrentIndex(min(8, self.class_combo.count() - 1))
        self.class_combo.setEnabled(is_class)
        self.prompt.setEnabled(info is not None and info.conditioning == "text")

    # ------------------------------------------------------------------ parameters
    def settings(self):
        """A :class:`DistillSettings` from the controls."""
        info = self._info()
        return DistillSettings(
            model=info.path if info else "digits-flow", class_label=self.class_combo.currentData(),
            prompt=self.prompt.text().strip() if self.prompt.isEnabled() else "",
            method=self.method_combo.currentData(), steps=self.steps_spin.value(),
            guidance=self.guidance_spin.value(), primitive=self.primitive_combo.currentData(),
            count=self.count_spin.value(), seed=self.seed_spin.value(), preview_every=10)

    def set_reference(self, image: np.ndarray | None, path: str = "") -> None:
        """Use ``image`` as the image → 3D reference (None clears it)."""
        self.ref_slot.set_image(image, path)
        self.status.setText("Image → 3D: the reference fixes the front view; press Run." if image is not None
                            else "Reference cleared.")

    # ------------------------------------------------------------------ drag and drop
    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls() or event.mimeData().hasImage():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        urls = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if urls:
            self.load_reference(urls[0])
            event.acceptProposedAction()

    def load_reference(self, path: str) -> None:
        """Read ``path`` on a worker (job queue) and make it the reference image."""
        def job():
            return read_image_file(path)
            yield  # noqa: unreachable - makes this a generator

        self.services.jobs.submit(f"Read {Path(path).name}", "generate", job,
                                  on_result=lambda image: self.set_reference(image, path),
                                  on_error=lambda record: self.services.notify(f"Image → 3D: {record.error}", "error"))

    # ------------------------------------------------------------------ running
    def run(self) -> None:
        """Start a distillation job with the current controls."""
        from engines.distill3d import distill_job

        settings = self.settings()
        reference = self.ref_slot.image()
        folders = list(self.panel.model_folders)
        device = self.services.device()
        self.losses = []
        self.curve.setData([], [])
        self.result = None
        self.render_button.setEnabled(False)
        self.export_button.setEnabled(False)
        self.handle = self.services.jobs.submit(
            f"3D {settings.method.upper()}", "generate", lambda: distill_job(settings, reference, folders, device),
            device=device, on_event=self._on_event, on_result=self._on_result, on_error=self._on_error,
            on_cancel=self._on_cancel)
        self._set_running(True)
        self.status.setText("Starting…")

    def toggle_pause(self) -> None:
        """Pause or resume the running job."""
        if self.handle is None:
            return
        if self.handle.state == "paused":
            self.handle.resume()
            self.pause_button.setText("Pause")
        else:
            self.handle.pause()
            self.pause_button.setText("Resume")

    def cancel(self) -> None:
        """Cancel the running job (its result is discarded)."""
        if self.handle is not None:
            self.handle.cancel()

    def _set_running(self, running: bool) -> None:
        self.run_button.setEnabled(not running)
        self.pause_button.setEnabled(running)
        self.cancel_button.setEnabled(running)
        self.pause_button.setText("Pause")

    def _on_event(self, event) -> None:
        from engines.jobs import Log, Preview, Progress

        if isinstance(event, Progress):
            self.progress.setValue(int(event.fraction * 1000))
            self.status.setText(event.message)
        elif isinstance(event, Preview) and event.image is not None:
            self.show_strip(np.asarray(event.image))
            self.losses += list(event.data.get("losses", []))
            if self.losses:
                steps, values = zip(*self.losses)
                self.curve.setData(list(steps), list(values))
        elif isinstance(event, Log):
            self.services.log(event.message, event.level)

    def show_strip(self, strip: np.ndarray) -> None:
        """Split a (h, 4w, 3) strip into the four orbit views."""
        width = strip.shape[1] // len(self.views)
        for i, view in enumerate(self.views):
            view.set_image(np.ascontiguousarray(strip[:, i * width:(i + 1) * width]))

    def _on_result(self, result) -> None:
        self.result = result
        self._set_running(False)
        self.handle = None
        self.render_button.setEnabled(True)
        self.export_button.setEnabled(True)
        self.status.setText(f"Done: {len(result.scene)} {result.settings.primitive} in {result.seconds:.0f} s")

    def _on_error(self, record) -> None:
        self._set_running(False)
        self.handle = None
        self.status.setText(f"Failed: {record.error}")

    def _on_cancel(self) -> None:
        self._set_running(False)
        self.handle = None
        self.status.setText("Cancelled.")

    # ------------------------------------------------------------------ results
    def export_to(self, ply: str, turntable: str | None = None, force: bool = False) -> None:
        """Write the result as ``ply`` (+ turntable) on a worker through studio.export."""
        from studio.export_3d import save_distill_outputs

        result = self.result
        reference = self.ref_slot.path or None

        def job():
            return save_distill_outputs(result, ply, turntable, force=force, reference=reference)
            yield  # noqa: unreachable - makes this a generator

        self.services.jobs.submit("Export 3D", "generate", job,
                                  on_result=lambda written: self.services.notify("Saved " + ", ".join(written.values())),
                                  on_error=lambda record: self.services.notify(f"Export failed: {record.error}", "error"))

    def _export_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export 3D result", "object.ply", "3DGS scene (*.ply)")
        if path:
            if not path.lower().endswith(".ply"):
                path += ".ply"
            self.export_to(path, str(Path(path).with_suffix(".webp")), force=True)

    def open_in_render(self) -> None:
        """Save the scene to a temporary .ply (worker) and send it to the Render panel."""
        from studio.export_3d import save_distill_outputs

        result = self.result
        folder = tempfile.mkdtemp(prefix="spectra-3d-")
        path = os.path.join(folder, "distilled.ply")

        def job():
            return save_distill_outputs(result, path)["ply"]
            yield  # noqa: unreachable - makes this a generator

        self.services.jobs.submit("Save 3D for Render", "generate", job,
                                  on_result=lambda ply: self.services.send_to("render", "scene", ply),
                                  on_error=lambda record: self.services.notify(f"Open in Render: {record.error}", "error"))


def install_3d_mode(panel, tabs) -> ThreeDMode:
    """Add the 3D page to the Generate panel's mode ``tabs``; returns it."""
    page = ThreeDMode(panel)
    tabs.addTab(page, "3D")
    panel.threed = page
    return page
