"""The Generate panel: prompt/class -> images with live previews, editing inputs and a history."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtGui import QKeySequence, QShortcut
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSlider,
    QSpinBox,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)
from superqt import QCollapsible

from engines import filekinds as fk
from engines.provenance import array, number, obj, text
from panels.base import OpenError, Panel
from panels.generate.widgets import HistoryStrip, ImageSlot, ImageView, read_image_file
from studio.jobs import EXAMINE_LANE
from studio.routing import path_is_dir, path_is_file
from studio.widgets.progress import set_progress_later

SAMPLER_LABELS = {
    "flow_euler": "Flow Euler", "flow_heun": "Flow Heun", "unipc": "UniPC", "dpmpp_2m": "DPM++ 2M",
    "dpmpp_2m_karras": "DPM++ 2M Karras", "ddim": "DDIM", "euler": "Euler", "euler_a": "Euler ancestral",
    "heun": "Heun", "lcm": "LCM",
}


def _decode_job(path: str):
    """Job (worker thread): decode an image file to ``(H, W, 3)`` uint8."""
    from engines.jobs import Progress

    yield Progress(0, 1, f"decoding {Path(path).name}")
    try:
        return read_image_file(path)
    except ValueError as exc:
        raise OpenError(str(exc)) from None


def _stored_inputs(path: str) -> tuple[dict, str | None]:
    """The input images (init, mask, reference, control) stored in an exported PNG, and a warning
    when they cannot be read (a damaged chunk is reported, not fatal)."""
    from engines.generation.input_images import INPUTS_PNG_CHUNK, decode_inputs
    from studio.export import ExportError, read_png_chunk

    try:
        data = read_png_chunk(path, INPUTS_PNG_CHUNK)
        return (decode_inputs(data) if data is not None else {}), None
    except (ExportError, ValueError) as exc:
        return {}, f"Input images not restored: {exc}"


def _png_job(path: str, record: dict | None = None, with_image: bool = True):
    """Job (worker thread): what opening a PNG in Generate reads: ``(pixels or None, record, inputs,
    warning)``; the Generate record is read here unless given (None: the PNG has none) and the
    input images stored with it are decoded (see :func:`_stored_inputs`)."""
    from studio.export import ExportError, read_provenance

    if record is None:
        try:
            record = read_provenance(path)
        except ExportError as exc:
            raise OpenError(str(exc)) from None
        if not record or record.get("panel") != "generate":
            record = None
    image = (yield from _decode_job(path)) if with_image else None
    inputs, warning = _stored_inputs(path) if record else ({}, None)
    return image, record, inputs, warning


def _model_file_job(path: str):
    """Job (worker): what a dropped model or ControlNet folder or ``.safetensors`` file is (LoRA,
    embedding, ControlNet or checkpoint, from its header) and, for a model, its :class:`ModelInfo`."""
    from engines.filekinds import CONTROLNET_FOLDER, sniff
    from engines.generation.adapter_files import adapter_info
    from engines.generation.models import ModelError, inspect_model
    from engines.jobs import Progress

    yield Progress(0, 1, f"reading {Path(path).name}")
    try:
        if Path(path).is_dir():
            info = {"kind": "controlnet" if sniff(path) == CONTROLNET_FOLDER else "checkpoint", "path": path}
        else:
            info = adapter_info(path)  # a .pt / .bin embedding is read (weights only) to check it
        if info["kind"] == "checkpoint":
            info["model"] = inspect_model(path)
    except (ModelError, ValueError) as exc:
        raise OpenError(str(exc)) from None
    return info


class GeneratePanel(Panel):
    """Generate images with the shipped digits model or the user's local diffusers models."""

    name = "generate"
    title = "Generate"
    icon = "generate.svg"
    file_types = {  # noqa: RUF012 - the Panel contract declares it as a class attribute
        ".png": "image (input, or a generated PNG whose parameters are restored)",
        ".jpg": "image (img2img input)",
        ".jpeg": "image (img2img input)",
        ".webp": "image (img2img input)",
        ".safetensors": "single-file model checkpoint, LoRA, embedding or ControlNet",
        ".pt": "textual-inversion embedding",
        ".bin": "textual-inversion embedding",
        "/": "diffusers model or ControlNet folder",
    }
    export_filters = "PNG image (*.png)"
    content_kinds = (fk.PNG, fk.JPEG, fk.WEBP, fk.MODEL_FOLDER, fk.CONTROLNET_FOLDER, fk.CHECKPOINT, fk.EMBEDDING)
    parameter_schema = obj({  # noqa: RUF012
        "model": text(4096), "prompt": text(), "negative_prompt": text(),
        "class_label": {"type": ["integer", "null"], "minimum": 0, "maximum": 1_000_000},
        "sampler": text(100), "steps": number(0, 1000, integer=True), "cfg": number(-1, 100),
        "seed": number(-1, 2**63 - 1, integer=True), "width": number(0, 8192, integer=True),
        "height": number(0, 8192, integer=True), "batch": number(1, 64, integer=True),
        "strength": number(0, 1), "ilvr_n": number(0, 1 << 16, integer=True), "mask_blur": number(0, 256), "loras": text(8192), "embeddings": text(8192), "vae": text(4096), "precision": text(40), "hires_scale": number(1, 4), "hires_strength": number(0, 1), "seed_locked": {"type": "boolean"},
        "hires_mode": text(40), "tile_size": number(0, 1024, integer=True), "tile_overlap": number(0, 1024, integer=True),
        "lora_mode": text(20), "loras_off": text(8192), "embeddings_off": text(8192), "controlnet": text(4096),
        "control_image": text(4096), "control_preprocessor": text(40), "control_scale": number(0, 10),
        "control_start": number(0, 1), "control_end": number(0, 1),
        "ilvr_factor": number(0, 1 << 16, integer=True), "model_folders": array(text(4096), max_items=100),
        "extra_models": array(text(4096), max_items=1000), "advanced_open": {"type": "boolean"},
    })

    @staticmethod
    def warm_up() -> None:
        """Import torch and diffusers off the GUI thread (the first generation then starts at once)."""
        import diffusers  # noqa: F401
        import torch  # noqa: F401

        import engines.distill3d.job  # noqa: F401 - the 3D mode's Run imports it
        import engines.generation.interop  # noqa: F401 - read when a PNG with generation text is opened
        import engines.generation.model_scan  # noqa: F401 - the model scans' job

    def __init__(self, services, parent: QWidget | None = None) -> None:
        super().__init__(services, parent)
        self.models: list = []
        self.model_problems: list = []
        self.model_folders: list[str] = []
        self.extra_models: list[str] = []
        self._scan_serial = 0  # the newest model scan; an older one's result is dropped
        self._scan_handle = None  # the newest scan's job while it runs
        self._scan_select: str | None = None  # the model path to select when it ends
        self._restore_model: tuple | None = None  # (name or path, fallback path) the scan resolves
        self._pending_restore: tuple | None = None  # restored parameters applied again once it is listed
        self._model_description = ""
        self.history: list[dict] = []
        self.current_index: int | None = None
        self.jobs_active: list = []
        self.preview_count = 0
        self.carried_params: dict = {}
        from panels.generate.history_store import HistoryStore

        self.history_store = HistoryStore.for_settings(services.settings)  # None: history kept in memory only
        self._build_workspace()
        self.parameters_widget()
        self.refresh_models()  # a job: "Scanning model folders…" until it lists them
        self._model_changed()
        from panels.generate.threed import install_3d_mode

        install_3d_mode(self, self.mode_tabs)

    # ------------------------------------------------------------------ layout
    def _build_workspace(self) -> None:
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        self.mode_tabs = QTabWidget()  # "Images" (this page) and "3D" (panels/generate/threed.py)
        outer.addWidget(self.mode_tabs)
        images_page = QWidget()
        self.mode_tabs.addTab(images_page, "Images")
        layout = QVBoxLayout(images_page)
        self.view = ImageView("No image yet.\nChoose a model and a class or prompt, then press Generate (Ctrl+Enter).")
        layout.addWidget(self.view, 1)
        status = QHBoxLayout()
        self.status = QLabel("Ready.")
        # long summaries must not widen the panel: the label may be cut, its tooltip has the full text
        self.status.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        self.status.setMinimumWidth(50)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setMaximumWidth(220)
        self.progress.hide()
        status.addWidget(self.status, 1)
        status.addWidget(self.progress)
        layout.addLayout(status)
        row = QHBoxLayout()
        row.addWidget(QLabel("History"))
        row.addStretch(1)
        self.reuse_button = QPushButton("Reuse parameters")
        self.input_button = QPushButton("Use as input")
        self.export_button = QPushButton("Export…")
        self.codec_button = QPushButton("Send to Codec")
        self.render_button = QPushButton("Send to Render")
        for b in (self.reuse_button, self.input_button, self.export_button, self.codec_button, self.render_button):
            b.setEnabled(False)
            row.addWidget(b)
        self.clear_history_button = QPushButton("Clear history")
        self.clear_history_button.setToolTip("Remove every result from the history, also the copies kept on disk")
        self.clear_history_button.clicked.connect(self.clear_history)
        self.clear_history_button.setEnabled(False)
        row.addWidget(self.clear_history_button)
        layout.addLayout(row)
        self.strip = HistoryStrip()
        layout.addWidget(self.strip)
        self.strip.currentRowChanged.connect(self._select_history)
        self.reuse_button.clicked.connect(self.reuse_selected)
        self.input_button.clicked.connect(self.use_selected_as_input)
        self.export_button.clicked.connect(self._export_dialog)
        self.codec_button.clicked.connect(lambda: self.send_selected("codec"))
        self.render_button.clicked.connect(lambda: self.send_selected("render"))
        self._history_load = None  # the job reading the results of earlier sessions (cancelled by a clear)
        if self.history_store is not None:
            self._history_load = self.services.jobs.submit("Load Generate history", self.name,
                                                           self.history_store.load_job,
                                                           on_result=self._add_loaded_history)

    def build_parameters(self) -> QWidget:
        # a plain page like the other panels': the parameters dock scrolls it and is sized to its
        # minimum width (a nested scroll area of fixed width clipped the image slots' buttons)
        body = QWidget()
        layout = QVBoxLayout(body)
        form = QFormLayout()
        model_row = QHBoxLayout()
        self.model_combo = QComboBox()
        self.model_combo.setToolTip("Shipped models and models found in your model folders")
        self.folder_button = QToolButton()
        self.folder_button.setText("…")
        self.folder_button.setToolTip("Add a model folder to scan")
        self.folder_button.clicked.connect(self._add_folder_dialog)
        model_row.addWidget(self.model_combo, 1)
        model_row.addWidget(self.folder_button)
        form.addRow("Model", model_row)
        self.model_note = QLabel("")
        self.model_note.setWordWrap(True)
        self.model_note.setStyleSheet("color: #9e9e9e;")
        form.addRow(self.model_note)
        self.class_label = QLabel("Class")
        self.class_combo = QComboBox()
        form.addRow(self.class_label, self.class_combo)
        self.prompt_label = QLabel("Prompt")
        self.prompt = QPlainTextEdit()
        self.prompt.setPlaceholderText("Describe the image…")
        self.prompt.setFixedHeight(70)
        form.addRow(self.prompt_label, self.prompt)
        layout.addLayout(form)
        buttons = QHBoxLayout()
        self.generate_button = QPushButton("Generate")
        self.generate_button.setToolTip("Generate (Ctrl+Enter)")
        self.generate_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        buttons.addWidget(self.generate_button, 1)
        buttons.addWidget(self.cancel_button)
        layout.addLayout(buttons)
        self.generate_button.clicked.connect(self.generate)
        self.cancel_button.clicked.connect(self.cancel)
        for seq in ("Ctrl+Return", "Ctrl+Enter"):
            for owner in (self, body):
                shortcut = QShortcut(QKeySequence(seq), owner)
                shortcut.setContext(Qt.WidgetWithChildrenShortcut)
                shortcut.activated.connect(self.generate)

        self.advanced = QCollapsible("Advanced", collapsedIcon="▶")
        adv = QWidget()
        adv_form = QFormLayout(adv)
        adv_form.setRowWrapPolicy(QFormLayout.WrapLongRows)
        self.sampler_combo = QComboBox()
        adv_form.addRow("Sampler", self.sampler_combo)
        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(1, 1000)
        adv_form.addRow("Steps", self.steps_spin)
        self.cfg_spin = QDoubleSpinBox()
        self.cfg_spin.setRange(0.0, 30.0)
        self.cfg_spin.setSingleStep(0.5)
        adv_form.addRow("Guidance (CFG)", self.cfg_spin)
        seed_row = QHBoxLayout()
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 2)
        self.seed_lock = QCheckBox("Lock")
        self.seed_lock.setToolTip("Locked: reuse this seed. Unlocked: a new random seed for every run")
        self.seed_random = QToolButton()
        self.seed_random.setText("New")
        self.seed_random.setToolTip("New random seed")
        self.seed_random.clicked.connect(self.randomize_seed)
        seed_row.addWidget(self.seed_spin, 1)
        seed_row.addWidget(self.seed_lock)
        seed_row.addWidget(self.seed_random)
        adv_form.addRow("Seed", seed_row)
        size_row = QHBoxLayout()
        self.width_spin = QSpinBox()
        self.height_spin = QSpinBox()
        for spin in (self.width_spin, self.height_spin):
            spin.setRange(8, 2048)
            spin.setSingleStep(8)
            size_row.addWidget(spin)
        adv_form.addRow("Width × height", size_row)
        self.batch_spin = QSpinBox()
        self.batch_spin.setRange(1, 16)
        adv_form.addRow("Batch", self.batch_spin)
        self.negative = QPlainTextEdit()
        self.negative.setPlaceholderText("What to avoid")
        self.negative.setFixedHeight(50)
        adv_form.addRow("Negative prompt", self.negative)
        self.adv_form = adv_form
        self.advanced.addWidget(adv)
        layout.addWidget(self.advanced)

        self.edit_box = QCollapsible("Edit: input, mask, reference", collapsedIcon="▶")
        edit = QWidget()
        edit_layout = QVBoxLayout(edit)
        self.init_slot = ImageSlot("Input image (img2img / inpainting)")
        edit_layout.addWidget(self.init_slot)
        strength_row = QHBoxLayout()
        self.strength_slider = QSlider(Qt.Horizontal)
        self.strength_slider.setRange(0, 100)
        self.strength_slider.setValue(75)
        self.strength_value = QLabel("0.75")
        self.strength_slider.valueChanged.connect(lambda v: self.strength_value.setText(f"{v / 100:.2f}"))
        strength_label = QLabel("Strength")
        tip = "How much of the input image to change: 0 keeps it, 1 ignores it (used only with an input image)"
        for w in (strength_label, self.strength_slider):
            w.setToolTip(tip)
        strength_row.addWidget(strength_label)
        strength_row.addWidget(self.strength_slider, 1)
        strength_row.addWidget(self.strength_value)
        edit_layout.addLayout(strength_row)
        sketch_row = QHBoxLayout()
        self.blank_button = QPushButton("Blank canvas")
        self.blank_button.setToolTip("Start a black input image of the output size to draw on")
        self.blank_button.clicked.connect(self.new_blank_canvas)
        self.sketch_toggle = QCheckBox("Draw")
        self.sketch_toggle.setToolTip("Draw into the input image: left button white, right button black")
        sketch_row.addWidget(self.blank_button)
        sketch_row.addWidget(self.sketch_toggle)
        sketch_row.addStretch(1)
        edit_layout.addLayout(sketch_row)
        mask_row = QHBoxLayout()
        self.mask_toggle = QCheckBox("Paint mask")
        self.mask_toggle.setToolTip("Paint the area to regenerate (left button); right button erases")
        self.mask_toggle.toggled.connect(lambda on: self._set_brush_mode("mask", on))
        self.sketch_toggle.toggled.connect(lambda on: self._set_brush_mode("sketch", on))
        self.brush_spin = QSpinBox()
        self.brush_spin.setRange(1, 64)
        self.brush_spin.setValue(4)
        self.brush_spin.setPrefix("brush ")
        self.brush_spin.valueChanged.connect(lambda v: setattr(self.init_slot.canvas, "brush", float(v)))
        self.mask_invert = QPushButton("Invert")
        self.mask_invert.clicked.connect(self.init_slot.canvas.invert_mask)
        self.mask_clear = QPushButton("Clear mask")
        self.mask_clear.clicked.connect(lambda: self.init_slot.canvas.set_mask(None))
        mask_row.addWidget(self.mask_toggle)
        mask_row.addWidget(self.brush_spin)
        mask_row.addStretch(1)
        edit_layout.addLayout(mask_row)
        mask_row2 = QHBoxLayout()
        mask_row2.addWidget(self.mask_invert)
        mask_row2.addWidget(self.mask_clear)
        mask_row2.addStretch(1)
        edit_layout.addLayout(mask_row2)
        self.ref_slot = ImageSlot("ILVR reference (keeps its coarse layout)", "Drop, paste or open\na reference image")
        edit_layout.addWidget(self.ref_slot)
        ilvr_row = QHBoxLayout()
        self.ilvr_slider = QSlider(Qt.Horizontal)
        self.ilvr_slider.setRange(1, 6)  # N = 2 ** value
        self.ilvr_slider.setValue(2)
        self.ilvr_value = QLabel("N = 4")
        self.ilvr_slider.valueChanged.connect(lambda v: self.ilvr_value.setText(f"N = {2 ** v}"))
        ilvr_label = QLabel("ILVR factor")
        tip = ("Low-pass factor N: the result keeps the reference's layout at 1/N resolution. "
               "Small N follows the reference closely, large N only loosely")
        for w in (ilvr_label, self.ilvr_slider):
            w.setToolTip(tip)
        ilvr_row.addWidget(ilvr_label)
        ilvr_row.addWidget(self.ilvr_slider, 1)
        ilvr_row.addWidget(self.ilvr_value)
        edit_layout.addLayout(ilvr_row)
        self.edit_box.addWidget(edit)
        layout.addWidget(self.edit_box)
        from panels.generate.adapters import AdaptersSection
        from panels.generate.control import ControlSection

        self.adapters_box = QCollapsible("Adapters: LoRA, embeddings, VAE", collapsedIcon="▶")
        self.adapters = AdaptersSection(self.services, self.name)
        self.adapters.word_clicked.connect(self.insert_prompt_word)
        self.adapters.resized.connect(lambda: self._refit(self.adapters_box))
        self.adapters_box.toggled.connect(lambda on: on and self.adapters.load_presets())
        self.adapters_box.addWidget(self.adapters)
        layout.addWidget(self.adapters_box)
        self.control_box = QCollapsible("ControlNet", collapsedIcon="▶")
        self.control = ControlSection(self.services, self.name,
                                      lambda: (self.height_spin.value(), self.width_spin.value()),
                                      self._take_input_for_control, self._inputs_folder)
        self.control_box.addWidget(self.control)
        layout.addWidget(self.control_box)
        layout.addStretch(1)
        self.model_combo.currentIndexChanged.connect(self._model_changed)
        return body

    @staticmethod
    def _refit(box) -> None:
        """An expanded collapsible keeps its content height: re-expand it once the layout settled."""
        from qtpy.QtCore import QTimer

        QTimer.singleShot(0, box, lambda: box.isExpanded() and box.expand(animate=False))

    def _set_brush_mode(self, mode: str, on: bool) -> None:
        """Mask painting and drawing are exclusive brush modes on the input canvas."""
        if on:
            other = self.sketch_toggle if mode == "mask" else self.mask_toggle
            other.blockSignals(True)
            other.setChecked(False)
            other.blockSignals(False)
            self.init_slot.canvas.mode = mode
        elif self.init_slot.canvas.mode == mode:
            self.init_slot.canvas.mode = "off"

    def new_blank_canvas(self) -> None:
        """A black input image of the current output size, ready to draw on."""
        self.init_slot.set_image(np.zeros((self.height_spin.value(), self.width_spin.value(), 3), np.uint8))
        self.brush_spin.setValue(max(1, self.width_spin.value() // 16))
        self.sketch_toggle.setChecked(True)
        self.strength_slider.setValue(max(self.strength_slider.value(), 80))
        if not self.edit_box.isExpanded():
            self.edit_box.expand(animate=False)

    # ------------------------------------------------------------------ models
    def refresh_models(self, select: str | None = None) -> None:
        """Rescan the shipped folder, the model folders and explicitly opened models: a job on the
        ``examine`` lane reads them; the list shown meanwhile stays usable and is replaced when the
        newest scan ends (``select``, a path, is then selected; an older scan's result is dropped)."""
        from engines.generation.model_scan import scan_models_job

        self._scan_serial += 1
        serial = self._scan_serial
        if self._scan_handle is not None:
            self._scan_handle.cancel()  # dropped if still queued; its result is ignored anyway
        keep = select or self._scan_select or self.model_combo.currentData()
        self._scan_select = keep
        folders, extra = list(self.model_folders), list(self.extra_models)
        wanted, fallback = self._restore_model if self._restore_model else (None, None)
        self._show_scanning(True)
        self._scan_handle = self.services.jobs.submit(
            "scan model folders", self.name, lambda: scan_models_job(folders, extra, wanted, fallback),
            device=EXAMINE_LANE, on_result=lambda scan: self._models_scanned(serial, scan),
            on_error=lambda record: self._scan_ended(serial), on_cancel=lambda: self._scan_ended(serial))

    @property
    def scanning_models(self) -> bool:
        """True while a model scan runs (the list shown is the previous one)."""
        return self._scan_handle is not None

    def _scan_ended(self, serial: int) -> None:
        """A scan failed or was cancelled: if it was the newest, the list stays as it is."""
        if serial == self._scan_serial:
            self._scan_handle, self._scan_select, self._restore_model, self._pending_restore = None, None, None, None
            self._show_scanning(False)

    def _models_scanned(self, serial: int, scan) -> None:
        """The newest scan's models replace the list (models opened meanwhile stay listed)."""
        if serial != self._scan_serial:
            return  # an older scan: a newer one is running and will list the models
        restore, restore_model = self._pending_restore, self._restore_model
        select = scan.wanted_path or self._scan_select
        self._scan_handle, self._scan_select, self._pending_restore, self._restore_model = None, None, None, None
        listed = {m.path for m in scan.models}
        kept = [m for m in self.models if m.path in self.extra_models and m.path not in listed]
        self.models, self.model_problems = [*scan.models, *kept], list(scan.problems)
        if scan.wanted_added and scan.wanted_path not in self.extra_models:
            self.extra_models.append(scan.wanted_path)  # a restored model outside the model folders
        self._fill_model_combo(select)
        self._show_scanning(False)
        if self.model_problems:
            self.services.log("Model scan: " + "; ".join(self.model_problems), "warning")
        if restore_model and scan.wanted_problem:
            self.services.notify(f"Model of these parameters is not available: {scan.wanted_problem}", "warning")
        if restore is not None:
            self._apply_restored(*restore)  # the model's defaults replaced the restored values

    def _fill_model_combo(self, select: str | None) -> None:
        """List ``self.models``, selecting ``select`` (a path; else the current or the first model);
        the model's defaults are applied only if the selected model changed."""
        before = self.model_combo.currentData()
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        for info in self.models:
            label = info.name + ("  (shipped)" if info.shipped else "")
            self.model_combo.addItem(label, info.path)
        index = self.model_combo.findData(select) if select else -1
        self.model_combo.setCurrentIndex(index if index >= 0 else max(0, self.model_combo.findData(before)))
        self.model_combo.blockSignals(False)
        if self.model_combo.currentData() != before or before is None:
            self._model_changed()
        if getattr(self, "threed", None) is not None:
            self.threed.refresh_models()

    def _show_scanning(self, scanning: bool) -> None:
        """The model note: the selected model's description, and that a scan runs (the list shown
        is usable meanwhile)."""
        if self.model_info() is None:
            self.model_combo.setPlaceholderText("scanning…" if scanning else "no models")
            self.model_note.setText("Scanning model folders…" if scanning
                                    else "No models found. Add a model folder with “…”.")
            return
        self.model_note.setText(self._model_description + ("\nScanning model folders…" if scanning else ""))

    def model_info(self):
        """The :class:`ModelInfo` selected in the model menu (None if there are no models)."""
        path = self.model_combo.currentData()
        for info in self.models:
            if info.path == path:
                return info
        return None

    def _model_changed(self) -> None:
        info = self.model_info()
        self.generate_button.setEnabled(info is not None)
        if info is None:
            self._show_scanning(self.scanning_models)
            return
        kind = {"flow": "rectified flow", "epsilon": "ε-prediction", "v_prediction": "v-prediction"}.get(
            info.prediction_type, info.prediction_type)
        source = {"single": "single-file checkpoint", "own-single": "single-file checkpoint"}.get(info.kind, "")
        self._model_description = " · ".join(
            x for x in (info.description, f"{info.size[1]}×{info.size[0]} px", kind, source) if x)
        self._show_scanning(self.scanning_models)
        is_class = info.conditioning == "class"
        self.class_label.setVisible(is_class)
        self.class_combo.setVisible(is_class)
        self.prompt_label.setVisible(info.conditioning == "text")
        self.prompt.setVisible(info.conditioning == "text")
        current_class = self.class_combo.currentData()
        self.class_combo.clear()
        self.class_combo.addItem("Any (unconditional)", None)
        for i, name in enumerate(info.class_names):
            self.class_combo.addItem(name, i)
        index = self.class_combo.findData(current_class)
        self.class_combo.setCurrentIndex(index if index >= 0 and current_class is not None else min(1, self.class_combo.count() - 1))
        current_sampler = self.sampler_combo.currentData()
        self.sampler_combo.clear()
        for name in info.samplers:
            self.sampler_combo.addItem(SAMPLER_LABELS.get(name, name), name)
        target = current_sampler if current_sampler in info.samplers else info.default_sampler
        self.sampler_combo.setCurrentIndex(max(0, self.sampler_combo.findData(target)))
        self.steps_spin.setValue(info.default_steps)
        self.cfg_spin.setValue(info.default_cfg)
        self.height_spin.setValue(int(info.size[0]))
        self.width_spin.setValue(int(info.size[1]))
        self.negative.setEnabled(info.conditioning == "text")
        if hasattr(self.adv_form, "setRowVisible"):  # Qt >= 6.4: no negative prompt for class models
            self.adv_form.setRowVisible(self.negative, info.conditioning == "text")
        own = info.kind.startswith("own")
        self.adapters.set_text_model(info.conditioning == "text")
        self.ref_slot.setEnabled(own)
        self.ilvr_slider.setEnabled(own)
        self.ref_slot.title.setText("ILVR reference (keeps its coarse layout)" if own else
                                    "ILVR reference: only for pixel-space models such as digits-flow")

    def add_model_folder(self, folder: str) -> None:
        """Scan ``folder`` for models from now on."""
        if folder and folder not in self.model_folders:
            self.model_folders.append(folder)
        self.refresh_models()

    def _add_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Model folder")
        if folder:
            self.add_model_folder(folder)

    # ------------------------------------------------------------------ parameters
    def generation_params(self):
        """The :class:`GenerationParams` the controls describe now."""
        from engines.generation.api import GenerationParams

        info = self.model_info()
        text = info is not None and info.conditioning == "text"
        values = dict(  # noqa: C408 - keyword form reads like GenerationParams
            model=(info.name if info.shipped else info.path) if info else "",
            prompt=self.prompt.toPlainText() if text else "",
            negative_prompt=self.negative.toPlainText() if text else "",
            class_label=self.class_combo.currentData() if info and info.conditioning == "class" else None,
            sampler=self.sampler_combo.currentData() or "",
            steps=self.steps_spin.value(), cfg=self.cfg_spin.value(), seed=self.seed_spin.value(),
            width=self.width_spin.value(), height=self.height_spin.value(), batch=self.batch_spin.value(),
            strength=self.strength_slider.value() / 100.0,
            # the reference applies only to models in the own loop (the slot is disabled for others)
            ilvr_n=2 ** self.ilvr_slider.value() if self.ref_slot.image() is not None and info is not None
            and info.kind.startswith("own") else 0,
        )
        values.update(self.adapters.values())
        values.update(self.control.values())
        # keys without a control here (mask blur, engine options added later) come from restored parameters
        return GenerationParams.from_dict({**self.carried_params, **values})

    def current_parameters(self) -> dict:
        params = self.generation_params().to_dict()
        params.update({
            "seed_locked": self.seed_lock.isChecked(),
            "ilvr_factor": 2 ** self.ilvr_slider.value(),
            "model_folders": list(self.model_folders),
            "extra_models": list(self.extra_models),
            "advanced_open": self.advanced.isExpanded(),
            **self.adapters.settings(),
        })
        return params

    def restore_parameters(self, parameters: dict, model_fallback: str | None = None) -> None:
        """Show ``parameters``; their model (a name, or ``model_fallback``, a path, when no model of
        that name is listed) is resolved by a model scan and selected when it ends."""
        from engines.generation.api import GenerationParams

        parameters = dict(self.check_parameters(parameters or {}))
        # settings without controls here (mask blur, ...) are carried over from restored parameters so
        # regenerating reproduces the image; the controls below override the keys they own
        self.carried_params = {k: v for k, v in parameters.items() if k in GenerationParams.__dataclass_fields__}
        try:
            GenerationParams.from_dict(parameters)
        except ValueError as exc:
            raise OpenError(str(exc)) from None
        folders = [f for f in parameters.get("model_folders", []) if isinstance(f, str)]
        extra = [f for f in parameters.get("extra_models", []) if isinstance(f, str)]
        before = (list(self.model_folders), list(self.extra_models))
        self.model_folders, self.extra_models = folders or self.model_folders, extra or self.extra_models
        changed = (self.model_folders, self.extra_models) != before
        p = GenerationParams.from_dict(parameters)
        listed = next((m.path for m in self.models if p.model in (m.name, m.path)), None) if p.model else None
        if listed is not None and not changed and not self.scanning_models:
            self._fill_model_combo(listed)  # listed already: no scan
        elif p.model or changed:
            self._restore_model = (p.model, model_fallback) if p.model else None
            self._pending_restore = (parameters, p)
            self.refresh_models()
        self._apply_restored(parameters, p)

    def _apply_restored(self, parameters: dict, p) -> None:
        """Set the controls from restored ``parameters`` (``p``: them as GenerationParams)."""
        if p.sampler:
            i = self.sampler_combo.findData(p.sampler)
            if i >= 0:
                self.sampler_combo.setCurrentIndex(i)
        if p.steps:
            self.steps_spin.setValue(p.steps)
        if p.cfg >= 0:
            self.cfg_spin.setValue(p.cfg)
        if p.seed >= 0:
            self.seed_spin.setValue(p.seed)
        if p.width:
            self.width_spin.setValue(p.width)
        if p.height:
            self.height_spin.setValue(p.height)
        self.batch_spin.setValue(max(1, p.batch))
        self.prompt.setPlainText(p.prompt)
        self.negative.setPlainText(p.negative_prompt)
        i = self.class_combo.findData(p.class_label)
        if p.class_label is None:
            i = 0
        if i >= 0:
            self.class_combo.setCurrentIndex(i)
        self.strength_slider.setValue(round(p.strength * 100))
        factor = int(parameters.get("ilvr_factor") or p.ilvr_n or 4)
        self.ilvr_slider.setValue(max(1, min(6, round(float(np.log2(max(2, factor)))))))
        if "seed_locked" in parameters:
            self.seed_lock.setChecked(bool(parameters["seed_locked"]))
        self.adapters.set_values(parameters)
        self.control.set_values(parameters)
        for box, keys in ((self.adapters_box, ("loras", "embeddings", "vae")), (self.control_box, ("controlnet",))):
            if any(parameters.get(k) for k in keys) and not box.isExpanded():
                box.expand(animate=False)
        if parameters.get("advanced_open") and not self.advanced.isExpanded():
            self.advanced.expand(animate=False)

    def restore_from_provenance(self, provenance: dict) -> None:
        from engines.generation.api import params_from_provenance

        try:
            params = params_from_provenance(provenance)
        except ValueError as exc:
            raise OpenError(str(exc)) from None
        data = params.to_dict()
        data["seed_locked"] = True  # reproduce exactly this image
        # if the name is unknown here but the recorded folder exists, the scan takes that one
        self.restore_parameters(data, model_fallback=(provenance.get("generation") or {}).get("model_path"))
        source = f" from {provenance['imported_from']} metadata" if provenance.get("imported_from") else ""
        self.services.notify(f"Restored parameters{source} (seed {params.seed}, {params.sampler}, {params.steps} steps)")

    def open_exported(self, path: str, provenance: dict, open_file: bool = True):
        """A PNG this panel generated: its parameters are checked here; a job reads its pixels (with
        ``open_file``) and stored input images, then they are restored and shown. Returns the job handle."""
        self.check_parameters(provenance.get("parameters") or {})
        path = str(path)
        return self.load_in_background(path, lambda: _png_job(path, provenance, open_file),
                                       lambda result: self._show_png(result, path))

    def _show_png(self, result: tuple, path: str) -> None:
        """Show what :func:`_png_job` read: a Generate PNG restores its parameters and inputs and is
        shown as a result; another PNG becomes the input image."""
        image, record, inputs, warning = result
        if record is None:
            self._use_as_input(image, path)
            return
        self.restore_from_provenance(record)
        self._restore_input_arrays(inputs, warning)
        if image is not None:
            self.view.set_image(image)

    def restore_inputs(self, path: str) -> None:
        """Put the input image, mask and reference stored in an exported PNG back into the edit slots
        (read on the calling thread; the panel's own opens read them in a job)."""
        self._restore_input_arrays(*_stored_inputs(path))

    def _restore_input_arrays(self, arrays: dict, warning: str | None = None) -> None:
        if warning:
            self.services.notify(warning, "warning")
            return
        if "init" in arrays:
            self.init_slot.set_image(arrays["init"])
            if "mask" in arrays:
                self.init_slot.canvas.set_mask(arrays["mask"])
        if "reference" in arrays:
            self.ref_slot.set_image(arrays["reference"])
        if "control" in arrays:
            self._restore_control_image(arrays.pop("control"))
        if arrays and not self.edit_box.isExpanded():
            self.edit_box.expand(animate=False)

    def _take_input_for_control(self):
        """The drawn input image and its mask for the ControlNet section (the input slot is emptied,
        so the next run is not img2img); None when there is no input image."""
        image = self.init_slot.image()
        if image is None:
            return None
        taken = (np.array(image), self.init_slot.canvas.mask())
        self.init_slot.clear()
        self.services.notify("The input image is now the ControlNet control image")
        return taken

    def _inputs_folder(self) -> Path:
        """Where input images restored or drawn for tools that take files are stored."""
        import tempfile

        return (self.history_store.folder if self.history_store is not None else
                Path(tempfile.gettempdir()) / "spectra") / "inputs"

    def _restore_control_image(self, array) -> None:
        """The control image stored in a dropped PNG: used from a hash-addressed copy (beside the
        history, or in the temp folder) when the recorded file is gone."""
        if self.control.image_path and Path(self.control.image_path).is_file():
            return
        from engines.generation.input_images import store_input_image

        try:
            path = store_input_image(array, self._inputs_folder())
        except (OSError, ValueError) as exc:
            self.services.notify(f"Control image not restored: {exc}", "warning")
            return
        self.control.set_image_path(str(path))

    def insert_prompt_word(self, word: str) -> None:
        """Append a trigger word or embedding token to the prompt (comma separated)."""
        if self.prompt.isHidden():
            self.services.notify("This model takes no prompt; choose a text model to use trigger words.", "warning")
            return
        current = self.prompt.toPlainText().rstrip()
        if word in current.split(", "):
            return
        self.prompt.setPlainText(f"{current}, {word}" if current else word)
        self.prompt.moveCursor(self.prompt.textCursor().MoveOperation.End)

    def randomize_seed(self) -> None:
        self.seed_spin.setValue(random.SystemRandom().randrange(0, 2**31 - 2))

    # ------------------------------------------------------------------ jobs
    def generate(self) -> None:
        """Queue a generation job with the current controls."""
        from engines.generation.api import generate_job

        info = self.model_info()
        if info is None:
            self.services.notify("Choose a model first.", "warning")
            return
        if not self.seed_lock.isChecked():
            self.randomize_seed()
        params = self.generation_params()
        init = self.init_slot.image()
        mask = self.init_slot.canvas.mask() if init is not None else None
        reference = self.ref_slot.image() if info.kind.startswith("own") else None
        if init is None:
            params.strength = 1.0
        inputs = {"init": self.init_slot.path if init is not None else "",
                  "mask": "", "reference": self.ref_slot.path if reference is not None else ""}
        arrays = {role: None if a is None else np.array(a) for role, a in  # copies: painting goes on
                  (("init", init), ("mask", mask), ("reference", reference))}
        folders = list(self.model_folders)
        device = self.services.device()
        self.preview_count = 0
        label = f"{info.name}: " + (params.prompt[:30] if params.prompt else f"class {params.class_label}")

        from engines.jobs import CancelToken

        token = CancelToken()  # also checked inside diffusers' step callback, so cancel is immediate

        def factory():
            return generate_job(params, init=init, mask=mask, reference=reference, model_folders=folders,
                                device=device, cancel=token)

        box = {}

        def done(callback):
            def wrapped(*args):
                handle = box.get("handle")
                if handle in self.jobs_active:
                    self.jobs_active.remove(handle)
                callback(*args)
                self._set_running(bool(self.jobs_active))
            return wrapped

        handle = self.services.jobs.submit(
            f"Generate {label}", self.name, factory, device=device,
            on_event=self._on_event, on_result=done(lambda r: self._on_result(r, inputs, arrays)),
            on_error=done(self._on_error), on_cancel=done(self._on_cancel), cancel_token=token,
        )
        box["handle"] = handle
        if handle.state in ("queued", "running", "paused"):
            self.jobs_active.append(handle)
        self._set_running(bool(self.jobs_active))
        if len(self.jobs_active) > 1:
            self._status(f"Queued ({len(self.jobs_active) - 1} waiting)")

    @property
    def job(self):
        """The oldest unfinished generation job of this panel (None when idle)."""
        return self.jobs_active[0] if self.jobs_active else None

    def cancel(self) -> None:
        """Cancel every queued and running generation of this panel (results are discarded)."""
        for handle in list(self.jobs_active):
            handle.cancel()

    def _set_running(self, running: bool) -> None:
        self.generate_button.setEnabled(self.model_info() is not None)
        self.cancel_button.setEnabled(running)
        self.progress.setVisible(running)
        if not running:
            self.progress.setValue(0)

    def _status(self, text: str) -> None:
        self.status.setText(text)
        self.status.setToolTip(text)

    def _on_event(self, event: Any) -> None:
        from engines.jobs import Preview, Progress

        if isinstance(event, Preview) and event.image is not None:
            self.preview_count += 1
            self.view.set_image(event.image)
        elif isinstance(event, Progress):
            set_progress_later(self.progress, int(event.fraction * 1000))
            self._status(event.message)

    def _on_result(self, result, inputs: dict, arrays: dict | None = None) -> None:
        from engines.generation.api import provenance_for

        first = None
        for i in range(result.images.shape[0]):
            entry = {
                "image": result.images[i],
                "params": dict(result.params, seed=result.seeds[i], batch=1),
                "provenance": provenance_for(result, i, inputs),
                "mode": result.mode,
                "inputs": {k: v for k, v in dict(arrays or {}, control=result.extra.get("control_source")).items()
                           if v is not None},  # the ControlNet's control image travels with the PNG too
            }
            index = self._add_history_entry(entry)
            if self.history_store is not None:
                self.history_store.add(entry)
            first = index if first is None else first
        self.strip.setCurrentRow(first)  # shows the first new image and its summary in the status line
        n = len(result.seeds)
        self._status(f"Done in {result.seconds:.1f} s" + (f" ({n} images, seeds {result.seeds[0]}…{result.seeds[-1]})"
                                                                if n > 1 else "") + " — " + self.status.text())

    def _add_history_entry(self, entry: dict) -> int:
        """Append ``entry`` to the history and the strip; returns its index."""
        self.history.append(entry)
        index = len(self.history) - 1
        p = entry["params"]
        what = p["prompt"][:40] if p.get("prompt") else f"class {p.get('class_label')}"
        tip = f"{what}\n{p.get('sampler')} · {p.get('steps')} steps · CFG {p.get('cfg')} · seed {p.get('seed')} · {entry['mode']}"
        self.strip.add(entry["image"], f"#{index + 1}", tip, index, thumbnail=entry.pop("thumbnail", None))
        self.clear_history_button.setEnabled(True)
        return index

    def _add_loaded_history(self, entries: list) -> None:
        """Results of earlier sessions go before this session's."""
        current, selected = self.history, self.current_index
        self.history = []
        self.strip.clear()
        for entry in list(entries) + current:
            self._add_history_entry(entry)
        if selected is not None:
            self.strip.setCurrentRow(selected + len(entries))

    def clear_history(self) -> None:
        """Forget every result, also the copies on disk (deleted by a job: those stored until now)."""
        if self._history_load is not None:  # results still being read must not come back after the clear
            self._history_load.cancel()
        if self.history_store is not None:
            store, before = self.history_store, self.history_store.stamp()
            self.services.jobs.submit("clear Generate history", self.name, lambda: store.clear_job(before), device="io")
        self.history = []
        self.strip.clear()
        self._select_history(-1)
        self.view.set_image(None)

    def _on_error(self, record) -> None:
        self._status(f"Failed: {record.error}")
        self.services.notify(f"Generation failed: {record.error}", "error")

    def _on_cancel(self) -> None:
        self._status("Cancelled (result discarded).")
        if self.current_index is not None:
            self.view.set_image(self.history[self.current_index]["image"])
        else:
            self.view.set_image(None)

    # ------------------------------------------------------------------ history
    def _select_history(self, row: int) -> None:
        valid = 0 <= row < len(self.history)
        self.current_index = row if valid else None
        for b in (self.reuse_button, self.input_button, self.export_button, self.codec_button, self.render_button):
            b.setEnabled(valid)
        self.clear_history_button.setEnabled(bool(self.history))
        if valid:
            entry = self.history[row]
            self.view.set_image(entry["image"])
            p = entry["params"]
            what = f"“{p['prompt'][:40]}”" if p.get("prompt") else (
                f"class {p['class_label']}" if p.get("class_label") is not None else "unconditional")
            self._status(f"#{row + 1} · {entry['mode']} · {what} · {SAMPLER_LABELS.get(p['sampler'], p['sampler'])}"
                                f" · {p['steps']} steps · CFG {p['cfg']:g} · seed {p['seed']}")

    def selected_entry(self) -> dict | None:
        return self.history[self.current_index] if self.current_index is not None else None

    def reuse_selected(self) -> None:
        """Put the selected result's parameters (with its seed, locked) back into the controls."""
        entry = self.selected_entry()
        if entry is not None:
            data = dict(entry["params"], seed_locked=True)
            self.restore_parameters(data)

    def use_selected_as_input(self) -> None:
        """Use the selected result as the img2img input."""
        entry = self.selected_entry()
        if entry is not None:
            self.init_slot.set_image(entry["image"])
            if not self.edit_box.isExpanded():
                self.edit_box.expand(animate=False)

    def send_selected(self, panel: str) -> None:
        entry = self.selected_entry()
        if entry is not None:
            self.services.send_to(panel, "image", entry["image"].copy())

    def can_export(self) -> bool:
        return self.selected_entry() is not None

    def export(self, path: str, force: bool = False) -> str:
        from studio.export import ExportError, save_png

        entry = self.selected_entry()
        if entry is None:
            raise OpenError("Generate has nothing to export yet")
        try:
            attachments = None
            if entry.get("inputs"):  # the input image, mask and reference travel with the PNG
                from engines.generation.input_images import INPUTS_PNG_CHUNK, encode_inputs

                attachments = {INPUTS_PNG_CHUNK: encode_inputs(entry["inputs"])}
            return str(save_png(path, entry["image"], entry["provenance"], force=force, attachments=attachments))
        except ExportError as exc:
            raise OpenError(str(exc)) from None

    def _export_dialog(self) -> None:
        entry = self.selected_entry()
        if entry is None:
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export image", f"generate-{entry['params']['seed']}.png",
                                              self.export_filters)
        if path:
            try:
                written = self.export(path, force=True)
                self.services.notify(f"Exported {written}")
            except OpenError as exc:
                self.services.notify(str(exc), "error")

    # ------------------------------------------------------------------ files
    def open_file(self, path: str):
        """Open a model folder or file (listed where it is used) or a PNG/JPEG/WebP image (a Generate
        PNG restores its parameters and is shown; any other image becomes the input); a job reads
        it. Returns the job handle."""
        p = Path(path)  # is it a folder, a file: known from the drop's examination (no stat on the GUI thread)
        if path_is_dir(p) or p.suffix.lower() in (".safetensors", ".pt", ".bin"):  # model / ControlNet folder, LoRA,
            # embedding, ControlNet, checkpoint: a job reads it
            return self.load_in_background(str(p), lambda: _model_file_job(str(p)), self._add_model_file)
        if p.suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp") and not path_is_file(p):
            raise OpenError(f"Generate cannot open {p.name}")
        # any other file name: the routing sent it here by its content (an image named .nii.gz, say);
        # the decode job reads it by content and says so if it is not an image
        if p.suffix.lower() == ".png":  # its record (if any) is read by the job
            return self.load_in_background(str(p), lambda: _png_job(str(p)), lambda result: self._show_png(result, str(p)))
        return self.load_in_background(str(p), lambda: _decode_job(str(p)), lambda image: self._use_as_input(image, str(p)))

    def _add_model_file(self, info: dict) -> None:
        """A dropped ``.safetensors`` file or folder read by :func:`_model_file_job`: list it where it
        belongs (a ControlNet becomes the ControlNet of the next run)."""
        if info["kind"] in ("lora", "embedding"):
            if info["kind"] == "lora":
                self.adapters.add_lora(info["path"], info=info)
            else:
                self.adapters.add_embedding(info["path"], info=info)
            if not self.adapters_box.isExpanded():
                self.adapters_box.expand(animate=False)
            self.services.notify(f"{'LoRA' if info['kind'] == 'lora' else 'Embedding'} {Path(info['path']).name} added")
            return
        if info["kind"] == "controlnet":
            self.control.model.set_path(info["path"])
            if not self.control_box.isExpanded():
                self.control_box.expand(animate=False)
            self.services.notify(f"ControlNet {Path(info['path']).name} set")
            return
        model = info["model"]  # inspected by the job: listed at once, no scan
        if model.path not in self.extra_models:
            self.extra_models.append(model.path)
        if model.path not in {m.path for m in self.models}:
            self.models.append(model)
        if self.scanning_models:
            self._scan_select = model.path  # the running scan's list keeps it and selects it
        self._fill_model_combo(model.path)
        self.services.notify(f"Model {model.name} added")

    def _use_as_input(self, image, path: str) -> None:
        """A decoded image becomes the init image (the edit box opens)."""
        self.init_slot.set_image(image, path)
        if not self.edit_box.isExpanded():
            self.edit_box.expand(animate=False)

    def receive(self, kind: str, payload: Any) -> None:
        if kind != "image":
            raise OpenError(f"Generate cannot receive {kind}")
        array = np.asarray(payload)
        if array.ndim not in (2, 3):
            raise OpenError(f"Generate needs an image, got an array of shape {array.shape}")
        self.init_slot.set_image(array)
        if not self.edit_box.isExpanded():
            self.edit_box.expand(animate=False)
