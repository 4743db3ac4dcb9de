"""The ControlNet section of the Generate settings: model, control image with a thumbnail,
pre-processor, scale and start / end, and a preview of the pre-processed control image.

Decoding the control image and pre-processing it run as jobs on the ``io`` lane; the section
only shows their results. :meth:`ControlSection.values` gives the ``control*`` keys of
:class:`GenerationParams`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from qtpy.QtCore import Qt, Signal
from qtpy.QtGui import QPixmap
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from panels.generate.adapters import HINT_STYLE, PathField, select_item
from panels.generate.widgets import IMAGE_FILTER, to_qimage

PREPROCESSORS = ("none", "canny", "scribble", "depth", "tile")
PREPROCESSOR_TIPS = {
    "none": "the image is the control image as it is",
    "canny": "Canny edges of the image",
    "scribble": "strokes of a drawing or mask, white on black",
    "depth": "a depth image you supply (near = white)",
    "tile": "a blurred, reduced copy (tile / upscale ControlNets)",
}
THUMB = 84


class Thumbnail(QLabel):
    """A small fixed-size image (or a hint when empty)."""

    def __init__(self, hint: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.hint = hint
        self.image: np.ndarray | None = None
        self.setFixedSize(THUMB, THUMB)
        self.setAlignment(Qt.AlignCenter)
        self.setWordWrap(True)
        self.setStyleSheet("QLabel { background: #2b2b2b; color: #9e9e9e; border: 1px dashed #666; font-size: 10px; }")
        self.set_image(None)

    def set_image(self, image: np.ndarray | None, hint: str | None = None) -> None:
        """Show ``image`` (``(H, W, 3)`` uint8) scaled to fit, or ``hint`` / the default hint."""
        self.image = None if image is None else np.asarray(image)
        if self.image is None:
            self.setPixmap(QPixmap())
            self.setText(hint or self.hint)
            return
        pix = QPixmap.fromImage(to_qimage(self.image))
        mode = Qt.FastTransformation if pix.width() < THUMB else Qt.SmoothTransformation
        self.setPixmap(pix.scaled(THUMB - 4, THUMB - 4, Qt.KeepAspectRatio, mode))


class ControlSection(QWidget):
    """ControlNet settings. ``size_of_output()`` gives ``(height, width)`` for the preview;
    ``take_input()`` hands over the panel's drawn input (``(image, mask)`` or None) for
    “From input”; stored control images go to ``store_folder()``."""

    changed = Signal()

    def __init__(self, services, panel_name: str, size_of_output, take_input=None, store_folder=None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.services = services
        self.panel_name = panel_name
        self.size_of_output = size_of_output
        self.take_input = take_input
        self.store_folder = store_folder
        self.image_path = ""
        self._seq = 0
        self.setAcceptDrops(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        form = QFormLayout()
        form.setRowWrapPolicy(QFormLayout.WrapLongRows)
        self.model = PathField("none (no ControlNet)", "ControlNet (*.safetensors)", "No ControlNet")
        self.model.setToolTip("A ControlNet: diffusers folder or single .safetensors file")
        form.addRow("Model", self.model)
        self.preprocessor = QComboBox()
        for name in PREPROCESSORS:
            self.preprocessor.addItem(name, name)
            self.preprocessor.setItemData(self.preprocessor.count() - 1, PREPROCESSOR_TIPS[name], Qt.ToolTipRole)
        self.preprocessor.setToolTip("How the control image is prepared (no downloaded weights needed)")
        form.addRow("Pre-processor", self.preprocessor)
        self.scale = self._spin(0.0, 5.0, 1.0, "How strongly the control image steers the result")
        form.addRow("Scale", self.scale)
        steps = QHBoxLayout()
        self.start = self._spin(0.0, 1.0, 0.0, "Fraction of the steps where control starts")
        self.end = self._spin(0.0, 1.0, 1.0, "Fraction of the steps where control ends")
        steps.addWidget(self.start)
        steps.addWidget(QLabel("to"))
        steps.addWidget(self.end)
        form.addRow("Steps", steps)
        layout.addLayout(form)
        images = QHBoxLayout()
        self.thumb = Thumbnail("Control image:\ndrop or open")
        self.preview = Thumbnail("Pre-processed preview")
        images.addWidget(self.thumb)
        images.addWidget(self.preview)
        images.addStretch(1)
        layout.addLayout(images)
        buttons = QHBoxLayout()
        self.open_button = QPushButton("Image…")
        self.open_button.setToolTip("Choose the control image (also: drop an image file on this section)")
        self.open_button.clicked.connect(self._open_dialog)
        self.clear_button = QPushButton("Clear")
        self.clear_button.clicked.connect(lambda: self.set_image_path(""))
        self.preview_button = QPushButton("Preview")
        self.preview_button.setToolTip("Show the control image as the pre-processor prepares it at the output size")
        self.preview_button.clicked.connect(self.update_preview)
        self.from_input_button = QPushButton("From input")
        self.from_input_button.setToolTip("Use the input image you drew (Edit section: Blank canvas + Draw) as the "
                                          "control image; a painted mask becomes a scribble (white strokes)")
        self.from_input_button.clicked.connect(self.use_input)
        self.from_input_button.setVisible(take_input is not None)
        for b in (self.open_button, self.from_input_button, self.clear_button, self.preview_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        self.note = QLabel("")
        self.note.setWordWrap(True)
        self.note.setStyleSheet(HINT_STYLE)
        self.note.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        layout.addWidget(self.note)
        self.model.changed.connect(self.changed)
        self.preprocessor.currentIndexChanged.connect(self._preprocessor_changed)
        for spin in (self.scale, self.start, self.end):
            spin.valueChanged.connect(self.changed)
        self._update_buttons()

    def _spin(self, lo: float, hi: float, value: float, tip: str) -> QDoubleSpinBox:
        spin = QDoubleSpinBox()
        spin.setRange(lo, hi)
        spin.setSingleStep(0.05)
        spin.setValue(value)
        spin.setToolTip(tip)
        return spin

    # ------------------------------------------------------------------ image
    def set_image_path(self, path: str) -> None:
        """Use the image file ``path`` ("" = none); the thumbnail is decoded by a job."""
        self.image_path = path or ""
        self.preview.set_image(None)
        self.note.setText("")
        self._update_buttons()
        self.changed.emit()
        if not self.image_path:
            self.thumb.set_image(None)
            return
        self.thumb.set_image(None, "reading…")
        self._submit(f"Read control image {Path(path).name}", lambda: _thumbnail_job(path), self.thumb)

    def use_input(self) -> None:
        """Store the panel's drawn input (its painted mask as white strokes when there is one) as an
        image file in a job and use it as the control image."""
        taken = self.take_input() if self.take_input is not None else None
        if taken is None:
            self.note.setText("Draw an input image first (Edit section: Blank canvas, then Draw).")
            return
        image, mask = taken
        array = (np.asarray(mask) > 0.5).astype(np.uint8) * 255 if mask is not None else np.array(image)
        folder = self.store_folder()
        self.preprocessor.setCurrentIndex(self.preprocessor.findData("scribble"))
        self.thumb.set_image(None, "storing…")
        self.services.jobs.submit("Store the drawn control image", self.panel_name,
                                  lambda: _store_job(array, folder), device="io", on_result=self.set_image_path,
                                  on_error=lambda record: self.note.setText(str(record.error)))

    def update_preview(self) -> None:
        """Pre-process the control image at the output size in a job and show the result."""
        if not self.image_path:
            return
        path, name, size = self.image_path, self.preprocessor.currentData(), tuple(self.size_of_output())
        self.preview.set_image(None, "working…")
        self._submit(f"Pre-process control image ({name})", lambda: _preprocess_job(path, name, size), self.preview)

    def _submit(self, title: str, factory, target: Thumbnail) -> None:
        self._seq += 1
        seq = self._seq

        def shown(image) -> None:
            if seq == self._seq:
                target.set_image(image)

        def failed(record) -> None:
            if seq == self._seq:
                target.set_image(None, "no image")
                self.note.setText(f'<span style="color: #e57373;">{record.error}</span>')

        self.services.jobs.submit(title, self.panel_name, factory, device="io", on_result=shown, on_error=failed)

    def _preprocessor_changed(self) -> None:
        self.changed.emit()
        if self.image_path and self.preview.image is not None:
            self.update_preview()

    def _update_buttons(self) -> None:
        self.clear_button.setEnabled(bool(self.image_path))
        self.preview_button.setEnabled(bool(self.image_path))
        self.thumb.setToolTip(self.image_path or "No control image")

    def _open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Control image", "", IMAGE_FILTER)
        if path:
            self.set_image_path(path)

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        urls = event.mimeData().urls()
        if urls and urls[0].isLocalFile():
            self.set_image_path(urls[0].toLocalFile())
        event.acceptProposedAction()

    # ------------------------------------------------------------------ values
    def values(self) -> dict:
        """The GenerationParams ControlNet keys."""
        return {"controlnet": self.model.path(), "control_image": self.image_path,
                "control_preprocessor": self.preprocessor.currentData() or "none",
                "control_scale": self.scale.value(), "control_start": self.start.value(),
                "control_end": self.end.value()}

    def set_values(self, params: dict) -> None:
        """Show restored parameters (absent keys keep their current value)."""
        if "controlnet" in params:
            self.model.set_path(params["controlnet"] or "")
        if "control_preprocessor" in params:
            select_item(self.preprocessor, params["control_preprocessor"] or "none")
        for key, spin in (("control_scale", self.scale), ("control_start", self.start), ("control_end", self.end)):
            if key in params:
                spin.setValue(float(params[key]))
        if "control_image" in params and (params["control_image"] or "") != self.image_path:
            self.set_image_path(params["control_image"] or "")


def _store_job(array: np.ndarray, folder):
    """Job: write ``array`` hash-addressed into ``folder`` (once); returns the file's path."""
    from engines.generation.input_images import store_input_image
    from engines.jobs import Progress

    yield Progress(0, 1, "storing the control image")
    return str(store_input_image(array, folder))


def _thumbnail_job(path: str):
    """Job: decode a control image for its thumbnail (``(H, W, 3)`` uint8, at most 256 px)."""
    from engines.jobs import Progress

    yield Progress(0, 1, f"reading {Path(path).name}")
    from PIL import Image

    from engines.imagefile import RGB_COPY_BYTES, open_image

    image = open_image(path, extra_bytes_per_pixel=RGB_COPY_BYTES).convert("RGB")
    image.thumbnail((256, 256), Image.BICUBIC)
    return np.asarray(image)


def _preprocess_job(path: str, name: str, size: tuple):
    """Job: the control image ``path`` as pre-processor ``name`` prepares it at ``size``."""
    from engines.jobs import Progress

    yield Progress(0, 1, f"pre-processing ({name})")
    try:
        from engines.generation.control_preprocess import prepare_control_image
        from engines.generation.controlnet import read_control_image
    except ImportError:
        raise ValueError("ControlNet pre-processing is not available in this build") from None
    return prepare_control_image(read_control_image(path), name, size)
