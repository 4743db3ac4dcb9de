"""The Adapters section of the Generate settings: LoRAs (weight, enable, trigger words),
textual-inversion embeddings (the token to type), VAE, precision preset and hires fix.

File headers are read by jobs on the ``io`` lane (never on the GUI thread); a click on a
trigger word or token emits :attr:`AdaptersSection.word_clicked` (the panel puts it in the prompt).
"""

from __future__ import annotations

import html
from pathlib import Path

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

MAX_WORDS_SHOWN = 12
HIRES_MODES = {"pixel": "upscale the decoded image (bicubic)", "latent": "upscale the latents (bicubic)",
               "latent-nearest": "upscale the latents (nearest-exact)"}
HINT_STYLE = "color: #9e9e9e;"


def select_item(combo: QComboBox, value: str) -> None:
    """Select the item whose data is ``value``, adding it first when the menu lacks it."""
    if combo.findData(value) < 0:
        combo.addItem(value, value)
    combo.setCurrentIndex(combo.findData(value))


def _short_name(name: str, limit: int = 26) -> str:
    """``name`` cut in the middle to at most ``limit`` characters (the tooltip has it all)."""
    return name if len(name) <= limit else name[: limit - 11] + "…" + name[-10:]


class PathField(QWidget):
    """A path line edit with a “…” menu (choose a folder, a file, or clear); the placeholder says
    what an empty field means (e.g. “model's own”)."""

    changed = Signal()

    def __init__(self, placeholder: str, file_filter: str, clear_label: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.file_filter = file_filter
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.edit = QLineEdit()
        self.edit.setPlaceholderText(placeholder)
        self.edit.setMinimumWidth(80)
        self.edit.editingFinished.connect(self.changed)
        self.button = QToolButton()
        self.button.setText("…")
        self.button.setPopupMode(QToolButton.InstantPopup)
        menu = QMenu(self.button)
        menu.addAction("Choose a folder…", self._choose_folder)
        menu.addAction("Choose a file…", self._choose_file)
        menu.addAction(clear_label, lambda: self.set_path(""))
        self.button.setMenu(menu)
        layout.addWidget(self.edit, 1)
        layout.addWidget(self.button)

    def path(self) -> str:
        """The chosen path ("" = none)."""
        return self.edit.text().strip()

    def set_path(self, path: str) -> None:
        """Show ``path`` (its full text also in the tooltip)."""
        self.edit.setText(path or "")
        self.edit.setCursorPosition(len(path or ""))
        self.edit.setToolTip(path or self.edit.placeholderText())
        self.changed.emit()

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a folder")
        if folder:
            self.set_path(folder)

    def _choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a file", "", self.file_filter)
        if path:
            self.set_path(path)


class AdapterRow(QWidget):
    """One LoRA or embedding: enable box with the file name, weight (LoRA only), remove button,
    and a line of clickable words (trigger words, or the embedding's token)."""

    removed = Signal(object)
    word_clicked = Signal(str)
    changed = Signal()

    def __init__(self, path: str, weight: float | None, enabled: bool = True, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.path = path
        self.words: list[str] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 2)
        layout.setSpacing(0)
        top = QHBoxLayout()
        self.enable = QCheckBox(_short_name(Path(path).stem))  # long names must not widen the dock
        self.enable.setChecked(enabled)
        self.enable.setToolTip(f"{path}\nUntick to leave it out of the next run")
        self.enable.toggled.connect(self.changed)
        top.addWidget(self.enable, 1)
        self.weight = None
        if weight is not None:
            self.weight = QDoubleSpinBox()
            self.weight.setRange(-10.0, 10.0)
            self.weight.setSingleStep(0.05)
            self.weight.setDecimals(2)
            self.weight.setValue(weight)
            self.weight.setToolTip("LoRA weight (1 = as trained; negative values push away from it)")
            self.weight.valueChanged.connect(self.changed)
            top.addWidget(self.weight)
        self.remove = QToolButton()
        self.remove.setText("✕")
        self.remove.setToolTip("Remove")
        self.remove.clicked.connect(lambda: self.removed.emit(self))
        top.addWidget(self.remove)
        layout.addLayout(top)
        self.info = QLabel("reading…")
        self.info.setWordWrap(True)
        self.info.setStyleSheet(HINT_STYLE)
        self.info.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        self.info.setTextInteractionFlags(Qt.LinksAccessibleByMouse | Qt.LinksAccessibleByKeyboard)
        self.info.linkActivated.connect(lambda link: self.word_clicked.emit(self.words[int(link)]))
        layout.addWidget(self.info)

    def set_words(self, label: str, words: list, empty: str = "") -> None:
        """Show ``label`` and ``words`` as links (a click emits :attr:`word_clicked`)."""
        self.words = list(words)
        if not self.words:
            self.info.setText(empty)
            self.info.setVisible(bool(empty))
            return
        links = [f'<a href="{i}">{html.escape(w)}</a>' for i, w in enumerate(self.words[:MAX_WORDS_SHOWN])]
        more = f" (+{len(self.words) - MAX_WORDS_SHOWN})" if len(self.words) > MAX_WORDS_SHOWN else ""
        self.info.setText(f"{label}: " + ", ".join(links) + more)
        self.info.setToolTip("Click a word to add it to the prompt\n" + ", ".join(self.words))
        self.info.show()

    def set_error(self, message: str) -> None:
        """Show why the file cannot be used; it stays listed so the user sees it, switched off so that
        a run does not fail on it."""
        self.words = []
        self.enable.setChecked(False)
        self.enable.setEnabled(False)
        self.enable.setToolTip(f"Not used: {message}")
        self.info.setText(f'<span style="color: #e57373;">{html.escape(message)}</span>')
        self.info.show()

    def weight_value(self) -> float:
        return self.weight.value() if self.weight is not None else 1.0


class AdaptersSection(QWidget):
    """LoRA and embedding lists, VAE, precision and hires fix; :meth:`values` gives the
    :class:`GenerationParams` keys, :meth:`set_values` shows restored ones."""

    word_clicked = Signal(str)
    changed = Signal()
    #: rows were added or removed, or their text changed (the collapsible must fit the new height)
    resized = Signal()

    def __init__(self, services, panel_name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.services = services
        self.panel_name = panel_name
        self.lora_rows: list[AdapterRow] = []
        self.embedding_rows: list[AdapterRow] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.lora_mode = QComboBox()
        self.lora_mode.addItem("fused", "fused")
        self.lora_mode.addItem("unfused", "unfused")
        self.lora_mode.setToolTip("fused: merged into the weights for the run (fast); unfused: added to each "
                                  "layer's output, the weights are never touched")
        self.add_lora_button = QPushButton("Add…")
        self.add_lora_button.setToolTip("Add LoRA files (.safetensors); you can also drop them on the panel")
        self.add_lora_button.clicked.connect(self._add_lora_dialog)
        self.lora_list, self.lora_empty = self._list(layout, "LoRA", (self.lora_mode, self.add_lora_button),
                                                     "No LoRA. Add .safetensors files or drop them here.")
        self.add_embedding_button = QPushButton("Add…")
        self.add_embedding_button.setToolTip("Add textual-inversion embeddings (.pt, .safetensors)")
        self.add_embedding_button.clicked.connect(self._add_embedding_dialog)
        self.embedding_list, self.embedding_empty = self._list(
            layout, "Embeddings", (self.add_embedding_button,), "No embeddings. Type a token in the prompt to use one.")
        form = QFormLayout()
        form.setRowWrapPolicy(QFormLayout.WrapLongRows)
        self.vae = PathField("model's own", "VAE (*.safetensors)", "Use the model's own VAE")
        self.vae.setToolTip("Another VAE (diffusers folder or .safetensors) instead of the model's own")
        form.addRow("VAE", self.vae)
        self.precision = QComboBox()
        self.precision.addItem("default", "default")
        self.precision.setToolTip("Memory / speed preset (low-memory: attention slicing and VAE tiling; "
                                  "int8: quantized denoiser and text encoder, CPU)")
        form.addRow("Precision", self.precision)
        hires = QHBoxLayout()
        self.hires_scale = QDoubleSpinBox()
        self.hires_scale.setRange(1.0, 4.0)
        self.hires_scale.setSingleStep(0.25)
        self.hires_scale.setPrefix("×")
        self.hires_scale.setToolTip("Hires fix: upscale each image by this factor (1 = off) …")
        self.hires_strength = QDoubleSpinBox()
        self.hires_strength.setRange(0.0, 1.0)
        self.hires_strength.setSingleStep(0.05)
        self.hires_strength.setValue(0.5)
        self.hires_strength.setToolTip("… and refine it with img2img at this strength")
        hires.addWidget(self.hires_scale)
        hires.addWidget(QLabel("strength"))
        hires.addWidget(self.hires_strength)
        form.addRow("Hires fix", hires)
        self.hires_mode = QComboBox()
        for name, tip in HIRES_MODES.items():
            self.hires_mode.addItem(name, name)
            self.hires_mode.setItemData(self.hires_mode.count() - 1, tip, Qt.ToolTipRole)
        self.hires_mode.setToolTip("How the hires fix upscales: the decoded pixels, or the latents (no VAE round trip)")
        form.addRow("Upscale", self.hires_mode)
        tiles = QHBoxLayout()
        self.tile_size = QSpinBox()
        self.tile_size.setRange(0, 1024)
        self.tile_size.setSingleStep(8)
        self.tile_size.setSpecialValueText("off")
        self.tile_size.setSuffix(" px")
        self.tile_size.setToolTip("Denoise in overlapping tiles of this size (multiple of 8; off = whole image), "
                                  "so the image size is bounded by memory")
        self.tile_overlap = QSpinBox()
        self.tile_overlap.setRange(0, 512)
        self.tile_overlap.setSingleStep(8)
        self.tile_overlap.setValue(16)
        self.tile_overlap.setToolTip("Pixels shared by neighbouring tiles")
        tiles.addWidget(self.tile_size)
        tiles.addWidget(QLabel("overlap"))
        tiles.addWidget(self.tile_overlap)
        form.addRow("Tiles", tiles)
        layout.addLayout(form)
        for w in (self.lora_mode, self.precision, self.hires_mode):
            w.currentIndexChanged.connect(self.changed)
        for w in (self.hires_scale, self.hires_strength, self.tile_size, self.tile_overlap):
            w.valueChanged.connect(self.changed)
        self.vae.changed.connect(self.changed)
        self._presets_requested = False

    def load_presets(self) -> None:
        """Fill the precision menu from the engine (once, by a job: importing it loads torch)."""
        if not self._presets_requested:
            self._presets_requested = True
            self.services.jobs.submit("Read precision presets", self.panel_name, _presets_job, device="io",
                                      on_result=self._set_presets)

    def _list(self, layout, title: str, buttons: tuple, empty: str):
        head = QHBoxLayout()
        label = QLabel(f"<b>{title}</b>")
        head.addWidget(label, 1)
        for b in buttons:
            head.addWidget(b)
        layout.addLayout(head)
        box = QVBoxLayout()
        box.setSpacing(2)
        hint = QLabel(empty)
        hint.setWordWrap(True)
        hint.setStyleSheet(HINT_STYLE)
        hint.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        box.addWidget(hint)
        layout.addLayout(box)
        return box, hint

    # ------------------------------------------------------------------ rows
    def add_lora(self, path: str, weight: float = 1.0, enabled: bool = True, info: dict | None = None) -> AdapterRow:
        """List LoRA ``path``; its trigger words are read by a job unless ``info`` has them."""
        return self._add_row(self.lora_rows, self.lora_list, self.lora_empty, path, weight, enabled, info)

    def add_embedding(self, path: str, enabled: bool = True, info: dict | None = None) -> AdapterRow:
        """List embedding ``path``; its token is read by a job unless ``info`` has it."""
        return self._add_row(self.embedding_rows, self.embedding_list, self.embedding_empty, path, None, enabled, info)

    def _add_row(self, rows, box, empty, path, weight, enabled, info) -> AdapterRow:
        for row in rows:
            if row.path == path:
                if weight is not None:
                    row.weight.setValue(weight)
                row.enable.setChecked(enabled)
                return row
        row = AdapterRow(path, weight, enabled)
        row.removed.connect(self._remove_row)
        row.word_clicked.connect(self.word_clicked)
        row.changed.connect(self.changed)
        rows.append(row)
        box.addWidget(row)
        empty.hide()
        if info is not None:
            self._show_info(row, info)
        else:
            self._request_info([row])
        self.changed.emit()
        self.resized.emit()
        return row

    def _remove_row(self, row: AdapterRow) -> None:
        for rows, empty in ((self.lora_rows, self.lora_empty), (self.embedding_rows, self.embedding_empty)):
            if row in rows:
                rows.remove(row)
                empty.setVisible(not rows)
        row.setParent(None)
        row.deleteLater()
        self.changed.emit()
        self.resized.emit()

    def clear(self) -> None:
        """Remove every LoRA and embedding row."""
        for row in list(self.lora_rows) + list(self.embedding_rows):
            self._remove_row(row)

    def _request_info(self, rows: list) -> None:
        from engines.generation.adapter_files import adapter_info_job

        paths = [row.path for row in rows]

        def apply(infos: list) -> None:
            for row, info in zip(rows, infos):
                if row in self.lora_rows or row in self.embedding_rows:
                    self._show_info(row, info)
            self.resized.emit()

        self.services.jobs.submit(f"Read {len(paths)} adapter file(s)", self.panel_name,
                                  lambda: adapter_info_job(paths), device="io", on_result=apply)

    def _show_info(self, row: AdapterRow, info: dict) -> None:
        if info.get("kind") == "error":
            row.set_error(info.get("error", "unreadable"))
        elif row in self.lora_rows:
            if info.get("kind") not in ("lora", None):
                row.set_error(f"this looks like a{'n' if info['kind'][0] in 'ae' else ''} {info['kind']}, not a LoRA")
            else:
                row.set_words("Trigger words", info.get("trigger_words") or [], "no trigger words stored")
        elif info.get("kind") not in ("embedding", None):
            row.set_error(f"this looks like a {info['kind']}, not an embedding")
        else:
            label = "Type (SDXL, both encoders)" if info.get("sdxl") else "Type"
            row.set_words(label, [info.get("token") or Path(row.path).stem])

    def _add_lora_dialog(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Add LoRA", "", "LoRA (*.safetensors)")
        for path in paths:
            self.add_lora(path)

    def _add_embedding_dialog(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Add embeddings", "", "Embeddings (*.pt *.bin *.safetensors)")
        for path in paths:
            self.add_embedding(path)

    def _set_presets(self, presets: tuple) -> None:
        current = self.precision.currentData()
        self.precision.blockSignals(True)
        self.precision.clear()
        for name in dict.fromkeys(list(presets) + ([current] if current else [])):
            self.precision.addItem(name, name)
        self.precision.setCurrentIndex(max(0, self.precision.findData(current)))
        self.precision.blockSignals(False)

    def set_text_model(self, text: bool) -> None:
        """Embeddings only apply to text-conditioned models."""
        self.embedding_empty.setText("No embeddings. Type a token in the prompt to use one." if text else
                                     "Embeddings need a text-conditioned model (a prompt).")
        self.add_embedding_button.setEnabled(text)

    # ------------------------------------------------------------------ values
    def values(self) -> dict:
        """The GenerationParams keys this section sets (disabled rows are left out)."""
        return {
            "loras": ";".join(_lora_entry(r) for r in self.lora_rows if r.enable.isChecked()),
            "lora_mode": self.lora_mode.currentData() or "fused",
            "embeddings": ";".join(r.path for r in self.embedding_rows if r.enable.isChecked()),
            "vae": self.vae.path(),
            "precision": "" if self.precision.currentData() == "default" else self.precision.currentData() or "",
            "hires_scale": self.hires_scale.value(),
            "hires_strength": self.hires_strength.value(),
            "hires_mode": self.hires_mode.currentData() or "pixel",
            "tile_size": self.tile_size.value(),
            "tile_overlap": self.tile_overlap.value(),
        }

    def settings(self) -> dict:
        """Rows that are listed but switched off (kept in the panel settings, not in provenance)."""
        return {
            "loras_off": ";".join(_lora_entry(r) for r in self.lora_rows if not r.enable.isChecked()),
            "embeddings_off": ";".join(r.path for r in self.embedding_rows if not r.enable.isChecked()),
        }

    def set_values(self, params: dict) -> None:
        """Show restored parameters (keys that are absent keep their current value)."""
        from engines.generation.embeddings import parse_embedding_list
        from engines.generation.lora import parse_lora_list

        if "loras" in params or "embeddings" in params:
            self.clear()
            try:
                for on, key in ((True, "loras"), (False, "loras_off")):
                    for path, weight in parse_lora_list(params.get(key) or ""):
                        self.add_lora(path, weight, on)
            except ValueError as exc:
                self.services.notify(f"LoRA list not restored: {exc}", "warning")
            for on, key in ((True, "embeddings"), (False, "embeddings_off")):
                for path in parse_embedding_list(params.get(key) or ""):
                    self.add_embedding(path, on)
        if "lora_mode" in params:
            self.lora_mode.setCurrentIndex(max(0, self.lora_mode.findData(params["lora_mode"] or "fused")))
        if "vae" in params:
            self.vae.set_path(params["vae"] or "")
        if "precision" in params:
            select_item(self.precision, params["precision"] or "default")
        if "hires_mode" in params:
            select_item(self.hires_mode, params["hires_mode"] or "pixel")
        for key, spin in (("hires_scale", self.hires_scale), ("hires_strength", self.hires_strength),
                          ("tile_size", self.tile_size), ("tile_overlap", self.tile_overlap)):
            if key in params:
                spin.setValue(type(spin.value())(params[key]))


def _lora_entry(row: AdapterRow) -> str:
    """``path`` (weight 1) or ``path=weight``, as :func:`parse_lora_list` reads it."""
    weight = row.weight_value()
    return row.path if weight == 1.0 else f"{row.path}={weight:g}"


def _presets_job():
    """Job (io lane): the precision presets the engine offers (importing it loads torch)."""
    from engines.jobs import Progress

    yield Progress(0, 1, "reading precision presets")
    from engines.generation.precision import PRESETS

    return tuple(PRESETS)
