"""The Volume panel: vispy 3D view, three linked slice views, a 1-D TF editor, paint-to-classify.

All computation (reading large files, the phantom, features, classification, reference
renders, exports of renders) runs as engine jobs through ``services.jobs``.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from qtpy.QtCore import QSize, Qt, QTimer
from qtpy.QtGui import QColor, QIcon, QImage, QPixmap, QUndoCommand
from qtpy.QtWidgets import (
    QCheckBox,
    QColorDialog,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSlider,
    QSpinBox,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from engines import filekinds as fk
from engines.provenance import array, number, obj, one_of, text
from panels.base import OFFSCREEN_VIEW_MODULES, OpenError, Panel, import_libraries
from panels.volume.progressive_gl import TURN_MS
from panels.volume.slices import SliceView, slice_coords, view_to_voxel
from panels.volume.tf2d_editor import TF2DEditor
from panels.volume.tf_editor import TFEditor
from panels.volume.view3d import VolumeView, gradient_upper_bound
from studio.routing import path_exists

MODES = [("DVR (composite)", "dvr"), ("MIP", "mip"), ("MinIP", "minip"), ("Average", "avg"), ("Iso surface (lit)", "iso")]
DEFAULT_CLASSES = [("bone", (0.95, 0.92, 0.8), 1.0), ("vessel", (0.9, 0.1, 0.1), 1.0), ("background", (0.3, 0.5, 0.9), 0.0)]
_COLOR = array(number(0, 1), 3, 3)
PARAMETER_SCHEMA = obj({
    "source": text(4096, nullable=True), "tf": {"type": ["object", "null"]}, "mode": one_of(*(k for _, k in MODES)),
    "step": number(0.1, 8.0), "iso": number(-1e6, 1e6), "azimuth": number(-1e6, 1e6), "elevation": number(-1e6, 1e6),
    "crop": {"type": ["array", "null"]}, "export_size": number(64, 4096, integer=True),
    "method": one_of("similarity-max", "similarity", "forest"), "brush": number(0, 20, integer=True),
    "feature_resolution": one_of("auto", "full", "half"), "tf2d": {"type": ["object", "null"]},
    "use_2d": {"type": "boolean"},
    "classes": array(obj({"name": text(200), "color": _COLOR, "opacity": number(0, 1), "visible": {"type": "boolean"}},
                         required=["name", "color"]), max_items=64),
})


class _Command(QUndoCommand):
    """Undo/redo of a state change given as two callables (the first redo is skipped)."""

    def __init__(self, text: str, undo, redo) -> None:
        super().__init__(text)
        self._undo, self._redo, self._first = undo, redo, True

    def undo(self) -> None:
        self._undo()

    def redo(self) -> None:
        if self._first:
            self._first = False
            return
        self._redo()


def prepare_volume(volume) -> dict:
    """Everything :meth:`VolumePanel.set_volume` shows, computed off the GUI thread: the finite value
    range, the summary, the log histogram's counts and the 3D view's texture (uint16 over the range)."""
    from panels.volume.tf_editor import histogram_counts
    from panels.volume.view3d import scalar_texture

    lo, hi = volume.value_range()
    summary = volume.summary()
    data = np.ascontiguousarray(volume.data, dtype=np.float32)
    return {"range": (lo, hi), "summary": summary, "histogram": histogram_counts(data, (lo, hi)),
            "texture": scalar_texture(data, (lo, hi))}


#: integer volumes with at most this many values in their range draw slices through a colour table
SLICE_TABLE_MAX = 1 << 17


def slice_colours(tf, clim: tuple[float, float], values) -> np.ndarray:
    """The slice views' colour of each value: the TF colour blended over the grey of ``clim`` by twice
    the TF opacity, uint8 ``values.shape + (3,)``."""
    data = np.asarray(values).astype(np.float32)
    lo, hi = clim
    grey = np.clip((data - lo) / max(hi - lo, 1e-6), 0, 1)[..., None]
    rgba = tf.evaluate(data)
    a = np.clip(rgba[..., 3:4] * 2.0, 0, 1)
    rgb = grey * (1 - a) + rgba[..., :3] * a
    return (rgb * 255).astype(np.uint8)


def _import_view_dependencies() -> None:
    """Import what the 3D view needs to upload a volume (PyOpenGL, for vispy's 3-D textures) on the
    calling worker: a first import on the GUI thread would stall it."""
    try:
        import OpenGL.GL  # noqa: F401
    except ImportError:  # no PyOpenGL: the view falls back to the reference caster
        pass


def _feature_model_job(path: str):
    """Job (worker thread): check that ``path`` holds a TorchScript network (its zip's member names)."""
    from engines.jobs import Progress

    yield Progress(0, 1, f"reading {Path(path).name}")
    if not Path(path).is_file():
        raise OpenError(f"feature model not found: {path}")
    if fk.sniff(path) != fk.TORCHSCRIPT:
        raise OpenError(f"{Path(path).name} is not a TorchScript network (the Volume panel opens one as the feature "
                        "model of its paint classifier)")


def _read_job(path: str, downsample: bool):
    """Job (worker thread): read a volume file, DICOM folder or ``phantom:N`` and prepare it for display."""
    from engines.jobs import Progress, wait_in_thread
    from engines.volume.model import VolumeReadError
    from engines.volume.readers import is_sample_name, open_volume

    sample = is_sample_name(path) and not Path(path).exists()
    # decoding a file (e.g. a gzip NIfTI) and preparing it are single calls: on a helper thread, so a
    # cancel stops the job at once (the abandoned read finishes in the background)
    step = Progress(0, 2, "generating the phantom" if sample else f"reading {Path(path).name}")
    yield step
    try:
        if sample:
            from engines.volume.phantom import make_phantom

            size_text = path.lower().replace("sample:", "").replace("phantom", "").strip(":")
            if not size_text.isdigit() and size_text:
                raise OpenError(f"bad phantom name {path!r}; use e.g. phantom:128")
            volume, labels = yield from wait_in_thread(make_phantom, int(size_text or 128), event=step)
            volume.metadata["truth_labels"] = labels
        else:
            volume = yield from wait_in_thread(open_volume, path, downsample=downsample, event=step)
        step = Progress(1, 2, "histogram and 3D texture")
        yield step
        yield from wait_in_thread(_import_view_dependencies, event=step)
        return volume, (yield from wait_in_thread(prepare_volume, volume, event=step))
    except VolumeReadError as exc:
        raise OpenError(str(exc)) from exc


def _classify_job(data, features, strokes, method, classes, factor, previous=None, extractor=None):
    """Job: (features if needed) + classification + semantic RGBA. ``method``: similarity,
    similarity-max or forest; ``previous`` the last result (classes whose strokes did not change
    reuse its scores)."""
    from engines.volume.classify import classify_job, features_job, semantic_rgba_job

    if features is None:
        features = yield from features_job(data, factor=factor, extractor=extractor)
    aggregate = "max" if method.endswith("-max") else "mean"
    result = yield from classify_job(features, strokes, method=method.replace("-max", ""), aggregate=aggregate,
                                     previous=previous)
    rgba = yield from semantic_rgba_job(result, classes)
    return features, result, rgba


def _features_job(data, factor, extractor=None):
    """Job: the per-voxel feature volume (computed once per volume; updates reuse it);
    ``extractor`` an optional local TorchScript feature network."""
    from engines.volume.classify import features_job

    return (yield from features_job(data, factor=factor, extractor=extractor))


def _gradient_job(data, spacing):
    """Job: gradient magnitude, the (value, |∇v|) joint histogram and the largest |∇v|."""
    from engines.jobs import Progress, wait_in_thread
    from engines.volume.tf2d import gradient_magnitude, joint_histogram

    step = Progress(0, 2, "gradient magnitude")  # whole-volume numpy calls: on a helper thread (prompt cancel)
    yield step
    gmag = yield from wait_in_thread(gradient_magnitude, data, spacing, event=step)
    step = Progress(1, 2, "joint histogram")
    yield step
    hist = yield from wait_in_thread(joint_histogram, data[::2, ::2, ::2], gmag[::2, ::2, ::2], bins=(192, 96), event=step)
    return gmag, hist, float(gmag.max()) if gmag.size else 0.0  # the largest |∇v| here, not on the GUI thread


def _classify_2d_job(data, gmag, tf2d):
    """Job: RGBA volume of a 2-D TF (one numpy pass, on a helper thread so a cancel stops it at once)."""
    from engines.jobs import Progress, wait_in_thread

    step = Progress(0, 1, "classifying with the 2D TF")
    yield step
    rgba = yield from wait_in_thread(tf2d.classify, data, gmag, event=step)
    yield Progress(1, 1, "2D TF applied")
    return rgba


TF_FILE_SUFFIXES = (".vp", ".itf", ".1dt")


def _is_tf_file_name(path) -> bool:
    """A name a transfer-function file has (its content is checked when it is read, on a worker)."""
    return Path(path).suffix.lower() in (*TF_FILE_SUFFIXES, ".json")


#: libraries the Volume engines import inside their functions (readers, phantom, features), warmed up at start-up
VOLUME_LIBRARIES = ("nibabel", "nibabel.loadsave", "indexed_gzip", "nrrd", "pydicom", "tifffile", "scipy.ndimage")


def _tf_file_job(path: str, map_name: str | None, value_range):
    """Job (worker thread): read a transfer-function file; returns the TF or, for a ParaView file
    holding several colour maps when ``map_name`` is None, their names (the panel asks which)."""
    from engines.jobs import Progress
    from engines.volume.tf import load_tf
    from engines.volume.tf_exchange import tf_file_map_names

    yield Progress(0, 1, f"reading {Path(path).name}")
    if map_name is None:
        names = tf_file_map_names(path)
        if len(names) > 1:
            return names
    try:
        return load_tf(path, map_name=map_name, value_range=value_range)
    except (ValueError, OSError) as exc:
        raise OpenError(str(exc).splitlines()[0]) from exc


#: TF formats whose positions are normalised (0…1 spread over the volume's values when read)
NORMALISED_TF_SUFFIXES = (".itf", ".1dt")


def _stretched(tf, value_range, source_range=None):
    """``tf`` with its control points mapped linearly from ``source_range`` (default: its own range)
    onto ``value_range``."""
    lo, hi = source_range if source_range is not None else tf.x_range()
    a, b = value_range
    scale = (b - a) / (hi - lo) if hi > lo else 1.0

    def move(points):
        return [(a + (p[0] - lo) * scale, *p[1:]) for p in points]

    return tf.copy(color=move(tf.color), opacity=move(tf.opacity))


#: item data of the Preset box's extra entry (a transfer function that is no bundled preset)
_OTHER_TF = -1


@lru_cache(maxsize=None)
def _preset_tf(name: str):
    """A bundled preset (parsed once) to compare the transfer function in use with."""
    from engines.volume.tf import preset

    return preset(name)


def _tf_icon(name: str) -> QIcon:
    """A preset's thumbnail (colour by opacity with the opacity curve) as a menu icon."""
    from engines.volume.tf import preset
    from engines.volume.tf_exchange import tf_thumbnail

    image = np.ascontiguousarray(tf_thumbnail(preset(name)))
    h, w = image.shape[:2]
    return QIcon(QPixmap.fromImage(QImage(image.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()))


class VolumePanel(Panel):
    """Volume rendering, transfer functions and paint-to-classify."""

    name = "volume"
    title = "Volume"
    icon = "volume.svg"
    file_types = {
        ".nii": "NIfTI volume", ".nii.gz": "NIfTI volume (gzip)", ".dcm": "DICOM slice (reads its series)",
        ".nrrd": "NRRD volume", ".nhdr": "NRRD detached header", ".tif": "TIFF stack", ".tiff": "TIFF stack",
        ".npy": "NumPy array (z, y, x)", ".npz": "NumPy archive", ".mhd": "MetaImage header + raw",
        ".mha": "MetaImage", "/": "DICOM series folder",
        ".vp": "3D Slicer transfer function", ".itf": "Inviwo transfer function", ".1dt": "ImageVis3D transfer function",
        ".pv.json": "ParaView colour map",
    }
    export_filters = ("PNG render (*.png);;Transfer function (*.json);;3D Slicer transfer function (*.vp);;"
                      "ParaView colour map (*.pv.json);;Label volume (*.nii.gz *.nii)")
    # TF files: by suffix (.vp, .itf, .1dt, .pv.json) or, for other .json files, by content
    content_kinds = (fk.NIFTI, fk.DICOM, fk.DICOM_FOLDER, fk.NRRD, fk.METAIMAGE, fk.TIFF_STACK, fk.NPY, fk.NPZ,
                     fk.TORCHSCRIPT, fk.TRANSFER_FUNCTION)
    gui_modules = OFFSCREEN_VIEW_MODULES
    parameter_schema = PARAMETER_SCHEMA

    @staticmethod
    def warm_up() -> None:
        """Import the readers (nibabel, pydicom, ...), vispy, freetype (the 3D view's letters) and
        PyOpenGL (its 3-D textures) and render the letters' glyphs, off the GUI thread."""
        import vispy.scene

        # first imported by vispy's Text / 3-D texture: 0.1-0.3 s each
        import_libraries(("freetype", "OpenGL.GL", "OpenGL.arrays.numpymodule", "OpenGL.arrays.nones"))
        from panels.volume.letter_glyphs import prepare

        try:
            prepare()  # the 3D view's R/A/S glyphs (CPU distance fields), so the view only copies them
        except Exception:  # noqa: BLE001, S110 - no usable font here: the view renders its glyphs itself
            pass

        # the libraries the readers and the phantom import when first used (on a job thread: nibabel's
        # 145 modules and scipy.special's extensions held the GIL ~100 ms during the first open)
        import_libraries(VOLUME_LIBRARIES)
        # the readers, and what the first open, export or classification would import on the GUI thread
        import engines.volume.classify
        import engines.volume.raycast
        import engines.volume.readers
        import engines.volume.tf_exchange  # noqa: F401
        import panels.volume.shaded_volume  # noqa: F401 - vispy visuals, no Qt class

    def __init__(self, services, parent: QWidget | None = None) -> None:
        super().__init__(services, parent)
        from engines.volume.classify import ClassSpec, Strokes
        from engines.volume.tf import preset

        self.volume = None
        self.source_path: str | None = None
        self.tf = preset("CT-Bone")
        self.base_tf = self.tf
        self.mode = "dvr"
        self.step = 1.0
        self.iso = 300.0
        self.crop = None
        self.cursor = [0, 0, 0]
        self.azimuth, self.elevation = 30.0, 20.0
        self.export_size = 512
        self.method = "forest"  # meets the update-time and stability aims on both benchmark volumes
        self.brush = 2
        self.classes = [ClassSpec(n, c, o) for n, c, o in DEFAULT_CLASSES]
        self.strokes = Strokes(list(self.classes))
        self.features = None
        self._features_handle = None
        self._features_volume = None
        self._update_when_features_ready = False
        self.feature_resolution = "auto"
        self.result = None
        self.semantic = None
        self.show_semantic = False
        self.show_similarity = False
        self.show_uncertainty = False
        self.use_2d = False
        self.gmag = None
        self.rgba2d = None
        self._tf2d_handle = None
        self._pending_stroke: list = []  # (k, 3) int64 arrays: the voxels of each step of the stroke being painted
        self._stroke_overlay: tuple | None = None  # (key, rgba): the slice overlay drawn into while painting
        self._render_handle = None
        self._classify_handle = None
        self._recolour_handle = None  # the job making the classes' RGBA volume after a class edit
        self._shown = False
        self._clim = (0.0, 1.0)
        self._slice_table_cache: tuple | None = None  # (key, (first, colours)) of _slice_table
        self._tf_before_drag = None

        self.file_open_failed.connect(lambda _path, message: self.status.setText(f"Error: {message}"))
        self.view3d = VolumeView()
        self.slice_views = [SliceView(a, self._on_pointer, lambda: self.paint_check.isChecked()) for a in range(3)]
        self.editor = TFEditor()
        self.editor.set_tf(self.tf)
        self.editor.tf_changed.connect(self._on_editor_changed)
        self.editor2d = TF2DEditor()
        self.editor2d.changed.connect(lambda _tf: self._submit_tf2d())
        self.editor2d.enabled_changed.connect(self._on_use_2d)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.editor, "1D transfer function")
        self.tabs.addTab(self.editor2d, "2D transfer function (value × gradient)")
        self.status = QLabel("No volume yet - the phantom loads when the panel is shown.")
        self.status.setStyleSheet("color: #999;")

        grid = QWidget()
        grid_layout = QGridLayout(grid)
        grid_layout.setContentsMargins(0, 0, 0, 0)
        grid_layout.setSpacing(3)
        grid_layout.addWidget(self.view3d, 0, 0)
        grid_layout.addWidget(self.slice_views[0], 0, 1)
        grid_layout.addWidget(self.slice_views[1], 1, 0)
        grid_layout.addWidget(self.slice_views[2], 1, 1)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(grid)
        splitter.addWidget(self.tabs)
        splitter.setStretchFactor(0, 4)
        splitter.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(splitter)
        layout.addWidget(self.status)

        self._preview_timer = QTimer(self)
        self._preview_timer.setSingleShot(True)
        self._preview_timer.setInterval(200)
        self._preview_timer.timeout.connect(self._submit_preview)
        self._build_controls()

    # ------------------------------------------------------------------ controls
    def _build_controls(self) -> None:
        from engines.volume.tf import preset_names

        self.preset_combo = QComboBox()
        self.preset_combo.setIconSize(QSize(72, 18))
        for name in preset_names():
            self.preset_combo.addItem(_tf_icon(name), name, name)
        self.preset_combo.setCurrentText("CT-Bone")
        self.preset_combo.setToolTip("The bundled preset in use; an entry in italics names a transfer function that "
                                     "is not one (a grey ramp, a file's, an edited preset)")
        self.preset_combo.activated.connect(self._on_preset_chosen)
        self.mode_combo = QComboBox()
        for label, key in MODES:
            self.mode_combo.addItem(label, key)
        self.mode_combo.currentIndexChanged.connect(lambda _=None: self.set_mode(self.mode_combo.currentData()))
        self.step_spin = QDoubleSpinBox()
        self.step_spin.setRange(0.1, 8.0)
        self.step_spin.setSingleStep(0.1)
        self.step_spin.setValue(self.step)
        self.step_spin.setSuffix(" voxel")
        self.step_spin.setToolTip("Sampling step (opacity is corrected so the image stays the same)")
        self.step_spin.valueChanged.connect(self.set_step)
        self.iso_spin = QDoubleSpinBox()
        self.iso_spin.setRange(-1e6, 1e6)
        self.iso_spin.setValue(self.iso)
        self.iso_spin.valueChanged.connect(self._on_iso)
        self.level_spin = QDoubleSpinBox()
        self.width_spin = QDoubleSpinBox()
        for spin in (self.level_spin, self.width_spin):
            spin.setRange(-1e6, 1e6)
            spin.setDecimals(1)
            spin.setKeyboardTracking(False)
        self.width_spin.setMinimum(1e-3)
        self.level_spin.valueChanged.connect(self._on_window)
        self.width_spin.valueChanged.connect(self._on_window)
        self.shift_slider = QSlider(Qt.Orientation.Horizontal)
        self.shift_slider.setRange(-500, 500)
        self.shift_slider.setToolTip("Shift: move every inner point of the preset (value units)")
        self.shift_slider.valueChanged.connect(self._on_shift)
        self.reset_button = QPushButton("Reset camera")
        self.reset_button.clicked.connect(self.reset_camera)
        self.crop_spins = []
        for _axis in range(3):
            pair = []
            for _col in range(2):
                spin = QSpinBox()
                spin.setRange(0, 0)
                spin.valueChanged.connect(self._on_crop)
                pair.append(spin)
            self.crop_spins.append(pair)
        self.phantom_button = QPushButton("Load phantom")
        self.phantom_button.clicked.connect(lambda: self.load_phantom(128))
        self.downsample_check = QCheckBox("Downsample volumes over 512³")
        self.size_spin = QSpinBox()
        self.size_spin.setRange(64, 4096)
        self.size_spin.setValue(self.export_size)
        self.size_spin.setSuffix(" px")
        self.size_spin.valueChanged.connect(lambda v: setattr(self, "export_size", int(v)))
        self.gl_export_check = QCheckBox("Export PNG from the GL view (else reference ray caster)")
        # paint
        self.paint_check = QCheckBox("Paint on slices")
        self.paint_check.setToolTip("Left-drag on a slice paints the selected class; entering paint mode\n"
                                    "computes the voxel features once (a job), so that 'Update' only re-runs the classifier")
        self.paint_check.toggled.connect(self._on_paint_toggled)
        self.features_combo = QComboBox()
        self.features_combo.addItem("Automatic (full up to ~130³)", "auto")
        self.features_combo.addItem("Full resolution (sharpest borders)", "full")
        self.features_combo.addItem("Half resolution (fastest update)", "half")
        self.features_combo.setToolTip("Grid of the per-voxel features: full resolution classifies thin vessels and borders best;\n"
                                       "half resolution updates about 5× faster after a stroke")
        self.features_combo.currentIndexChanged.connect(lambda _=None: self._set_feature_resolution(self.features_combo.currentData()))
        self.feature_model: str | None = None
        self.feature_model_button = QPushButton("Feature model: none")
        self.feature_model_button.setToolTip("Optional: a local TorchScript network (1,1,z,y,x) → (1,C,z,y,x) whose feature maps\n"
                                             "join the built-in features (nothing is downloaded). Click again to choose another or none.")
        self.feature_model_button.clicked.connect(self._choose_feature_model)
        self.features_label = QLabel("Features: not computed yet (tick 'Paint on slices')")
        self.features_label.setWordWrap(True)
        self.features_label.setStyleSheet("color: #999;")
        self.class_list = QListWidget()
        self.class_list.setMaximumHeight(110)
        self.class_list.itemChanged.connect(self._on_class_item)
        self._fill_class_list()
        self.class_opacity = QDoubleSpinBox()
        self.class_opacity.setRange(0.0, 1.0)
        self.class_opacity.setSingleStep(0.1)
        self.class_opacity.setValue(self.classes[0].opacity)
        self.class_opacity.setToolTip("Opacity of the selected class in the 3D view")
        self.class_opacity.valueChanged.connect(self._on_class_opacity)
        self.class_list.currentRowChanged.connect(self._on_class_row)
        self.class_list.currentRowChanged.connect(lambda _=None: self._refresh_hints())
        self.brush_spin = QSpinBox()
        self.brush_spin.setRange(0, 20)
        self.brush_spin.setValue(self.brush)
        self.brush_spin.setSuffix(" voxel radius")
        self.brush_spin.valueChanged.connect(lambda v: setattr(self, "brush", int(v)))
        self.method_combo = QComboBox()
        self.method_combo.addItem("Similarity, nearest stroke (max)", "similarity-max")
        self.method_combo.addItem("Similarity, stroke average (Engel et al.)", "similarity")
        self.method_combo.addItem("Random forest", "forest")
        self.method_combo.setToolTip("How painted voxels classify the volume: cosine similarity of multiscale features to the\n"
                                     "strokes (max over strokes suits mixed classes such as 'background'; the average is the\n"
                                     "paper's rule), or a random forest trained on the painted voxels")
        self.method_combo.setCurrentIndex(max(self.method_combo.findData(self.method), 0))
        self.method_combo.currentIndexChanged.connect(lambda _=None: setattr(self, "method", self.method_combo.currentData()))
        self.update_button = QPushButton("Update classification")
        self.update_button.clicked.connect(self.update_classification)
        self.semantic_check = QCheckBox("Show classes in 3D")
        self.semantic_check.toggled.connect(self._on_semantic_toggled)
        self.similarity_check = QCheckBox("Similarity of selected class on slices")
        self.similarity_check.toggled.connect(self._on_similarity_toggled)
        self.uncertainty_check = QCheckBox("Uncertainty on slices (paint where it glows)")
        self.uncertainty_check.setToolTip("1 − margin between the two best classes: bright where the classes are\n"
                                          "undecided, i.e. where one more stroke helps most")
        self.uncertainty_check.toggled.connect(self._on_uncertainty_toggled)
        self.class_list.currentRowChanged.connect(lambda _=None: self.update_slices() if self.show_similarity else None)
        add_class = QPushButton("Add class")
        add_class.clicked.connect(lambda: self.add_class(f"class {len(self.classes) + 1}", (0.2, 0.6, 1.0)))
        color_class = QPushButton("Colour…")
        color_class.clicked.connect(self._pick_class_color)
        clear_strokes = QPushButton("Clear strokes")
        clear_strokes.clicked.connect(self.clear_strokes)
        self._class_buttons = (add_class, color_class, clear_strokes)

    def build_parameters(self) -> QWidget:
        widget = QWidget()
        outer = QVBoxLayout(widget)
        data_box = QGroupBox("Volume")
        form = QFormLayout(data_box)
        self.info_label = QLabel("—")
        self.info_label.setWordWrap(True)
        form.addRow(self.info_label)
        form.addRow(self.phantom_button)
        form.addRow(self.downsample_check)
        outer.addWidget(data_box)
        render_box = QGroupBox("Rendering")
        form = QFormLayout(render_box)
        form.addRow("Mode", self.mode_combo)
        form.addRow("Preset", self.preset_combo)
        form.addRow("Sampling step", self.step_spin)
        form.addRow("Iso value", self.iso_spin)
        form.addRow("Level", self.level_spin)
        form.addRow("Width", self.width_spin)
        form.addRow("Shift", self.shift_slider)
        form.addRow("Crop (voxels)", self._crop_widget())
        form.addRow(self.reset_button)
        outer.addWidget(render_box)
        paint_box = QGroupBox("Paint to classify")
        form = QFormLayout(paint_box)
        form.addRow(self.paint_check)
        form.addRow(self.class_list)
        buttons = QHBoxLayout()
        for button in self._class_buttons:
            buttons.addWidget(button)
        form.addRow(buttons)
        form.addRow("Class opacity", self.class_opacity)
        form.addRow("Brush", self.brush_spin)
        form.addRow("Method", self.method_combo)
        form.addRow("Features", self.features_combo)
        form.addRow(self.feature_model_button)
        form.addRow(self.features_label)
        form.addRow(self.update_button)
        form.addRow(self.semantic_check)
        form.addRow(self.similarity_check)
        form.addRow(self.uncertainty_check)
        outer.addWidget(paint_box)
        export_box = QGroupBox("Export")
        form = QFormLayout(export_box)
        form.addRow("Render size", self.size_spin)
        form.addRow(self.gl_export_check)
        form.addRow(QLabel("File > Export: .png render (reference ray caster),\n.json transfer function, .nii.gz labels"))
        outer.addWidget(export_box)
        outer.addStretch(1)
        self._sync_controls()
        return widget

    def _crop_widget(self) -> QWidget:
        box = QWidget()
        layout = QGridLayout(box)
        layout.setContentsMargins(0, 0, 0, 0)
        for row, axis_name in enumerate("zyx"):
            layout.addWidget(QLabel(axis_name), row, 0)
            for col in range(2):
                layout.addWidget(self.crop_spins[row][col], row, col + 1)
        return box

    def _fill_class_list(self) -> None:
        self.class_list.blockSignals(True)
        current = max(self.class_list.currentRow(), 0)
        self.class_list.clear()
        for spec in self.classes:
            item = QListWidgetItem(spec.name)
            pix = QPixmap(12, 12)
            pix.fill(QColor.fromRgbF(*spec.color))
            item.setIcon(QIcon(pix))
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEditable)
            item.setCheckState(Qt.CheckState.Checked if spec.visible else Qt.CheckState.Unchecked)
            self.class_list.addItem(item)
        self.class_list.setCurrentRow(min(current, len(self.classes) - 1))
        self.class_list.blockSignals(False)

    def _sync_controls(self) -> None:
        for widget, value in ((self.step_spin, self.step), (self.iso_spin, self.iso)):
            widget.blockSignals(True)
            widget.setValue(value)
            widget.blockSignals(False)
        level, width = self.tf.window_level()
        for widget, value in ((self.level_spin, level), (self.width_spin, width)):
            widget.blockSignals(True)
            widget.setValue(value)
            widget.blockSignals(False)
        index = self.mode_combo.findData(self.mode)
        self.mode_combo.blockSignals(True)
        self.mode_combo.setCurrentIndex(max(index, 0))
        self.mode_combo.blockSignals(False)
        self._sync_preset_box()

    def _sync_preset_box(self) -> None:
        """Show the truth in the Preset box: the preset in use, else one extra entry (last, in
        italics) naming the transfer function, e.g. "Grey ramp", "CT-Bone (edited)" or a file's map."""
        box, tf = self.preset_combo, self.tf
        applied = tf.name if box.findData(tf.name) >= 0 and tf == _preset_tf(tf.name) else None
        other = box.findData(_OTHER_TF)  # the extra entry (presets carry their name as data)
        box.blockSignals(True)
        if applied is not None:
            if other >= 0:
                box.removeItem(other)
            box.setCurrentIndex(box.findData(applied))
        else:
            label = f"{tf.name} (edited)" if box.findData(tf.name) >= 0 else (tf.name or "Custom")
            if other < 0:
                box.addItem(label, _OTHER_TF)
                other = box.count() - 1
                font = box.font()
                font.setItalic(True)
                box.setItemData(other, font, Qt.ItemDataRole.FontRole)
            box.setItemText(other, label)
            box.setCurrentIndex(other)
        box.blockSignals(False)

    def _on_preset_chosen(self, index: int) -> None:
        name = self.preset_combo.itemData(index)
        if isinstance(name, str):  # the extra entry names what is in use already: nothing to apply
            self.apply_preset(name)

    # ------------------------------------------------------------------ lifecycle
    def on_shown(self) -> None:
        """Create the 3D canvas and load the phantom on first show (unless a file is on its way).
        The canvas comes a turn later: the panel's first layout and paint are a turn of their own."""
        self._shown = True
        if self.view3d.canvas is None and self.view3d.gl_error is None:
            QTimer.singleShot(1, self.view3d.ensure_canvas)  # a timer, not 0: after the pending paints
        if self.volume is None and not self.loading:
            self.load_phantom(128)

    def load_phantom(self, size: int = 128):
        """Load the procedural CT phantom (a job; a file opened later replaces it, never the reverse)."""
        self.status.setText(f"Generating the {size}³ phantom…")
        return self.open_file(f"phantom:{size}")

    def can_open(self, path) -> bool:
        from engines.volume.readers import is_sample_name

        return is_sample_name(str(path)) or super().can_open(path)

    def open_file(self, path: str):
        """Read a volume file, DICOM folder or ``phantom:N`` on a worker (histogram and texture too);
        returns the job handle. A missing file raises OpenError at once."""
        from engines.volume.readers import is_sample_name

        path = os.fspath(path)
        if _is_tf_file_name(path):
            return self.open_tf_file(path)
        if path.lower().endswith((".pt", ".pth", ".ts")):  # the paint classifier's feature network
            return self._open_feature_model(path)
        exists = path_exists(path)  # known from the drop's examination: no stat on the GUI thread
        sample = is_sample_name(path) and not exists
        if not sample and not exists:
            raise OpenError(f"file not found: {path}")
        source = path if sample else str(Path(path))
        if not sample:
            self.status.setText(f"Reading {Path(path).name}…")
        downsample = self.downsample_check.isChecked()
        return self.load_in_background(
            path, lambda: _read_job(path, downsample), lambda r: self.set_volume(r[0], source, r[1]),
            title=f"Generating the {path.split(':')[-1] or 128}³ phantom…" if sample else None)

    def _open_feature_model(self, path: str):
        """Check on a worker that ``path`` is a TorchScript network (its zip is read there, not on
        the GUI thread), then use it as the feature model; returns the job handle. A volume being
        opened meanwhile goes on (this is no new volume)."""
        def opened(_result) -> None:
            try:
                self.set_feature_model(path)
            except OpenError as exc:
                self.file_open_failed.emit(path, str(exc))
                return
            self.services.notify(f"Feature model {Path(path).name} set (used when painting classes)")
            self.file_opened.emit(path)

        return self.services.jobs.submit(f"check {Path(path).name}", self.name, lambda: _feature_model_job(path),
                                         device="io", on_result=opened,
                                         on_error=lambda record: self.file_open_failed.emit(path, record.error),
                                         on_cancel=lambda: self.file_open_cancelled.emit(path))

    def receive(self, kind: str, payload: Any) -> None:
        """Accept ``("volume", (Z, Y, X) array)`` from another panel."""
        from engines.volume.model import Volume, VolumeReadError

        if kind != "volume":
            raise OpenError(f"the Volume panel cannot receive {kind!r} (only 'volume')")
        try:
            volume = payload if isinstance(payload, Volume) else Volume(np.asarray(payload))
        except VolumeReadError as exc:
            raise OpenError(str(exc)) from exc
        self.set_volume(volume, None)

    def set_volume(self, volume, source: str | None, prepared: dict | None = None) -> None:
        """Show ``volume``: histogram, slices, 3D view; resets crop, strokes and results.

        ``prepared`` (from :func:`prepare_volume`, computed on a worker) saves the GUI thread the
        value range, histogram and texture work; without it they are computed here.
        """
        # one repaint for the histogram, three slice views and the labels (each plot's scene asks for
        # its own in a separate event, and with a GL view in the window each costs a whole-window redraw)
        if self.updatesEnabled():
            self.setUpdatesEnabled(False)
            QTimer.singleShot(TURN_MS, lambda: self.setUpdatesEnabled(True))
        self._show_volume(volume, source, prepared)

    def _show_volume(self, volume, source: str | None, prepared: dict | None) -> None:
        from engines.volume.tf import default_tf, preset

        prepared = prepared or prepare_volume(volume)
        self.volume = volume
        self.source_path = source
        lo, hi = prepared["range"]
        self._clim = (lo, hi)
        if volume.modality == "CT" or volume.units == "HU":
            if self.tf.name in ("Grey ramp",):
                self.tf = self.base_tf = preset("CT-Bone")
        elif self.tf.name.startswith("CT-") or self.tf.name == "Grey ramp":
            self.tf = self.base_tf = default_tf(lo, hi)
        self.editor.set_tf(self.tf)
        self.editor.set_histogram_counts(*prepared["histogram"])
        self.cursor = [s // 2 for s in volume.shape]
        for pair, n in zip(self.crop_spins, volume.shape):
            for spin, value in zip(pair, (0, n - 1)):
                spin.blockSignals(True)
                spin.setRange(0, n - 1)
                spin.setValue(value)
                spin.blockSignals(False)
        self.crop = None
        self.strokes.voxels.clear()
        self.features = self.result = self.semantic = None
        if self._features_handle is not None:
            self._features_handle.cancel()
            self._features_handle = None
        self._update_when_features_ready = False
        if hasattr(self, "features_label"):
            self.features_label.setText("Features: not computed yet (tick 'Paint on slices')")
        self.gmag = self.rgba2d = None
        self.view3d.set_volume(volume.data, volume.spacing, (lo, hi), affine=volume.affine,
                               texture=prepared["texture"])
        # until the gradient job reports: a bound, not a whole-volume gradient on the GUI thread
        self.view3d.set_gradient_range(gradient_upper_bound((lo, hi), volume.spacing))
        letters = volume.axis_letters()
        for view in self.slice_views:
            free = [a for a in range(3) if a != view.axis]
            view.set_orientation(letters[free[0]], letters[free[1]])
        data, spacing = volume.data, volume.spacing
        self.services.jobs.submit("gradient + joint histogram", self.name, lambda: _gradient_job(data, spacing),
                                  device="cpu", on_result=lambda r, v=volume: self._on_gradient(v, r))
        self.view3d.set_tf(self.tf)
        self.view3d.set_method(self.mode, self.iso)
        self.view3d.set_step(self.step)
        info = prepared["summary"]
        warn = ("\n⚠ " + "; ".join(info["warnings"])) if info["warnings"] else ""
        text = (f"{Path(source).name if source and not source.startswith('phantom') else (source or 'received volume')}\n"
                f"{'×'.join(map(str, volume.shape))} (z×y×x), spacing {', '.join(f'{s:g}' for s in volume.spacing)} mm, "
                f"axes x,y,z → {''.join(high for _low, high in volume.axis_letters()[::-1])}\n"
                f"{volume.modality} {volume.units} range {lo:.0f} … {hi:.0f}{warn}")
        if hasattr(self, "info_label"):
            self.info_label.setText(text)
        self.status.setText(text.replace("\n", " · "))
        self._sync_controls()
        self.update_slices(fit=True)
        self._schedule_preview()
        if self.paint_check.isChecked():
            self.compute_features()

    def _on_job_error(self, record) -> None:
        self.status.setText(f"{record.title} failed: {record.error}")
        self.services.notify(f"{record.title} failed: {record.error}", "error")  # names the job, as the queue does

    # ------------------------------------------------------------------ TF
    def apply_preset(self, name: str) -> None:
        """Switch to a bundled preset (undoable)."""
        from engines.volume.tf import preset

        self._set_tf(preset(name), base=True, text=f"preset {name}")

    def open_tf_file(self, path: str, map_name: str | None = None):
        """Read a transfer-function file (.vp, ParaView .json, .itf, .1dt, ours) on a worker and apply it;
        returns the job handle (then :attr:`file_opened` or :attr:`file_open_failed`). A ParaView file
        with several maps asks which one; maps outside the volume's values, or spanning under a
        tenth of them (normalised 0…1 maps), are stretched onto them (as ParaView rescales presets).
        Bad files change nothing."""
        path = os.fspath(path)
        value_range = self._clim if self.volume is not None else None

        def read(result) -> None:
            if isinstance(result, list):  # several colour maps: the user picks one, a second job reads it
                chosen = self._choose_map(result, Path(path).name)
                if chosen is None:
                    self.file_open_cancelled.emit(path)
                else:
                    self.open_tf_file(path, chosen)
                return
            now = self._clim if self.volume is not None else None  # a volume may have opened meanwhile
            if now != value_range and Path(path).suffix.lower() in NORMALISED_TF_SUFFIXES:
                result = _stretched(result, now or (0.0, 1.0), value_range or (0.0, 1.0))  # placed as if read now
            self._apply_tf_file(result, path, now)
            after, self._after_open = self._after_open, None  # parameters restored with an exported TF
            if after is not None:
                after()
            self.file_opened.emit(path)

        return self.services.jobs.submit(
            f"read {Path(path).name}", self.name, lambda: _tf_file_job(path, map_name, value_range), device="io",
            on_result=read, on_error=lambda record: self.file_open_failed.emit(path, record.error),
            on_cancel=lambda: self.file_open_cancelled.emit(path))

    def _apply_tf_file(self, tf, path: str, value_range) -> None:
        """Use ``tf`` read from ``path`` (stretched onto ``value_range`` when it misses or under-spans it)."""
        note = ""
        if value_range is not None:
            lo, hi = tf.x_range()
            span = value_range[1] - value_range[0]
            if hi <= value_range[0] or lo >= value_range[1] or (hi - lo) < 0.1 * span:  # e.g. a 0…1 map on HU
                tf = _stretched(tf, value_range)
                note = f" (values {lo:g} … {hi:g} stretched onto the volume's {value_range[0]:g} … {value_range[1]:g})"
        self._set_tf(tf, base=True, text=f"transfer function {Path(path).name}")
        self.status.setText(f"Transfer function '{tf.name}' from {Path(path).name}{note}")

    def _choose_map(self, names: list[str], file_name: str) -> str | None:
        """Ask which colour map of a multi-map file to use (None = cancelled)."""
        from qtpy.QtWidgets import QInputDialog

        name, ok = QInputDialog.getItem(self, "Choose a colour map", f"{file_name} holds {len(names)} colour maps:",
                                        names, 0, False)
        return name if ok else None

    def set_tf(self, tf, undoable: bool = True) -> None:
        """Use ``tf`` (from a file or another source)."""
        self._set_tf(tf, base=True, text="transfer function", undoable=undoable)

    def _set_tf(self, tf, base: bool = False, text: str = "edit TF", undoable: bool = True, live: bool = False) -> None:
        old = self.tf
        old_base = self.base_tf
        self.tf = tf
        if base:
            self.base_tf = tf
            self.shift_slider.blockSignals(True)
            self.shift_slider.setValue(0)
            self.shift_slider.blockSignals(False)
        if self.editor.tf() is not tf:
            self.editor.set_tf(tf)
        self.view3d.set_tf(tf)
        self.update_slices()
        self._sync_controls()
        if live:
            return
        self._schedule_preview()
        if undoable and old is not tf:
            self.undo_stack.push(_Command(text, lambda: self._restore_tf(old, old_base), lambda: self._restore_tf(tf, self.base_tf if not base else tf)))

    def _restore_tf(self, tf, base) -> None:
        self.tf, self.base_tf = tf, base
        self.editor.set_tf(tf)
        self.view3d.set_tf(tf)
        self.update_slices()
        self._sync_controls()
        self._schedule_preview()

    def _on_editor_changed(self, tf, final: bool) -> None:
        if not final:
            if self._tf_before_drag is None:
                self._tf_before_drag = self.tf
                if self.view3d._rgba is None:  # adaptive quality while dragging (like Slicer's "Adaptive")
                    self.view3d.set_step(max(2.0 * self.step, 2.0))
            self._set_tf(tf, live=True)
            return
        if self._tf_before_drag is not None and self.view3d._rgba is None:
            self.view3d.set_step(self.step)  # full quality on release
        before = self._tf_before_drag or self.tf
        self._tf_before_drag = None
        self.tf = before
        self._set_tf(tf, base=True, text="edit TF point")

    def _on_window(self) -> None:
        tf = self.tf.windowed(self.level_spin.value(), self.width_spin.value())
        self._set_tf(tf, base=True, text="window/level")

    def _on_shift(self, value: int) -> None:
        self._set_tf(self.base_tf.shifted(float(value)), text="shift")

    # ------------------------------------------------------------------ render state
    def set_mode(self, mode: str) -> None:
        """dvr, mip, minip, avg or iso."""
        self.mode = mode
        self.view3d.set_method(mode, self.iso)
        self._sync_controls()
        self._schedule_preview()

    def set_step(self, step: float) -> None:
        """Sampling step in voxels (3D view and reference renders)."""
        self.step = float(step)
        self.view3d.set_step(self.step)
        self._schedule_preview()

    def _on_iso(self, value: float) -> None:
        self.iso = float(value)
        self.view3d.set_method(self.mode, self.iso)

    def _on_crop(self) -> None:
        if self.volume is None:
            return
        crop = tuple((pair[0].value(), max(pair[0].value(), pair[1].value())) for pair in self.crop_spins)
        full = tuple((0, n - 1) for n in self.volume.shape)
        self.crop = None if crop == full else crop
        self.view3d.set_crop(self.crop)
        self._schedule_preview()

    def reset_camera(self) -> None:
        """Default angles, fit the volume."""
        self.azimuth, self.elevation = 30.0, 20.0
        self.view3d.reset_camera(self.azimuth, self.elevation)
        self._schedule_preview()

    def _camera_angles(self) -> tuple[float, float]:
        if self.view3d.view is not None:
            cam = self.view3d.view.camera
            return float(cam.azimuth), float(cam.elevation)
        return self.azimuth, self.elevation

    # ------------------------------------------------------------------ slices
    def slice_rgb(self, axis: int) -> np.ndarray:
        """The slice of ``axis`` through the cursor, TF colours blended over grey, uint8 (rows, cols, 3)
        (:func:`slice_colours`; integer volumes through a per-value table built once per TF)."""
        index = slice_coords(axis, self.cursor)
        table = self._slice_table()
        if table is None:
            return slice_colours(self.tf, self._clim, self.volume.data[index])
        first, colours = table
        return np.take(colours, np.subtract(self.volume.data[index], first, dtype=np.int64), axis=0, mode="clip")

    def _slice_table(self) -> tuple[int, np.ndarray] | None:
        """``(first, colours)``: :func:`slice_colours` of every integer value ``first …`` of the volume's
        range, for integer volumes (up to 32 bits) whose range has at most :data:`SLICE_TABLE_MAX`
        values (a TF drag redraws three slices per mouse move: a lookup, not a TF evaluation per
        voxel); else None."""
        if self.volume.data.dtype.kind not in "biu" or self.volume.data.dtype.itemsize > 4:
            return None
        lo, hi = (int(np.floor(v)) for v in self._clim)
        key = (tuple(map(tuple, self.tf.color)), tuple(map(tuple, self.tf.opacity)), self._clim)
        if self._slice_table_cache is not None and self._slice_table_cache[0] == key:
            return self._slice_table_cache[1]
        if hi - lo + 1 > SLICE_TABLE_MAX:
            return None
        table = (lo, slice_colours(self.tf, self._clim, np.arange(lo, hi + 1)))
        self._slice_table_cache = (key, table)
        return table

    def _overlay(self, axis: int) -> np.ndarray | None:
        index = slice_coords(axis, self.cursor)
        shape = self.volume.data[index].shape
        out = np.zeros(shape + (4,), dtype=np.uint8)
        drawn = False
        if self.result is not None and self.show_uncertainty and self.result.uncertainty is not None:
            u = np.clip(self.result.uncertainty[index], 0, 1)
            out[..., 0], out[..., 1], out[..., 2] = 255, 60, 255
            out[..., 3] = (np.clip((u - 0.2) / 0.8, 0, 1) * 230).astype(np.uint8)
            drawn = True
        elif self.result is not None and self.show_similarity:
            i = self._current_class()
            if i < self.result.probabilities.shape[0]:
                prob = self.result.probabilities[i][index]
                out[..., :3] = (np.asarray(self.classes[i].color) * 255).astype(np.uint8)
                out[..., 3] = (np.clip(prob, 0, 1) * 220).astype(np.uint8)
                drawn = True
        elif self.result is not None:
            labels = self.result.labels[index]
            for i, spec in enumerate(self.classes):
                if spec.visible and i < len(self.strokes.classes):
                    mask = labels == i + 1
                    if mask.any():
                        out[mask, :3] = (np.asarray(spec.color) * 255).astype(np.uint8)
                        out[mask, 3] = 90 if spec.opacity > 0 else 30  # transparent classes (background): faint
                        drawn = True
        free = [a for a in range(3) if a != axis]
        for i, voxels in list(self.strokes.voxels.items()) + [(self._current_class(), self._pending_voxels())]:
            if len(voxels) == 0 or i >= len(self.classes):
                continue
            on = voxels[voxels[:, axis] == self.cursor[axis]]
            if len(on):
                out[on[:, free[0]], on[:, free[1]], :3] = (np.asarray(self.classes[i].color) * 255).astype(np.uint8)
                out[on[:, free[0]], on[:, free[1]], 3] = 255
                drawn = True
        return out if drawn else None

    def update_slices(self, fit: bool = False) -> None:
        """Redraw the three slice views and crosshairs."""
        self._stroke_overlay = None  # overlays rebuilt from the strokes
        if self.volume is None:
            return
        sz, sy, sx = self.volume.spacing
        spacing_rc = {0: (sy, sx), 1: (sz, sx), 2: (sz, sy)}
        for view in self.slice_views:
            axis = view.axis
            view.set_image(self.slice_rgb(axis), spacing_rc[axis], fit=fit)
            view.set_overlay(self._overlay(axis))
            free = [a for a in range(3) if a != axis]
            view.set_crosshair(self.cursor[free[0]], self.cursor[free[1]])

    def set_cursor(self, z: int, y: int, x: int) -> None:
        """Move the linked crosshair to voxel (z, y, x)."""
        shape = self.volume.shape
        self.cursor = [int(np.clip(v, 0, n - 1)) for v, n in zip((z, y, x), shape)]
        self.update_slices()

    def _on_pointer(self, axis: int, row, col, drag: bool, finish: bool) -> None:
        """A click (a point) or a drag step (``row``, ``col`` arrays: the points it crossed, in order)."""
        if self.volume is None:
            return
        voxels = [view_to_voxel(axis, self.cursor, r, c) for r, c in zip(np.atleast_1d(row), np.atleast_1d(col))]
        if not self.paint_check.isChecked():
            self.set_cursor(*voxels[-1])
            return
        voxels = list(dict.fromkeys(voxels))  # each voxel crossed once (a step crosses a voxel at a few points)
        every = max(1, self.brush // 3)  # discs that far apart still cover the swept band (to < 1 voxel)
        voxels = voxels[::every] + ([voxels[-1]] if (len(voxels) - 1) % every else [])
        self.paint_at(axis, voxels[0] if len(voxels) == 1 else np.asarray(voxels), finish=finish)

    # ------------------------------------------------------------------ painting
    def _current_class(self) -> int:
        return max(self.class_list.currentRow(), 0)

    def paint_at(self, axis: int, voxel, finish: bool = True, class_index: int | None = None) -> None:
        """Paint a disc of radius ``brush`` in the slice plane of ``axis`` around ``voxel`` (z, y, x), or
        around each of several voxels (an (n, 3) array: the voxels a drag step crossed)."""
        if class_index is not None:
            self.class_list.setCurrentRow(class_index)
        from engines.volume.classify import disc_voxels

        centres = np.asarray(voxel, dtype=np.int64).reshape(-1, 3)
        pts = np.concatenate([disc_voxels(c, axis, self.brush, self.volume.shape) for c in centres])
        self._pending_stroke.append(pts)
        if finish:
            self._commit_stroke()
        else:
            self._draw_pending(axis, pts)

    def _pending_voxels(self) -> np.ndarray:
        """The voxels of the stroke being painted, (n, 3) int64 (repeats included)."""
        if not self._pending_stroke:
            return np.zeros((0, 3), np.int64)
        return np.concatenate(self._pending_stroke)

    def _draw_pending(self, axis: int, pts: np.ndarray) -> None:
        """Show a drag step's new voxels ``pts`` (all on the shown slice of ``axis``) over the slice's
        overlay: the overlay is built once per stroke and then only the new voxels are drawn into it,
        so a step costs what its disc does, not what the whole stroke does."""
        cls = self._current_class()
        key = (axis, self.cursor[axis], cls, id(self.volume))
        if self._stroke_overlay is None or self._stroke_overlay[0] != key:
            base = self._overlay(axis)  # (with the stroke so far)
            if base is None:
                base = np.zeros(self.volume.data[slice_coords(axis, self.cursor)].shape + (4,), np.uint8)
            self._stroke_overlay = (key, base)
        else:
            base = self._stroke_overlay[1]
            free = [a for a in range(3) if a != axis]
            on = pts[pts[:, axis] == self.cursor[axis]]
            if cls < len(self.classes):
                base[on[:, free[0]], on[:, free[1]], :3] = (np.asarray(self.classes[cls].color) * 255).astype(np.uint8)
                base[on[:, free[0]], on[:, free[1]], 3] = 255
        self.slice_views[axis].set_overlay(base)

    def _commit_stroke(self) -> None:
        self._stroke_overlay = None
        if not self._pending_stroke:
            return
        cls = self._current_class()
        from engines.volume.classify import unique_voxels

        voxels = unique_voxels(self._pending_voxels(), self.volume.shape)
        self._pending_stroke = []
        before = {k: v.copy() for k, v in self.strokes.voxels.items()}
        self.strokes.add(cls, voxels)
        after = {k: v.copy() for k, v in self.strokes.voxels.items()}
        self.undo_stack.push(_Command(f"paint {self.classes[cls].name}", lambda: self._set_strokes(before), lambda: self._set_strokes(after)))
        self.update_slices()

    def _set_strokes(self, voxels: dict) -> None:
        self.strokes.voxels = {k: v.copy() for k, v in voxels.items()}
        self.update_slices()

    def clear_strokes(self) -> None:
        """Remove every stroke (undoable)."""
        before = {k: v.copy() for k, v in self.strokes.voxels.items()}
        self.strokes.voxels = {}
        self.undo_stack.push(_Command("clear strokes", lambda: self._set_strokes(before), lambda: self._set_strokes({})))
        self.update_slices()

    def add_class(self, name: str, color) -> None:
        """Add a class to the list."""
        from engines.volume.classify import ClassSpec

        self.classes.append(ClassSpec(name, tuple(color), 1.0))
        self.strokes.classes = list(self.classes)
        self._fill_class_list()
        self.class_list.setCurrentRow(len(self.classes) - 1)

    def _on_class_row(self, row: int) -> None:
        if 0 <= row < len(self.classes):
            self.class_opacity.blockSignals(True)
            self.class_opacity.setValue(self.classes[row].opacity)
            self.class_opacity.blockSignals(False)

    def _on_class_opacity(self, value: float) -> None:
        i = self._current_class()
        if 0 <= i < len(self.classes):
            self.classes[i].opacity = float(value)
            self._refresh_semantic()

    def _pick_class_color(self) -> None:
        i = self._current_class()
        color = QColorDialog.getColor(QColor.fromRgbF(*self.classes[i].color), self, "Class colour")
        if color.isValid():
            self.classes[i].color = (color.redF(), color.greenF(), color.blueF())
            self._fill_class_list()
            self._refresh_semantic()

    def _on_class_item(self, item: QListWidgetItem) -> None:
        i = self.class_list.row(item)
        if 0 <= i < len(self.classes):
            self.classes[i].name = item.text()
            self.classes[i].visible = item.checkState() == Qt.CheckState.Checked
            self._refresh_semantic()

    def _feature_factor(self) -> int:
        from engines.volume.classify import feature_factor

        if self.feature_resolution == "full":
            return 1
        if self.feature_resolution == "half":
            return 2
        return feature_factor(self.volume.shape, 2_200_000)

    def _set_feature_resolution(self, value: str) -> None:
        if value == self.feature_resolution:
            return
        self.feature_resolution = value
        if self.volume is None:
            return
        running = self._features_handle is not None
        if running:
            self._features_handle.cancel()
            self._features_handle = None
        if running or (self.features is not None and self.features.factor != self._feature_factor()):
            self.features = None
            self.features_label.setText("Features: resolution changed - recomputing")
            self.compute_features()

    def _choose_feature_model(self) -> None:
        from qtpy.QtWidgets import QFileDialog

        path, _ = QFileDialog.getOpenFileName(self, "Feature model (TorchScript); cancel for none", "",
                                              "TorchScript (*.pt *.pth *.ts);;All files (*)")
        self.set_feature_model(path or None)

    def set_feature_model(self, path: str | None) -> None:
        """Use a local TorchScript feature extractor (None: the built-in features only); the
        features are recomputed (a job) when paint mode is on."""
        if path is not None and not Path(path).is_file():
            raise OpenError(f"feature model not found: {path}")
        if path == self.feature_model:
            return
        self.feature_model = path
        self.feature_model_button.setText(f"Feature model: {Path(path).name if path else 'none'}")
        if self._features_handle is not None:
            self._features_handle.cancel()
            self._features_handle = None
        self.features = self.result = None
        self.features_label.setText("Features: model changed - recomputed on the next update")
        if self.volume is not None and self.paint_check.isChecked():
            self.compute_features()

    def _on_paint_toggled(self, on: bool) -> None:
        if on:
            self.compute_features()
            if self.volume is not None and not self.strokes.annotated_classes():
                self.status.setText("Paint mode: pick a class in the list, left-drag on a slice inside that structure "
                                    "(a few strokes per class), then 'Update classification'.")
        self._refresh_hints()

    def _refresh_hints(self) -> None:
        """The note in each slice view's corner: paint mode + class, and what the overlay shows."""
        parts = []
        i = self._current_class()
        name = self.classes[i].name if 0 <= i < len(self.classes) else "?"
        if self.paint_check.isChecked():
            parts.append(f"Painting '{name}' (left-drag)")
        if self.show_uncertainty and self.result is not None:
            parts.append("overlay: uncertainty")
        elif self.show_similarity and self.result is not None:
            parts.append(f"overlay: '{name}' score")
        for view in self.slice_views:
            view.set_hint(" · ".join(parts))

    def compute_features(self) -> None:
        """Compute the feature volume once (a job); later updates only re-run the classifier."""
        if self.volume is None or self.features is not None or self._features_handle is not None:
            return
        import time

        data, factor, volume, extractor = self.volume.data, self._feature_factor(), self.volume, self.feature_model
        grid = "×".join(str(-(-n // factor)) for n in volume.shape)
        self.features_label.setText(f"Features: computing at {grid} (once per volume)…")
        started = time.perf_counter()
        self._features_handle = self.services.jobs.submit(
            "paint features", self.name, lambda: _features_job(data, factor, extractor), device="cpu",
            on_result=lambda f, v=volume, t=started: self._on_features(v, f, time.perf_counter() - t),
            on_error=self._on_features_error, on_cancel=lambda: self._on_features_cancelled(handle))
        handle = self._features_handle

    def _on_features_cancelled(self, handle) -> None:
        if self._features_handle is handle:  # not a newer job that replaced it
            self._features_handle = None
            self._update_when_features_ready = False
            self.features_label.setText("Features: cancelled (tick 'Paint on slices' again or press Update)")

    def _on_features(self, volume, features, seconds: float) -> None:
        if volume is not self.volume or features.factor != self._feature_factor():
            return  # a job for another volume / resolution, replaced since
        self._features_handle = None
        self.features = features
        grid = "×".join(map(str, features.shape))
        self.features_label.setText(f"Features ready: {grid}, {features.features.shape[-1]} channels "
                                    f"({seconds:.1f} s, once) - Update re-runs only the classifier")
        if self._update_when_features_ready:
            self._update_when_features_ready = False
            self.update_classification()

    def _on_features_error(self, record) -> None:
        self._features_handle = None
        self._update_when_features_ready = False
        self.features_label.setText(f"Features failed: {record.error}")
        self._on_job_error(record)

    def update_classification(self) -> None:
        """Classify from the strokes as a job (features are computed first if not cached)."""
        from copy import deepcopy

        if self.volume is None:
            self.services.notify("Load a volume first.", "warning")
            return
        if not self.strokes.annotated_classes():
            self.services.notify("Paint a few strokes first (tick 'Paint on slices').", "warning")
            self.status.setText("Nothing to classify yet: tick 'Paint on slices' and paint each class on a slice.")
            return
        if self.method == "forest" and len(self.strokes.annotated_classes()) < 2:
            self.services.notify("The random forest needs strokes of at least two classes.", "warning")
            return
        if self.features is None:
            self._update_when_features_ready = True
            self.compute_features()
            self.status.setText("Computing features first (once per volume); the classification follows…")
            return
        if self._classify_handle is not None:
            self._classify_handle.cancel()
        strokes = deepcopy(self.strokes)
        strokes.classes = list(self.classes)
        classes = deepcopy(self.classes)
        data, features, method = self.volume.data, self.features, self.method
        previous = self.result  # its cache is keyed on these features and the method
        self.status.setText("Classifying…")
        import time

        started = time.perf_counter()
        self._classify_handle = self.services.jobs.submit(
            "classify", self.name, lambda: _classify_job(data, features, strokes, method, classes, features.factor, previous),
            on_result=lambda r, t=started: self._on_classified(r, time.perf_counter() - t), on_error=self._on_job_error)

    def _on_classified(self, result, seconds: float | None = None) -> None:
        self._classify_handle = None
        features, self.result, self.semantic = result
        if self.features is None:
            self.features = features
        counts = np.bincount(self.result.labels.ravel(), minlength=len(self.classes) + 1)
        total = max(int(counts.sum()), 1)
        parts = [f"{c.name} {100.0 * counts[i + 1] / total:.1f} %" for i, c in enumerate(self.classes)
                 if i in self.strokes.annotated_classes()]
        took = f" in {seconds:.1f} s" if seconds is not None else ""
        self.status.setText(f"Classified ({self.method_combo.currentText()}{took}): " + ", ".join(parts)
                            + f", unclassified {100.0 * counts[0] / total:.1f} %")
        self.semantic_check.setChecked(True)
        self._refresh_hints()
        self._refresh_semantic(recolour=False)  # the classify job made this result's colours
        self.update_slices()

    def _on_semantic_toggled(self, on: bool) -> None:
        self.show_semantic = bool(on)
        self._show_semantic_state()

    def _refresh_semantic(self, recolour: bool = True) -> None:
        """Show the classes (or the TF) in the views; ``recolour``: the classes' colours, opacities or
        visibility changed, so their RGBA volume is made again, by a job (0.5 s at 192³ on the GUI
        thread before): the views keep the last one until it is done."""
        if recolour and self.result is not None:  # kept current while hidden too: showing it needs no job
            self._submit_recolour()
            if self.show_semantic:
                return
        self._show_semantic_state()

    def _submit_recolour(self) -> None:
        """Make the classes' RGBA volume for the current class settings on a worker (a newer request
        cancels an older one: dragging the opacity slider keeps one job at a time)."""
        import dataclasses

        from engines.volume.classify import semantic_rgba_job

        if self._recolour_handle is not None:
            self._recolour_handle.cancel()
        result, classes = self.result, [dataclasses.replace(c) for c in self.classes]  # a snapshot: the GUI edits them
        self._recolour_handle = self.services.jobs.submit(
            "recolour classes", self.name, lambda: semantic_rgba_job(result, classes), device="cpu",
            on_result=lambda rgba, r=result: self._on_recoloured(r, rgba), on_error=self._on_job_error)

    def _on_recoloured(self, result, rgba) -> None:
        self._recolour_handle = None
        if result is not self.result:  # classified again meanwhile: that result brought its own colours
            return
        self.semantic = rgba
        self._show_semantic_state()

    def _show_semantic_state(self) -> None:
        rgba = self._active_rgba()[0]
        semantic = self.show_semantic and self.semantic is not None
        live_2d = self.use_2d and not semantic and self.view3d.has_gl  # the GPU looks the 2-D TF up itself
        self.view3d.set_tf2d(self.editor2d.tf2d if live_2d else None)
        self.view3d.set_rgba(None if live_2d else rgba)
        self.update_slices()
        self._schedule_preview()

    def _active_rgba(self) -> tuple:
        """(RGBA volume or None, its reference step): semantic classes, else the 2-D TF."""
        if self.show_semantic and self.semantic is not None:
            return self.semantic, 1.0
        if self.use_2d and self.rgba2d is not None:
            return self.rgba2d, self.editor2d.tf2d.reference_step
        return None, None

    def _on_uncertainty_toggled(self, on: bool) -> None:
        self.show_uncertainty = bool(on)
        self._refresh_hints()
        self.update_slices()

    def _on_similarity_toggled(self, on: bool) -> None:
        self.show_similarity = bool(on)
        self._refresh_hints()
        self.update_slices()

    # ------------------------------------------------------------------ 2D TF
    def _on_gradient(self, volume, result) -> None:
        if volume is not self.volume:
            return
        self.gmag, (hist, v_edges, g_edges), gmax = result
        self.view3d.set_gradient_range(gmax)
        self.editor2d.set_histogram(hist, v_edges, g_edges)
        if not self.editor2d.tf2d.widgets and volume.units == "HU":
            # a starting point for CT: bone boundaries (high value and gradient)
            self.editor2d.set_tf2d(self.editor2d.tf2d.__class__([
                {"kind": "gauss", "center": (700.0, float(g_edges[-1]) * 0.5), "size": (250.0, float(g_edges[-1]) * 0.25),
                 "color": (0.95, 0.9, 0.75), "opacity": 0.6}]))
        if self.use_2d:
            self._submit_tf2d()

    def _on_use_2d(self, on: bool) -> None:
        self.use_2d = bool(on)
        if on and self.rgba2d is None:
            self._submit_tf2d()
        self._refresh_semantic(recolour=False)

    def _submit_tf2d(self) -> None:
        from engines.volume.tf2d import TransferFunction2D

        if not self.use_2d or self.volume is None or self.gmag is None:
            return
        if self._tf2d_handle is not None:
            self._tf2d_handle.cancel()
        data, gmag = self.volume.data, self.gmag
        tf2d = TransferFunction2D.from_dict(self.editor2d.tf2d.to_dict())
        if self.view3d.has_gl and not (self.show_semantic and self.semantic is not None):
            self.view3d.set_tf2d(tf2d)  # live on the GPU; the RGBA volume below is for the export
        self._tf2d_handle = self.services.jobs.submit(
            "2D TF", self.name, lambda: _classify_2d_job(data, gmag, tf2d), device="cpu",
            on_result=self._on_tf2d_done, on_error=self._on_job_error)

    def _on_tf2d_done(self, rgba) -> None:
        self._tf2d_handle = None
        self.rgba2d = rgba
        self._refresh_semantic(recolour=False)

    # ------------------------------------------------------------------ previews / export
    def _schedule_preview(self) -> None:
        if self.volume is not None and not self.view3d.has_gl and self._shown:
            self._preview_timer.start()

    def _render_kwargs(self, size: int, step: float | None = None) -> dict:
        azimuth, elevation = self._camera_angles()
        kwargs = {"mode": self.mode if self.mode != "iso" else "dvr", "azimuth": azimuth, "elevation": elevation, "size": size,
                      "step": step or self.step, "crop": self.crop}
        rgba, ref = self._active_rgba()
        if rgba is not None:
            kwargs["rgba"] = rgba
            kwargs["reference_step"] = ref
            kwargs["mode"] = "dvr"
        else:
            kwargs["tf"] = self.tf
        return kwargs

    def _submit_preview(self) -> None:
        from engines.volume.raycast import render_job

        if self.volume is None:
            return
        if self._render_handle is not None:
            self._render_handle.cancel()
        volume, kwargs = self.volume, self._render_kwargs(256, step=max(self.step, 1.5))
        kwargs["background"] = (17 / 255.0, 17 / 255.0, 17 / 255.0)  # the 3D view's backdrop
        self._render_handle = self.services.jobs.submit(
            "preview render", self.name, lambda: render_job(volume, device="cpu", **kwargs), device="cpu",
            on_result=lambda r: self.view3d.show_fallback_image(r.image))

    def current_parameters(self) -> dict:
        azimuth, elevation = self._camera_angles()
        return {
            "source": self.source_path, "tf": self.tf.to_dict(), "mode": self.mode, "step": self.step, "iso": self.iso,
            "azimuth": azimuth, "elevation": elevation, "crop": self.crop, "export_size": self.export_size,
            "method": self.method, "brush": self.brush, "feature_resolution": self.feature_resolution, "tf2d": self.editor2d.tf2d.to_dict(), "use_2d": self.use_2d,
            "classes": [{"name": c.name, "color": list(c.color), "opacity": c.opacity, "visible": c.visible} for c in self.classes],
        }

    def restore_parameters(self, parameters: dict) -> None:
        """Check everything first (schema, TFs, classes), then apply: all or nothing."""
        from engines.volume.classify import ClassSpec
        from engines.volume.tf import TransferFunction1D
        from engines.volume.tf2d import TransferFunction2D

        p = self.check_parameters(parameters or {})
        if not p:
            return
        try:
            tf = TransferFunction1D.from_dict(p["tf"]) if p.get("tf") else None
            tf2d = TransferFunction2D.from_dict(p["tf2d"]) if p.get("tf2d") else None
            classes = [ClassSpec(str(c["name"]), tuple(float(v) for v in c["color"]), float(c.get("opacity", 1.0)),
                                 bool(c.get("visible", True))) for c in p.get("classes") or []]
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            raise OpenError(f"Volume parameters: {exc}") from None
        if tf is not None:
            self._set_tf(tf, base=True, undoable=False)
        self.mode = p.get("mode", self.mode)
        self.step = float(p.get("step", self.step))
        self.iso = float(p.get("iso", self.iso))
        self.azimuth = float(p.get("azimuth", self.azimuth))
        self.elevation = float(p.get("elevation", self.elevation))
        self.export_size = int(p.get("export_size", self.export_size))
        self.method = p.get("method", self.method)
        self.brush = int(p.get("brush", self.brush))
        if "feature_resolution" in p:
            self.features_combo.setCurrentIndex(max(self.features_combo.findData(p["feature_resolution"]), 0))
        if tf2d is not None:
            self.editor2d.set_tf2d(tf2d)
        if classes:
            self.classes = classes
            self.strokes.classes = list(self.classes)
            self._fill_class_list()
        self.size_spin.setValue(self.export_size)
        self.brush_spin.setValue(self.brush)
        self.method_combo.setCurrentIndex(max(self.method_combo.findData(self.method), 0))
        self.view3d.set_step(self.step)
        self.view3d.set_method(self.mode, self.iso)
        if self.view3d.view is not None:
            self.view3d.view.camera.azimuth, self.view3d.view.camera.elevation = self.azimuth, self.elevation
        self._sync_controls()

    def open_exported(self, path: str, provenance: dict, open_file: bool = True):
        """A render PNG / TF JSON restores the parameters and reopens the volume it was made from
        (when that file still exists; the parameters are applied once it is shown); a label
        volume opens with its parameters."""
        if not open_file:
            self.check_parameters(provenance.get("parameters") or {})
            source = (provenance.get("parameters") or {}).get("source")
            if source and Path(source).exists() and source != self.source_path:
                if self.open_file(source) is not None:  # read by a job: restore when it is shown
                    self._after_open = lambda: self.restore_from_provenance(provenance)
                    return None  # the PNG itself is not being opened
        return super().open_exported(path, provenance, open_file)

    def can_export(self) -> bool:
        return self.volume is not None

    def export(self, path: str, force: bool = False) -> str:
        """``.png``: reference ray-caster render (a job; the file appears when it finishes);
        ``.json``: the TF; ``.nii``/``.nii.gz``: the label volume of the last classification."""
        from studio.export import ExportError, make_provenance

        lower = str(path).lower()
        if self.volume is None:
            raise OpenError("nothing to export: no volume loaded")
        inputs = [self.source_path] if self.source_path and os.path.exists(self.source_path) else []
        if lower.endswith((".vp", ".pv.json")):
            from engines.volume.tf_exchange import write_tf_file

            try:
                return str(write_tf_file(self.tf, path, force=force, provenance=make_provenance(
                    "volume", "engines.volume.tf_exchange", self.current_parameters(), inputs=inputs)))
            except (ExportError, ValueError) as exc:
                raise OpenError(str(exc)) from exc
        if lower.endswith(".json"):
            try:
                return str(self.tf.save(path, force=force, provenance=make_provenance(
                    "volume", "engines.volume.tf", self.current_parameters(), inputs=inputs)))
            except ExportError as exc:
                raise OpenError(str(exc)) from exc
        if lower.endswith((".nii", ".nii.gz")):
            if self.result is None:
                raise OpenError("no label volume yet: paint strokes and press 'Update classification'")
            from engines.volume.writers import save_nifti

            params = {**self.current_parameters(), "strokes": self.strokes.to_dict()}
            try:
                return str(save_nifti(path, self.result.labels, make_provenance(
                    "volume", "engines.volume.classify", params, inputs=inputs), like=self.volume, force=force))
            except ExportError as exc:
                raise OpenError(str(exc)) from exc
        if not lower.endswith(".png"):
            raise OpenError("export as .png (render), .json / .vp / .pv.json (transfer function) or .nii.gz (labels)")
        from studio.export import check_target

        try:  # before the render job starts: a job that can only fail is not started
            check_target(path, force=force)
        except ExportError as exc:
            raise OpenError(str(exc)) from exc
        from engines.volume.raycast import render_job
        from studio.export import PendingExport, save_png

        if self.gl_export_check.isChecked() and self.view3d.has_gl:
            # the GL context lives on the GUI thread: an offscreen FBO frame of the current view
            frame = self.view3d.render_image(size=(self.export_size, self.export_size))
            params = {**self.current_parameters(), "renderer": "vispy"}
            provenance = make_provenance("volume", "vispy.scene.visuals.Volume", params, device="opengl", inputs=inputs)
            try:
                return str(save_png(path, frame[..., :3], provenance, force=force))
            except ExportError as exc:
                raise OpenError(str(exc)) from exc
        volume, kwargs, params = self.volume, self._render_kwargs(self.export_size), self.current_parameters()
        device = self.services.device()

        def job():
            result = yield from render_job(volume, device=device, **kwargs)
            provenance = make_provenance("volume", "engines.volume.raycast.render", params, device=device, inputs=inputs)
            return str(save_png(path, result.image, provenance, force=force))

        self.services.jobs.submit(f"export {Path(path).name}", self.name, job, device=device,
                                  on_result=lambda p: self.services.notify(f"Exported {p}"), on_error=self._on_job_error)
        return PendingExport(path)
