"""The Render panel: an OpenGL splat viewer with editing, still renders and a fitting tab.

Heavy work (still renders, fits) runs as engine jobs through ``services.jobs``; the vispy
canvas is created lazily in :meth:`RenderPanel.on_shown`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from qtpy.QtCore import QEvent, QObject, QPoint, QRect, QSize, Qt, QTimer
from qtpy.QtGui import QColor
from qtpy.QtWidgets import (
    QCheckBox,
    QColorDialog,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QRubberBand,
    QSpinBox,
    QSplitter,
    QTabWidget,
    QUndoCommand,
    QVBoxLayout,
    QWidget,
)

from engines import filekinds as fk
from engines.provenance import array, number, obj, one_of
from panels.base import OFFSCREEN_VIEW_MODULES, OpenError, Panel, import_libraries
from panels.flow_row import flow_row
from panels.live_plot import LiveView, StableRange, Throttle, cache_axes, fix_axis_width
from panels.render.widgets import ImageView, to_uint8
from studio.routing import path_is_dir
from studio.widgets.progress import set_progress_later

AA_MODES = ["classic", "mip", "analytic"]
SAMPLE = Path(__file__).resolve().parents[2] / "assets" / "render" / "sample.ply"


class _SceneEdit(QUndoCommand):
    """Replace the scene (and selection) - delete, crop."""

    def __init__(self, panel: RenderPanel, scene, selection, text: str) -> None:
        super().__init__(text)
        self.panel = panel
        self.new = (scene, selection)
        self.old = (panel.scene, panel.selection.copy())

    def redo(self) -> None:
        self.panel._set_scene(*self.new)

    def undo(self) -> None:
        self.panel._set_scene(*self.old)


class _SelectionEdit(QUndoCommand):
    """Change which splats are selected."""

    def __init__(self, panel: RenderPanel, selection: np.ndarray, text: str) -> None:
        super().__init__(text)
        self.panel = panel
        self.new = selection.copy()
        self.old = panel.selection.copy()

    def redo(self) -> None:
        self.panel._set_selection(self.new)

    def undo(self) -> None:
        self.panel._set_selection(self.old)


class _BoxSelectFilter(QObject):
    """Rubber-band box selection on the canvas widget while "Box select" is on."""

    def __init__(self, panel: RenderPanel) -> None:
        super().__init__(panel)
        self.panel = panel
        self.origin: QPoint | None = None
        self.band: QRubberBand | None = None

    def eventFilter(self, obj, event) -> bool:
        try:
            if not self.panel.box_button.isChecked():
                return False
        except RuntimeError:  # the panel is being destroyed while the canvas still gets events
            return False
        kind = event.type()
        if kind == QEvent.MouseButtonPress and event.button() == Qt.LeftButton:
            self.origin = event.position().toPoint() if hasattr(event, "position") else event.pos()
            if self.band is None:
                self.band = QRubberBand(QRubberBand.Rectangle, obj)
            self.band.setGeometry(QRect(self.origin, QSize()))
            self.band.show()
            return True
        if kind == QEvent.MouseMove and self.origin is not None:
            pos = event.position().toPoint() if hasattr(event, "position") else event.pos()
            self.band.setGeometry(QRect(self.origin, pos).normalized())
            return True
        if kind == QEvent.MouseButtonRelease and self.origin is not None:
            rect = self.band.geometry()
            self.band.hide()
            self.origin = None
            mods = event.modifiers()
            mode = "add" if mods & Qt.ShiftModifier else "subtract" if mods & (Qt.ControlModifier | Qt.AltModifier) \
                else "replace"
            # widget coordinates are logical pixels, like the view camera's (canvas.size): no pixel ratio
            self.panel.select_rect(rect.left(), rect.top(), rect.right(), rect.bottom(), mode)
            return True
        return False


class _LassoSelectFilter(QObject):
    """Free-hand lasso selection on the canvas widget while "Lasso" is on."""

    def __init__(self, panel: RenderPanel) -> None:
        super().__init__(panel)
        self.panel = panel
        self.points: list[tuple[float, float]] = []
        self.line = None

    def _pos(self, event):
        pos = event.position() if hasattr(event, "position") else event.pos()
        return float(pos.x()), float(pos.y())

    def _draw(self) -> None:
        canvas = self.panel.canvas
        if canvas is None:
            return
        from vispy import scene

        if self.line is None:
            self.line = scene.visuals.Line(color=(1.0, 0.85, 0.1, 1.0), width=2, parent=canvas.canvas.scene)
        pts = np.asarray(self.points + self.points[:1], np.float32) if self.points else np.zeros((0, 2), np.float32)
        self.line.set_data(pos=pts if len(pts) > 1 else np.zeros((2, 2), np.float32))
        self.line.visible = len(pts) > 1
        canvas.canvas.update()

    def eventFilter(self, obj, event) -> bool:
        try:
            if not self.panel.lasso_button.isChecked():
                return False
        except RuntimeError:  # the panel is being destroyed while the canvas still gets events
            return False
        kind = event.type()
        if kind == QEvent.MouseButtonPress and event.button() == Qt.LeftButton:
            self.points = [self._pos(event)]
            return True
        if kind == QEvent.MouseMove and self.points:
            self.points.append(self._pos(event))
            self._draw()
            return True
        if kind == QEvent.MouseButtonRelease and self.points:
            points, self.points = self.points, []
            self._draw()
            mods = event.modifiers()
            mode = "add" if mods & Qt.ShiftModifier else "subtract" if mods & (Qt.ControlModifier | Qt.AltModifier) \
                else "replace"
            if len(points) >= 3:  # logical pixels, like the view camera's
                self.panel.select_polygon(points, mode)
            return True
        return False


def _captioned(caption: QLabel, view: QWidget) -> QWidget:
    """``view`` with a small caption line above it."""
    box = QWidget()
    lay = QVBoxLayout(box)
    lay.setContentsMargins(0, 0, 0, 0)
    lay.setSpacing(2)
    caption.setStyleSheet("font-size: 9pt;")
    caption.setWordWrap(True)
    lay.addWidget(caption)
    lay.addWidget(view, 1)
    return box


def viewer_arrays(scene) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What the splat viewer draws: means (N, 3), base RGBA (N, 4) and world covariances as (N, 6)
    upper triangles, float32."""
    from engines.render.project import covariance_3d
    from panels.render.viewer import covariance_upper

    opacity = scene.opacities.numpy()[:, None]
    colors = np.concatenate([scene.rgb.numpy(), opacity], 1).astype(np.float32)
    cov = covariance_upper(covariance_3d(scene.quats, scene.scales).numpy())
    return np.ascontiguousarray(scene.means.numpy(), np.float32), colors, cov


RENDERERS = {"splat": "Splatting", "raygauss": "RayGauss (slow, no popping)"}  # key -> label
FIT_PLOT_EMPTY = "PSNR and loss per step appear here during a fit"  # the fit plot's title before a fit
FIT_PLOT_CAPTION = "PSNR and loss per step"  # its title once curves show (same height: no relayout)


def _renderer_combo(tooltip: str) -> QComboBox:
    """A choice between the splatting rasterizer and RayGauss ray casting (item data: the key)."""
    combo = QComboBox()
    for key, label in RENDERERS.items():
        combo.addItem(label, key)
    combo.setToolTip(tooltip)
    return combo


def _set_renderer(combo: QComboBox, key: str) -> None:
    combo.setCurrentIndex(max(0, combo.findData(key)))


def _raygauss_still(scene, camera, background, sh_degree):
    """Job: a RayGauss still (tiled ray casting); returns the (H,W,3) float32 image like still_job."""
    from engines.render.raygauss import raygauss_still_job

    image, _, _ = yield from raygauss_still_job(scene, camera, background, sh_degree)
    return image


def _platform_has_gl() -> bool:
    """False on Qt platforms without OpenGL (offscreen, minimal)."""
    from qtpy.QtGui import QGuiApplication

    return QGuiApplication.platformName() not in ("offscreen", "minimal")


def _import_viewer_dependencies() -> None:
    """Import what the splat viewer needs when it first shows a scene (its CPU view, scipy's RQ),
    on the calling worker thread: a first import on the GUI thread would freeze it."""
    import scipy.linalg  # noqa: F401

    import engines.render.preview  # noqa: F401


def _scene_job(path: str):
    """Job (worker thread): read a .ply / .splat scene and prepare the viewer's arrays. The imports,
    the read and the preparation are single calls: on a helper thread, so a cancel stops the job at once."""
    from engines.jobs import Progress, wait_in_thread
    from engines.render.camera import scene_frame
    from engines.render.io import SceneFileError, load_scene

    step = Progress(0, 2, f"reading {Path(path).name}")
    yield step
    yield from wait_in_thread(_import_viewer_dependencies, event=step)
    try:
        scene = yield from wait_in_thread(load_scene, path, event=step)
    except SceneFileError as exc:
        raise OpenError(str(exc)) from exc
    step = Progress(1, 2, f"preparing {len(scene):,} splats for the view")
    yield step
    arrays = yield from wait_in_thread(viewer_arrays, scene, event=step)
    bounds = scene.bounds()
    lo, hi = outward_box(*bounds)  # the crop box the panel resets to: its mask is ready too
    inside = np.all((arrays[0] >= lo) & (arrays[0] <= hi), axis=1)
    return scene, arrays, Path(path).stat().st_size, bounds, scene_frame(arrays[0]), (lo, hi, inside)


def outward_box(lo, hi) -> tuple[np.ndarray, np.ndarray]:
    """The box [lo, hi] rounded outwards to the crop spin boxes' 4 decimals."""
    return (np.floor(np.asarray(lo, float) * 1e4) / 1e4, np.ceil(np.asarray(hi, float) * 1e4) / 1e4)


def _photo_job(path: str, max_side: int):
    """Job (worker thread): decode a photo and downscale it so its longer side is at most ``max_side``."""
    from PIL import Image

    from engines.imagefile import RGB_COPY_BYTES, open_image
    from engines.jobs import Progress

    yield Progress(0, 1, f"decoding {Path(path).name}")
    im = open_image(path, error=OpenError, extra_bytes_per_pixel=RGB_COPY_BYTES).convert("RGB")
    if max(im.size) > max_side:
        scale = max_side / max(im.size)
        im = im.resize((max(1, round(im.size[0] * scale)), max(1, round(im.size[1] * scale))), Image.LANCZOS)
    return np.asarray(im)


def _posed_views_job(folder: str, max_side: int):
    """Job (io lane): read a posed-view folder (cameras.json, transforms.json or COLMAP) with its
    images downscaled to ``max_side``."""
    from engines.jobs import Progress, wait_in_thread
    from engines.render.formats.posed import load_posed_views

    step = Progress(0, 1, f"reading the posed views in {Path(folder).name}")
    yield step
    try:  # one call reads every image: on a helper thread, so a cancel stops the job at once
        return (yield from wait_in_thread(load_posed_views, folder, max_side, event=step))
    except ValueError as exc:
        raise OpenError(str(exc)) from exc


class RenderPanel(Panel):
    """View, edit, render and fit 3D Gaussian-splat scenes."""

    name = "render"
    title = "Render"
    icon = "render.svg"
    file_types = {  # noqa: RUF012
        ".ply": "3D Gaussian Splatting scene",
        ".splat": "splat scene",
        ".spz": "SPZ scene (Niantic)",
        ".png": "photo to fit",
        ".jpg": "photo to fit",
        ".jpeg": "photo to fit",
        ".bmp": "photo to fit",
        "/": "posed views (cameras.json, transforms.json or a COLMAP model)",
    }
    export_filters = ("3DGS scene (*.ply);;SuperSplat compressed scene (*.compressed.ply);;splat scene (*.splat);;"
                      "SPZ scene (*.spz);;PNG image (*.png)")
    content_kinds = (fk.PLY_SCENE, fk.SPLAT, fk.SPZ, fk.PNG, fk.JPEG, fk.BMP, fk.POSED_VIEWS)
    gui_modules = (*OFFSCREEN_VIEW_MODULES, "panels.render.cpu_view", "panels.render.viewer")
    parameter_schema = obj({
        "background": array(number(0, 1), 3, 3), "point_size": number(0.1, 5.0), "sh_degree": number(0, 3, True),
        "aa": {"type": "string"}, "still_scale": number(0.1, 2.0), "primitive": one_of("gaussians", "spheres"),
        "count": number(1, 200000, True), "steps": number(1, 100000, True), "fit_aa": {"type": "string"},
        "densify": {"type": "boolean"}, "max_side": number(8, 1024, True), "seed": number(0, 2**31 - 1, True),
        "max_count": number(1, 2000000, True), "strategy": one_of("default", "mcmc"), "mip_3d": {"type": "boolean"},
        "still_renderer": one_of(*RENDERERS), "fit_renderer": one_of(*RENDERERS),
    })

    def __init__(self, services, parent: QWidget | None = None) -> None:
        super().__init__(services, parent)
        self.scene = None
        self.selection = np.zeros(0, bool)
        self.scene_path: str | None = None
        self.file_size: int | None = None
        self.canvas = None  # SplatCanvas, created in on_shown
        self._scene_canvas = None  # its OpenGL canvas, made ahead while the studio is idle (pending_builds)
        self.still: np.ndarray | None = None
        self.still_camera = None
        self.fit_target: list | None = None
        self.fit_cameras = None
        self.fit_init = None  # Gaussians to start from (COLMAP points3D)
        self.fit_source: list[str] = []
        self.fit_result = None
        self.fit_handle = None
        self.still_handle = None
        self.background = (0.0, 0.0, 0.0)
        self._history: list[dict] = []
        self._build()
        self.parameters_widget()
        self._view_arrays: tuple | None = None  # (scene, viewer arrays) prepared off the GUI thread
        self._bounds: tuple | None = None  # (scene, (min xyz, max xyz))
        self._frame: tuple | None = None  # (scene, (centre, radius)) for the viewer, from the open job
        self._inside: tuple | None = None  # (scene, lo, hi, mask of the splats inside that crop box)
        if SAMPLE.exists():
            self.open_file(str(SAMPLE))

    @staticmethod
    def warm_up() -> None:
        """Import torch and vispy, load the rasterizer's cached numba kernels (forward and backward)."""
        import torch

        from engines.jobs import run_job
        from engines.render.camera import frame_camera
        from engines.render.rasterize import warm_kernels
        from engines.render.still import rasterize_steps
        from engines.render.synthetic import sphere_scene

        warm_kernels(AA_MODES)
        scene = sphere_scene(24, footprint=0.2)
        camera = frame_camera(scene.means, 0.0, 0.0, 24, 24)
        run_job(rasterize_steps(scene, camera.to(torch.float32)))  # the still renders' band kernel
        import vispy.scene  # noqa: F401 - the viewer's import, done here instead of on first show

        from engines.render.preview import preview_scene, render_preview

        with torch.no_grad():
            render_preview(preview_scene(scene), camera.K.numpy(), camera.viewmat.numpy(), 24, 24, threads=1)
        _import_viewer_dependencies()
        import engines.render.fit
        import engines.render.pulsar  # noqa: F401 - both imported by the first fit otherwise (GUI thread)
        import_libraries(("pytorch_msssim",))  # the fit's SSIM loss, imported inside it

    # -- layout -------------------------------------------------------------------------
    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.tabs = QTabWidget()
        layout.addWidget(self.tabs)

        viewer = QWidget()
        v = QVBoxLayout(viewer)
        self.frame_button = QPushButton("Frame all")
        self.frame_button.setToolTip("Drag: orbit · Shift+drag: pan · wheel: zoom · W/A/S/D/Q/E: fly")
        self.box_button = QPushButton("Box select")
        self.box_button.setCheckable(True)
        self.box_button.setToolTip("Drag a box on the view. Shift adds, Ctrl/Alt removes.")
        self.lasso_button = QPushButton("Lasso select")
        self.lasso_button.setCheckable(True)
        self.lasso_button.setToolTip("Draw a free-hand outline on the view. Shift adds, Ctrl/Alt removes.")
        self.select_all_button = QPushButton("Select all")
        self.invert_button = QPushButton("Invert")
        self.clear_button = QPushButton("Clear selection")
        self.delete_button = QPushButton("Delete selected")
        self.crop_button = QPushButton("Crop to selection")
        self.still_button = QPushButton("Render still")
        self.still_button.setToolTip("Render the current view with the engine's exact rasterizer and the "
                                     "\"Still anti-aliasing\" mode (shown on the right)")
        v.addLayout(flow_row(self.frame_button, self.box_button, self.lasso_button, self.select_all_button,
                             self.invert_button, self.clear_button, self.delete_button, self.crop_button,
                             self.still_button))  # wraps on a narrow window instead of widening it
        split = QSplitter(Qt.Horizontal)
        self.view_host = QWidget()
        self.view_layout = QVBoxLayout(self.view_host)
        self.view_layout.setContentsMargins(0, 0, 0, 0)
        self.view_placeholder = QLabel("The 3D view opens when the panel is shown.")
        self.view_placeholder.setAlignment(Qt.AlignCenter)
        self.view_layout.addWidget(self.view_placeholder)
        split.addWidget(self.view_host)
        self.still_view = ImageView("Press \"Render still\" to render the current view\nwith the exact rasterizer.")
        self.still_caption = QLabel("Still render (exact rasterizer)")
        split.addWidget(_captioned(self.still_caption, self.still_view))
        split.setSizes([700, 300])
        v.addWidget(split, 1)
        self.stats_label = QLabel()
        self.stats_label.setWordWrap(True)  # a long scene summary must not set the window's width
        self.stats_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        v.addWidget(self.stats_label)
        self.tabs.addTab(viewer, "Viewer")

        fit = QWidget()
        f = QVBoxLayout(fit)
        self.load_target_button = QPushButton("Load photo…")
        self.load_views_button = QPushButton("Load posed views…")
        self.start_button = QPushButton("Start fit")
        self.pause_button = QPushButton("Pause")
        self.pause_button.setCheckable(True)
        self.cancel_button = QPushButton("Cancel")
        self.export_fit_button = QPushButton("Export .ply…")
        self.open_fit_button = QPushButton("Open in viewer")
        f.addLayout(flow_row(self.load_target_button, self.load_views_button, self.start_button, self.pause_button,
                             self.cancel_button, self.export_fit_button, self.open_fit_button))
        images = QHBoxLayout()
        self.target_view = ImageView("No target.\nLoad a photo, load posed views,\nor send an image from another panel.")
        self.current_view = ImageView("The current render appears here\nwhile fitting.")
        self.target_caption = QLabel("Target")
        self.current_caption = QLabel("Current render")
        images.addWidget(_captioned(self.target_caption, self.target_view))
        images.addWidget(_captioned(self.current_caption, self.current_view))
        f.addLayout(images, 3)
        import pyqtgraph as pg

        self.plot = pg.PlotWidget()
        self.plot.setBackground("#202020")
        self.plot.showGrid(x=True, y=True, alpha=0.3)
        self.plot.setLabel("bottom", "step")
        self.plot.setLabel("left", "PSNR (dB)", color="#4fc3f7")
        self.plot.setTitle(FIT_PLOT_EMPTY, color="#aaaaaa", size="9pt")
        legend = self.plot.addLegend(offset=(-10, 10))
        self.psnr_curve = self.plot.plot([], [], pen=pg.mkPen("#4fc3f7", width=2), name="PSNR (dB, left axis)")
        # the loss has its own right-hand axis (different units and range)
        self.plot.showAxis("right")
        self.plot.setLabel("right", "loss (L1 + D-SSIM)", color="#ffb74d")
        self.loss_box = pg.ViewBox()
        self.plot.scene().addItem(self.loss_box)
        self.plot.getAxis("right").linkToView(self.loss_box)
        self.loss_box.setXLink(self.plot)
        self.loss_curve = pg.PlotCurveItem([], [], pen=pg.mkPen("#ffb74d", width=2))
        self.loss_box.addItem(self.loss_curve)
        legend.addItem(self.loss_curve, "loss (right axis)")
        fix_axis_width(self.plot.getAxis("left"), "100.5")  # PSNR in dB
        fix_axis_width(self.plot.getAxis("right"), "0.0025")  # the loss
        main_box = self.plot.getViewBox()
        main_box.sigResized.connect(lambda *_: self.loss_box.setGeometry(main_box.sceneBoundingRect()))
        # cheap repaints during a fit: cached axes, ranges that move only when the curves leave them,
        # at most one redraw per REDRAW_INTERVAL_MS (see panels/live_plot.py)
        cache_axes(self.plot.getPlotItem())
        self.psnr_view = LiveView(main_box, x=StableRange())
        self.loss_view = LiveView(self.loss_box)
        self._plot_throttle = Throttle(self._draw_history, parent=self)
        f.addWidget(self.plot, 2)
        status = QHBoxLayout()
        self.fit_progress = QProgressBar()
        self.fit_progress.setRange(0, 1000)
        self.fit_status = QLabel("Idle.")
        status.addWidget(self.fit_progress, 1)
        status.addWidget(self.fit_status, 2)
        f.addLayout(status)
        self.tabs.addTab(fit, "Fit")

        self.frame_button.clicked.connect(self.frame_all)
        self.box_button.toggled.connect(lambda on: self._select_mode(self.box_button, on))
        self.lasso_button.toggled.connect(lambda on: self._select_mode(self.lasso_button, on))
        self.select_all_button.clicked.connect(self.select_all)
        self.invert_button.clicked.connect(self.invert_selection)
        self.clear_button.clicked.connect(self.clear_selection)
        self.delete_button.clicked.connect(self.delete_selected)
        self.crop_button.clicked.connect(self.crop_to_selection)
        self.still_button.clicked.connect(self.render_still)
        self.load_target_button.clicked.connect(self._ask_target)
        self.load_views_button.clicked.connect(self._ask_views)
        self.start_button.clicked.connect(self.start_fit)
        self.pause_button.toggled.connect(self._pause_fit)
        self.cancel_button.clicked.connect(self.cancel_fit)
        self.export_fit_button.clicked.connect(self._ask_export_fit)
        self.open_fit_button.clicked.connect(self.open_fit_in_viewer)
        self._update_buttons()

    def build_parameters(self) -> QWidget:
        widget = QWidget()
        layout = QVBoxLayout(widget)
        view_box = QGroupBox("Viewer")
        form = QFormLayout(view_box)
        self.bg_button = QPushButton()
        self.bg_button.clicked.connect(self._ask_background)
        form.addRow("Background", self.bg_button)
        self.point_size = QDoubleSpinBox()
        self.point_size.setRange(0.1, 5.0)
        self.point_size.setSingleStep(0.1)
        self.point_size.setValue(1.0)
        self.point_size.setToolTip("Scale of the drawn splats (1 = true size)")
        self.point_size.valueChanged.connect(self._viewer_settings_changed)
        form.addRow("Point size", self.point_size)
        self.sh_degree = QSpinBox()
        self.sh_degree.setRange(0, 3)
        self.sh_degree.setValue(3)
        self.sh_degree.setToolTip("Highest spherical-harmonic band used for colour (viewer and still)")
        self.sh_degree.valueChanged.connect(self._viewer_settings_changed)
        form.addRow("SH degree", self.sh_degree)
        self.aa_mode = QComboBox()
        self.aa_mode.addItems(AA_MODES)
        self.aa_mode.setCurrentText("analytic")
        form.addRow("Still anti-aliasing", self.aa_mode)
        self.still_renderer = _renderer_combo("Splatting: the exact rasterizer. RayGauss: volumetric ray casting "
                                              "(no popping of overlapping splats; much slower)")
        form.addRow("Still renderer", self.still_renderer)
        self.still_scale = QDoubleSpinBox()
        self.still_scale.setRange(0.1, 2.0)
        self.still_scale.setSingleStep(0.1)
        self.still_scale.setValue(0.5)
        self.still_scale.setToolTip("Still size relative to the view")
        form.addRow("Still scale", self.still_scale)
        layout.addWidget(view_box)

        crop_box = QGroupBox("Crop box")
        crop_box.setToolTip("An axis-aligned box in scene coordinates; Apply crop deletes every splat whose "
                            "centre lies outside it (undoable).")
        grid = QGridLayout(crop_box)
        grid.addWidget(QLabel("min"), 0, 1, Qt.AlignCenter)
        grid.addWidget(QLabel("max"), 0, 2, Qt.AlignCenter)
        self.crop_min, self.crop_max = [], []
        for row, axis in enumerate("xyz", start=1):
            grid.addWidget(QLabel(axis), row, 0)
            for col, store in ((1, self.crop_min), (2, self.crop_max)):
                spin = QDoubleSpinBox()
                spin.setRange(-1e6, 1e6)
                spin.setDecimals(4)
                spin.setKeyboardTracking(False)
                spin.valueChanged.connect(self._crop_edited)
                grid.addWidget(spin, row, col)
                store.append(spin)
        self.crop_show = QCheckBox("Show box in the view")
        self.crop_show.setToolTip("Turns on by itself when you change the box")
        self.crop_show.toggled.connect(self._crop_changed)
        grid.addWidget(self.crop_show, 4, 0, 1, 3)
        self.crop_reset_button = QPushButton("Reset to scene bounds")
        self.crop_reset_button.clicked.connect(self.reset_crop_box)
        self.crop_from_selection_button = QPushButton("Fit to selection")
        self.crop_from_selection_button.setToolTip("Set the box to the bounding box of the selected splats")
        self.crop_from_selection_button.clicked.connect(self.crop_box_from_selection)
        grid.addWidget(self.crop_reset_button, 5, 0, 1, 2)
        grid.addWidget(self.crop_from_selection_button, 5, 2)
        self.crop_apply_button = QPushButton("Apply crop")
        self.crop_apply_button.setToolTip("Delete the splats outside the box (undoable)")
        self.crop_apply_button.clicked.connect(self.apply_crop)
        grid.addWidget(self.crop_apply_button, 6, 0, 1, 3)
        self.crop_info = QLabel()
        self.crop_info.setWordWrap(True)
        grid.addWidget(self.crop_info, 7, 0, 1, 3)
        layout.addWidget(crop_box)

        fit_box = QGroupBox("Fit")
        form = QFormLayout(fit_box)
        self.primitive = QComboBox()
        self.primitive.addItems(["gaussians", "spheres"])
        form.addRow("Primitive", self.primitive)
        self.count = QSpinBox()
        self.count.setRange(1, 200000)
        self.count.setValue(1000)
        self.count.setToolTip("Primitives at the start; density control may grow this up to the cap")
        form.addRow("Initial count", self.count)
        self.steps = QSpinBox()
        self.steps.setRange(1, 100000)
        self.steps.setValue(300)
        form.addRow("Steps", self.steps)
        self.fit_aa = QComboBox()
        self.fit_aa.addItems(AA_MODES)
        form.addRow("Anti-aliasing", self.fit_aa)
        self.fit_renderer = _renderer_combo("Renderer the fit optimises through. RayGauss: volumetric ray casting "
                                            "(Gaussians only; no clone/split, MCMC works; much slower)")
        form.addRow("Renderer", self.fit_renderer)
        self.densify = QCheckBox("clone / split / prune")
        self.densify.setChecked(True)
        form.addRow("Density control", self.densify)
        self.strategy = QComboBox()
        self.strategy.addItems(["default", "mcmc"])
        self.strategy.setToolTip("default: 3DGS clone / split / prune with opacity resets; "
                                 "mcmc: 3DGS-MCMC (dead Gaussians relocated, position noise, fixed budget)")
        form.addRow("Strategy", self.strategy)
        self.max_count = QSpinBox()
        self.max_count.setRange(1, 2000000)
        self.max_count.setValue(20000)
        self.max_count.setToolTip("Cap on the Gaussian count (the budget of the MCMC strategy)")
        form.addRow("Max count", self.max_count)
        self.mip_3d = QCheckBox("Mip-Splatting 3D filter")
        self.mip_3d.setToolTip("Posed views: limit each Gaussian to the cameras' sampling rate (baked into the result)")
        form.addRow("Anti-aliasing 3D", self.mip_3d)
        self.max_side = QSpinBox()
        self.max_side.setRange(8, 1024)
        self.max_side.setValue(128)
        self.max_side.setToolTip("Photos are downscaled so that the longer side is at most this")
        form.addRow("Max photo side", self.max_side)
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        form.addRow("Seed", self.seed)
        layout.addWidget(fit_box)
        layout.addStretch(1)
        self._show_background()
        return widget

    # -- viewer -------------------------------------------------------------------------
    def pending_builds(self) -> list:
        """The OpenGL view, made while the studio is idle in two turns (its canvas with the OpenGL
        context, then the view); it draws nothing until the panel is shown."""
        return [self._make_scene_canvas, self._create_gl_view] if self.canvas is None and _platform_has_gl() else []

    def _make_scene_canvas(self) -> None:
        if self.canvas is not None or self._scene_canvas is not None or not _platform_has_gl():
            return
        try:
            from panels.render.viewer import SplatCanvas

            self._scene_canvas = SplatCanvas.make_scene_canvas()
        except Exception:  # noqa: BLE001 - on_shown tries again and reports why it falls back
            self._scene_canvas = None

    def on_shown(self) -> None:
        """Create the vispy canvas on first show (needs an OpenGL context), unless made while idle."""
        if self.canvas is not None:
            return
        if not _platform_has_gl():  # offscreen / minimal platforms: no OpenGL context at all
            self._use_cpu_canvas()
            return
        self._create_gl_view()

    def _create_gl_view(self) -> None:
        """The OpenGL view (the canvas made ahead if there is one); CPU frames when that fails."""
        if self.canvas is not None:
            return
        try:
            from panels.render.viewer import SplatCanvas

            scene_canvas, self._scene_canvas = self._scene_canvas, None
            self.canvas = SplatCanvas(parent=self.view_host, scene_canvas=scene_canvas)
        except Exception as exc:  # noqa: BLE001 - no OpenGL: CPU frames in a plain widget instead
            self.services.log(f"Render panel: OpenGL view unavailable ({exc}); showing CPU frames", "warning")
            self._use_cpu_canvas()
            return
        self.view_placeholder.hide()
        self.view_layout.addWidget(self.canvas.native)
        self._filter = _BoxSelectFilter(self)
        self._lasso = _LassoSelectFilter(self)
        self.canvas.native.installEventFilter(self._filter)
        self.canvas.native.installEventFilter(self._lasso)
        self.canvas.renderer_chosen = lambda: QTimer.singleShot(0, self._update_stats)  # notes a CPU-frame view
        self._setup_canvas()

    def _use_cpu_canvas(self) -> None:
        """No OpenGL at all: the view as progressive CPU frames (no box/lasso selection, no crop wireframe)."""
        from panels.render.cpu_canvas import CpuCanvas

        self.canvas = CpuCanvas(parent=self.view_host)
        self.view_placeholder.hide()
        self.view_layout.addWidget(self.canvas.native)
        for button in (self.box_button, self.lasso_button):
            button.setEnabled(False)
            button.setToolTip("Needs the OpenGL view (this display has no OpenGL)")
        self._setup_canvas()
        self._update_stats()

    def _setup_canvas(self) -> None:
        self.canvas.set_background(self.background)
        self.canvas.set_point_scale(self.point_size.value())
        self._push_to_canvas()
        self._crop_changed()
        self.canvas.frame_all()

    def _push_to_canvas(self) -> None:
        if self.canvas is None:
            return
        if self.scene is None or len(self.scene) == 0:
            self.canvas.set_splats(np.zeros((0, 3)), np.zeros((0, 4)), np.zeros(0), np.zeros(0, bool))
            return
        g = self.scene
        if self._view_arrays is None or self._view_arrays[0] is not g:
            self._view_arrays = (g, viewer_arrays(g))
        means, colors, cov = self._view_arrays[1]
        degree = min(self.sh_degree.value(), g.sh_degree)
        color_fn = None
        if degree > 0:
            def color_fn(centre, g=g, degree=degree, opacity=colors[:, 3:]):
                import torch

                from engines.render.sh import sh_to_color

                rgb = sh_to_color(g.sh, g.means, torch.as_tensor(centre, dtype=torch.float32), degree).clamp(0, 1)
                return np.concatenate([rgb.numpy(), opacity], 1)

        frame = self._frame[1] if self._frame is not None and self._frame[0] is g else None
        self.canvas.set_splats(means, colors, cov, self.selection, color_fn, frame=frame)

    def frame_all(self) -> None:
        """Fit the whole scene in the view."""
        if self.canvas is not None:
            self.canvas.frame_all()

    def _select_mode(self, button, on: bool) -> None:
        """Box and lasso are exclusive; while either is on, mouse drags select instead of orbiting."""
        if on:
            for other in (self.box_button, self.lasso_button):
                if other is not button:
                    other.setChecked(False)
        if self.canvas is not None:
            self.canvas.view.camera.interactive = not (self.box_button.isChecked() or self.lasso_button.isChecked())

    def _viewer_settings_changed(self) -> None:
        if self.canvas is not None:
            self.canvas.set_point_scale(self.point_size.value())
            self._push_to_canvas()

    def _ask_background(self) -> None:
        colour = QColorDialog.getColor(QColor.fromRgbF(*self.background), self, "Background colour")
        if colour.isValid():
            self.set_background((colour.redF(), colour.greenF(), colour.blueF()))

    def set_background(self, rgb) -> None:
        """Viewer and still background colour (r, g, b) in [0, 1]."""
        self.background = tuple(float(c) for c in rgb)
        self._show_background()
        if self.canvas is not None:
            self.canvas.set_background(self.background)

    def _show_background(self) -> None:
        if hasattr(self, "bg_button"):
            r, g, b = (round(c * 255) for c in self.background)
            self.bg_button.setText(f"#{r:02x}{g:02x}{b:02x}")
            self.bg_button.setStyleSheet(f"background: rgb({r},{g},{b}); color: {'black' if r + g + b > 380 else 'white'}")

    def view_camera(self, width: int | None = None, height: int | None = None):
        """The camera of the current view (a framing camera when the 3D view does not exist)."""
        import torch

        from engines.render.camera import Camera, frame_camera

        if self.canvas is not None and self.scene is not None and len(self.scene):
            cw, ch = self.canvas.canvas.size
            width, height = width or cw, height or ch
            K, view = self.canvas.camera_matrices(width, height)
            return Camera(torch.from_numpy(K), torch.from_numpy(view), int(width), int(height))
        means = self.scene.means if self.scene is not None and len(self.scene) else np.zeros((1, 3))
        return frame_camera(means, 0.0, 0.0, width or 800, height or 600, 45.0)

    # -- scene and files ----------------------------------------------------------------
    def open_file(self, path: str) -> None:
        """A scene opens in the viewer; a photo or a posed-view folder becomes the fit target."""
        if path_is_dir(path):  # known from the drop's examination: no stat on the GUI thread
            return self.set_fit_views(path)
        if path.lower().endswith((".png", ".jpg", ".jpeg", ".bmp")):
            return self.open_target_photo(path)
        return self.load_in_background(path, lambda: _scene_job(path), lambda r: self._show_loaded(path, *r))

    def open_target_photo(self, path: str):
        """Decode a photo on a worker (scaled to the fit's longest side) and make it the fit target;
        returns the job handle."""
        side = self.max_side.value()

        def show_photo(image) -> None:
            self.set_fit_target(image, path)
            self.tabs.setCurrentIndex(1)

        return self.load_in_background(path, lambda: _photo_job(path, side), show_photo)

    def _scene_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """The current scene's bounds, computed once per scene (a job computes them for opened files)."""
        if self._bounds is None or self._bounds[0] is not self.scene:
            self._bounds = (self.scene, self.scene.bounds())
        return self._bounds[1]

    def _show_loaded(self, path: str, scene, arrays, file_size: int, bounds, frame=None, inside=None) -> None:
        """A scene read (and its viewer arrays, frame and crop mask prepared) by :func:`_scene_job`
        replaces the current one."""
        self.undo_stack.clear()
        self.scene_path = os.fspath(path)
        self.file_size = file_size
        self._view_arrays = (scene, arrays)
        self._bounds = (scene, bounds)
        self._frame = (scene, frame) if frame is not None else None
        self._inside = (scene, *inside) if inside is not None else None
        if os.fspath(path) != str(SAMPLE):
            self.tabs.setCurrentIndex(0)
        self._crop_updating = True  # the box of the old scene: reset_crop_box below shows the new one
        try:
            self._set_scene(scene, np.zeros(len(scene), bool))
        finally:
            self._crop_updating = False
        self._clear_still()
        self.reset_crop_box()
        if self.canvas is not None:
            self.canvas.frame_all()

    def _clear_still(self) -> None:
        """A new scene: the last still belongs to the old one."""
        self.still, self.still_camera = None, None
        self.still_view.set_image(None)
        self.still_caption.setText("Still render (exact rasterizer)")

    def _set_scene(self, scene, selection) -> None:
        if self.still is not None and scene is not self.scene and "out of date" not in self.still_caption.text():
            self.still_caption.setText(self.still_caption.text() + " (out of date)")
            self.still_caption.setToolTip("The scene changed since this still; press Render still")
        self.scene = scene
        self.selection = np.asarray(selection, bool).copy()
        self._push_to_canvas()
        self._update_stats()
        self._update_buttons()
        self._crop_changed()

    def _set_selection(self, selection) -> None:
        self.selection = np.asarray(selection, bool).copy()
        self._push_to_canvas()
        self._update_stats()
        self._update_buttons()
        self._crop_changed()

    def _update_stats(self) -> None:
        if self.scene is None:
            self.stats_label.setText("No scene. Open a .ply, .splat or .spz file, or fit one in the Fit tab.")
            return
        lo, hi = self._scene_bounds()
        size = f"{self.file_size / 1e6:.2f} MB" if self.file_size else "not saved"
        name = Path(self.scene_path).name if self.scene_path else "fitted scene"
        self.stats_label.setText(
            f"{name}: {len(self.scene):,} Gaussians (SH degree {self.scene.sh_degree}), "
            f"{int(self.selection.sum()):,} selected · bounds [{lo[0]:.2f}, {lo[1]:.2f}, {lo[2]:.2f}] – "
            f"[{hi[0]:.2f}, {hi[1]:.2f}, {hi[2]:.2f}] · file {size}{self._view_note()}")

    def _view_note(self) -> str:
        """' · view: CPU frames (...)' when the 3D view renders on the CPU (software or no GPU OpenGL)."""
        if self.canvas is None or not self.canvas.cpu_mode:
            return ""
        return f" · view: CPU frames (OpenGL is {self.canvas.gl_renderer or 'software'})"

    def _update_buttons(self) -> None:
        has = self.scene is not None and len(self.scene) > 0
        sel = bool(self.selection.any()) if has else False
        for b in (self.select_all_button, self.invert_button, self.still_button, self.frame_button, self.box_button,
                  self.lasso_button):
            b.setEnabled(has)
        for b in (self.clear_button, self.delete_button, self.crop_button):
            b.setEnabled(sel)
        running = self.fit_handle is not None
        self.start_button.setEnabled(self.fit_target is not None and not running)
        self.pause_button.setEnabled(running)
        self.cancel_button.setEnabled(running)
        self.export_fit_button.setEnabled(self.fit_result is not None and not running)
        self.open_fit_button.setEnabled(self.fit_result is not None and not running)

    # -- editing ------------------------------------------------------------------------
    def select_rect(self, x0: float, y0: float, x1: float, y1: float, mode: str = "replace") -> int:
        """Select splats whose centres project inside the view rectangle (pixels); returns the count.

        ``mode``: replace, add or subtract. Undoable.
        """
        if self.scene is None or len(self.scene) == 0:
            return 0
        u, v, front = self._project_means()
        xa, xb = sorted((x0, x1))
        ya, yb = sorted((y0, y1))
        inside = front & (u >= xa) & (u <= xb) & (v >= ya) & (v <= yb)
        return self._apply_selection(inside, mode, "Box select")

    def select_polygon(self, points, mode: str = "replace") -> int:
        """Select splats whose centres project inside the polygon ``points`` [(x, y), ...] in view pixels."""
        if self.scene is None or len(self.scene) == 0 or len(points) < 3:
            return 0
        from skimage.measure import points_in_poly

        u, v, front = self._project_means()
        uv = np.stack([np.nan_to_num(u, nan=-1e9), np.nan_to_num(v, nan=-1e9)], 1)
        inside = front & points_in_poly(uv, np.asarray(points, np.float64))
        return self._apply_selection(inside, mode, "Lasso select")

    def _project_means(self):
        cam = self.view_camera()
        m = self.scene.means.double().numpy()
        view = cam.viewmat.numpy()
        K = cam.K.numpy()
        t = m @ view[:3, :3].T + view[:3, 3]
        z = t[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            u = K[0, 0] * t[:, 0] / z + K[0, 2]
            v = K[1, 1] * t[:, 1] / z + K[1, 2]
        return u, v, z > 0

    def _apply_selection(self, inside: np.ndarray, mode: str, label: str) -> int:
        if mode == "add":
            new = self.selection | inside
        elif mode == "subtract":
            new = self.selection & ~inside
        else:
            new = inside
        self.undo_stack.push(_SelectionEdit(self, new, f"{label} ({int(inside.sum())})"))
        return int(inside.sum())

    def select_all(self) -> None:
        """Select every splat (undoable)."""
        if self.scene is not None:
            self.undo_stack.push(_SelectionEdit(self, np.ones(len(self.scene), bool), "Select all"))

    def clear_selection(self) -> None:
        """Deselect everything (undoable)."""
        if self.scene is not None:
            self.undo_stack.push(_SelectionEdit(self, np.zeros(len(self.scene), bool), "Clear selection"))

    def invert_selection(self) -> None:
        """Invert the selection (undoable)."""
        if self.scene is not None:
            self.undo_stack.push(_SelectionEdit(self, ~self.selection, "Invert selection"))

    def delete_selected(self) -> None:
        """Delete the selected splats (undoable)."""
        if self.scene is None or not self.selection.any():
            return
        keep = ~self.selection
        self.undo_stack.push(_SceneEdit(self, self.scene.subset(keep), np.zeros(int(keep.sum()), bool),
                                        f"Delete {int(self.selection.sum())} splats"))

    def crop_to_selection(self) -> None:
        """Keep only the splats inside the bounding box of the selection (undoable)."""
        if self.scene is None or not self.selection.any():
            return
        m = self.scene.means.numpy()
        lo, hi = m[self.selection].min(0), m[self.selection].max(0)
        keep = np.all((m >= lo) & (m <= hi), axis=1)
        self.undo_stack.push(_SceneEdit(self, self.scene.subset(keep), np.zeros(int(keep.sum()), bool),
                                        f"Crop box ({int(keep.sum())} kept)"))

    # -- crop box -----------------------------------------------------------------------
    def crop_box(self) -> tuple[np.ndarray, np.ndarray]:
        """The crop box as (min xyz, max xyz) numpy arrays (from the parameter spin boxes)."""
        return (np.array([s.value() for s in self.crop_min]), np.array([s.value() for s in self.crop_max]))

    def set_crop_box(self, lo, hi) -> None:
        """Set the crop box; values are rounded outwards to the spin boxes' 4 decimals."""
        self._crop_updating = True
        try:
            lo, hi = outward_box(lo, hi)
            for spin, v in zip(self.crop_min, lo):
                spin.setValue(float(v))
            for spin, v in zip(self.crop_max, hi):
                spin.setValue(float(v))
        finally:
            self._crop_updating = False
        self._crop_changed()

    def reset_crop_box(self) -> None:
        """Crop box = the scene bounds (nothing outside)."""
        if self.scene is not None and len(self.scene):
            lo, hi = self._scene_bounds()
            step = max(float(np.max(hi - lo)) / 100, 1e-4)
            for spin in self.crop_min + self.crop_max:
                spin.setSingleStep(step)
            self.set_crop_box(lo, hi)
        else:
            self.set_crop_box(np.zeros(3), np.zeros(3))

    def crop_box_from_selection(self) -> None:
        """Crop box = bounding box of the selected splats' centres."""
        if self.scene is not None and self.selection.any():
            m = self.scene.means.numpy()[self.selection]
            self.set_crop_box(m.min(0), m.max(0))
            self.crop_show.setChecked(True)

    def _crop_edited(self, *_) -> None:
        """The user changed a bound: show the box (which also refreshes it)."""
        if getattr(self, "_crop_updating", False):
            return
        if not self.crop_show.isChecked():
            self.crop_show.setChecked(True)  # emits toggled -> _crop_changed
        else:
            self._crop_changed()

    def _inside_crop(self) -> np.ndarray:
        """Mask of the splats whose centres lie in the crop box (kept per scene and box)."""
        lo, hi = self.crop_box()
        c = self._inside
        if c is not None and c[0] is self.scene and np.array_equal(c[1], lo) and np.array_equal(c[2], hi):
            return c[3]
        m = self.scene.means.detach().numpy()
        inside = np.all((m >= lo) & (m <= hi), axis=1)
        self._inside = (self.scene, lo, hi, inside)
        return inside

    def _crop_changed(self, *_) -> None:
        if getattr(self, "_crop_updating", False) or not hasattr(self, "crop_min"):
            return
        has = self.scene is not None and len(self.scene) > 0
        lo, hi = self.crop_box()
        valid = bool(np.all(lo <= hi))
        outside = int((~self._inside_crop()).sum()) if has else 0
        for w in (self.crop_reset_button, self.crop_show):
            w.setEnabled(has)
        self.crop_from_selection_button.setEnabled(has and bool(self.selection.any()))
        self.crop_apply_button.setEnabled(has and valid and outside > 0)
        if not has:
            self.crop_info.setText("Open a scene to crop it.")
        elif not valid:
            self.crop_info.setText("Each min must be ≤ its max.")
        else:
            self.crop_info.setText(f"{outside:,} of {len(self.scene):,} splats lie outside the box.")
        if self.canvas is not None:
            self.canvas.set_crop_box(lo, hi, has and valid and self.crop_show.isChecked())

    def apply_crop(self) -> int:
        """Delete the splats whose centres lie outside the crop box (undoable); returns how many."""
        if self.scene is None or len(self.scene) == 0:
            return 0
        lo, hi = self.crop_box()
        if not np.all(lo <= hi):
            self.services.notify("Crop box: each min must be ≤ its max", "warning")
            return 0
        keep = self._inside_crop()
        removed = int((~keep).sum())
        if removed == 0:
            return 0
        self.undo_stack.push(_SceneEdit(self, self.scene.subset(keep), self.selection[keep],
                                        f"Crop box ({removed} removed)"))
        return removed

    # -- still render -------------------------------------------------------------------
    def render_still(self) -> None:
        """Render the current view with the engine rasterizer (a job)."""
        if self.scene is None or len(self.scene) == 0:
            return
        from engines.render.still import still_job

        scale = self.still_scale.value()
        if self.canvas is not None:
            cw, ch = self.canvas.canvas.size
        else:
            cw, ch = 800, 600
        camera = self.view_camera(max(8, int(cw * scale)), max(8, int(ch * scale)))
        scene, aa, bg, degree = self.scene, self.aa_mode.currentText(), self.background, self.sh_degree.value()
        raygauss = self.still_renderer.currentData() == "raygauss"
        self.still_view.setText("Rendering…")
        self.still_button.setEnabled(False)

        def done(image):
            self.still = image
            self.still_camera = camera
            how = "RayGauss ray casting" if raygauss else f"{aa} anti-aliasing"
            self.still_caption.setText(f"Still: {camera.width}×{camera.height} px, {how}")
            self.still_caption.setToolTip("")
            self.still_view.set_image(image)
            self.still_button.setEnabled(True)
            self.still_handle = None

        def failed(record):
            self.still_button.setEnabled(True)
            self.still_view.set_image(None)
            self.still_handle = None
            self.services.notify(f"Still render failed: {record.error}", "error")

        self.still_handle = self.services.jobs.submit(
            "still render", self.name,
            lambda: _raygauss_still(scene, camera, bg, degree) if raygauss else still_job(scene, camera, aa, bg, degree),
            device="cpu",
            on_result=done, on_error=failed, on_cancel=lambda: self.still_button.setEnabled(True))

    # -- fitting ------------------------------------------------------------------------
    def receive(self, kind: str, payload: Any) -> None:
        """Accept ("image", (H,W,3) array) as the fit target, or ("scene", path of a .ply) to view."""
        if kind == "scene":  # e.g. a 3D result of the Generate panel, saved to a temporary .ply
            self.open_file(str(payload))
            return
        if kind != "image":
            raise OpenError(f"Render cannot receive {kind}")
        array = np.asarray(payload)
        if array.ndim not in (2, 3) or array.size == 0:
            raise OpenError(f"Render needs an (H, W, 3) image, got shape {array.shape}")
        self.set_fit_target(array)
        self.tabs.setCurrentIndex(1)

    def set_fit_target(self, image, source: str = "") -> None:
        """Use one photo as the target (downscaled to the "max photo side")."""
        image = to_uint8(image)
        side = self.max_side.value()
        if max(image.shape[:2]) > side:
            from PIL import Image

            scale = side / max(image.shape[:2])
            size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
            image = np.asarray(Image.fromarray(image).resize(size, Image.LANCZOS))
        self.fit_target = [image]
        self.fit_cameras = None
        self.fit_init = None
        self.fit_source = [source] if source else []
        self.target_view.set_image(image)
        self.target_caption.setText(f"Target photo ({image.shape[1]}×{image.shape[0]} px)")
        self.current_caption.setText("Current render")
        self.fit_status.setText(f"Target {image.shape[1]}×{image.shape[0]} photo. Press Start fit.")
        self._update_buttons()

    def set_fit_views(self, folder: str):
        """Use posed views as targets: a folder with cameras.json, a transforms.json (nerfstudio /
        instant-ngp) or a COLMAP model (its points3D start the Gaussians). Read by a job on the io
        lane behind the loading card (returns its handle); the Fit tab shows them when it ends."""
        folder = os.fspath(folder)
        if not os.path.isdir(folder):
            raise OpenError(f"folder not found: {folder}")
        side = self.max_side.value()
        return self.load_in_background(folder, lambda: _posed_views_job(folder, side),
                                       lambda views: self._show_fit_views(folder, views),
                                       title=f"Reading the posed views in {Path(folder).name}…")

    def _show_fit_views(self, folder: str, views) -> None:
        """Posed views read by :func:`_posed_views_job` become the fit targets."""
        images = views.images
        self.fit_target, self.fit_cameras, self.fit_source = images, views.cameras, [folder]
        self.fit_init = views.init
        self.target_view.set_image(images[0])
        self.target_caption.setText(f"Target: view 1 of {len(images)}")
        self.current_caption.setText("Current render")
        start = f", {len(views.init):,} points to start from" if views.init is not None else ""
        notes = f" ({'; '.join(views.notes)})" if views.notes else ""
        self.fit_status.setText(f"{len(images)} posed views ({views.kind}{start}){notes}. Press Start fit.")
        self._update_buttons()
        self.tabs.setCurrentIndex(1)

    def _ask_target(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Target photo", "", "Images (*.png *.jpg *.jpeg *.bmp *.tif *.tiff)")
        if path:  # decoded by a job (a 16 Mpx photo takes seconds); a bad file fails its open with a message
            self.open_target_photo(path)

    def _ask_views(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Posed views folder (cameras.json, transforms.json or COLMAP)")
        if folder:
            try:
                self.set_fit_views(folder)
            except OpenError as exc:
                self.services.notify(str(exc), "error")

    def fit_settings(self):
        """FitSettings from the parameter controls."""
        from engines.render.fit import FitSettings

        count = self.count.value()
        return FitSettings(primitive=self.primitive.currentText(), count=count, steps=self.steps.value(),
                           aa_mode=self.fit_aa.currentText(), densify=self.densify.isChecked(),
                           max_count=max(count, self.max_count.value()), strategy=self.strategy.currentText(),
                           mip_filter3d=self.mip_3d.isChecked(), renderer=self.fit_renderer.currentData(),
                           seed=self.seed.value(), preview_every=5)

    def start_fit(self) -> None:
        """Start fitting the current target (a job with live previews)."""
        if self.fit_target is None or self.fit_handle is not None:
            return
        from engines.render.fit import fit_job

        settings = self.fit_settings()
        targets, cameras = self.fit_target, self.fit_cameras
        init = self.fit_init
        init = init.with_degree(settings.sh_degree) if init is not None and settings.primitive == "gaussians" else None
        self._history = []
        self.psnr_view.reset(x_fixed=(0, settings.steps))
        self.loss_view.reset()
        self._plot_throttle.flush()
        self.fit_result = None
        self.fit_status.setText("Starting…")
        self.pause_button.setChecked(False)
        self.fit_handle = self.services.jobs.submit(
            f"fit {settings.count} {settings.primitive}", self.name, lambda: fit_job(targets, cameras, settings, init=init),
            device="cpu", on_event=self._fit_event, on_result=self._fit_done, on_error=self._fit_failed,
            on_cancel=self._fit_cancelled)
        self._fit_settings = settings
        self._update_buttons()

    def _fit_event(self, event) -> None:
        from engines.jobs import Preview, Progress

        if isinstance(event, Progress):
            set_progress_later(self.fit_progress, int(event.fraction * 1000))
            self.fit_status.setText(event.message)
        elif isinstance(event, Preview):
            if event.image is not None:
                self.current_view.set_image(event.image)
                view = event.data.get("view", 0)
                if self.fit_target is not None and len(self.fit_target) > 1:
                    self.target_view.set_image(self.fit_target[view])
                    self.target_caption.setText(f"Target: view {view + 1} of {len(self.fit_target)}")
                step = event.data.get("step")
                self.current_caption.setText("Current render" + (f" (step {step})" if step is not None else ""))
            if "step" in event.data:
                self._history.append(event.data)
                self._plot_throttle.request()

    def _draw_history(self) -> None:
        """The PSNR and loss curves of the fit so far (throttled, on stable ranges)."""
        steps = [h["step"] for h in self._history]
        psnr, loss = [h["psnr"] for h in self._history], [h["loss"] for h in self._history]
        self.psnr_curve.setData(steps, psnr)
        self.loss_curve.setData(steps, loss)
        self.psnr_view.show(steps, psnr)
        self.loss_view.show(steps, loss)
        if steps and self.plot.plotItem.titleLabel.text != FIT_PLOT_CAPTION:
            # a caption in the empty state's place: removing the title row resized the plot, and every
            # axis (with its grid) was painted again in the fit's first redraw
            self.plot.setTitle(FIT_PLOT_CAPTION, color="#aaaaaa", size="9pt")

    def _fit_done(self, result) -> None:
        self._plot_throttle.flush()  # the last steps' points
        self.fit_handle = None
        self.fit_result = result
        self.fit_progress.setValue(1000)
        self.fit_status.setText(f"Done: {len(result.scene)} {self._fit_settings.primitive}, "
                                f"PSNR {result.final_psnr:.2f} dB. Export or open in the viewer.")
        self._update_buttons()

    def _fit_failed(self, record) -> None:
        self._plot_throttle.flush()
        self.fit_handle = None
        self.fit_status.setText(f"Failed: {record.error}")
        self.services.notify(f"Fit failed: {record.error}", "error")
        self._update_buttons()

    def _fit_cancelled(self) -> None:
        self.fit_handle = None
        self.fit_status.setText("Cancelled.")
        self._update_buttons()

    def _pause_fit(self, paused: bool) -> None:
        if self.fit_handle is None:
            return
        if paused:
            self.fit_handle.pause()
            self.pause_button.setText("Resume")
            self.fit_status.setText("Paused.")
        else:
            self.fit_handle.resume()
            self.pause_button.setText("Pause")

    def cancel_fit(self) -> None:
        """Cancel a running fit."""
        if self.fit_handle is not None:
            self.fit_handle.cancel()

    def open_fit_in_viewer(self) -> None:
        """Show the fitted scene in the viewer (undoable like an edit)."""
        if self.fit_result is None:
            return
        scene = self.fit_result.gaussians()
        self.undo_stack.push(_SceneEdit(self, scene, np.zeros(len(scene), bool), "Open fitted scene"))
        self.scene_path, self.file_size = None, None
        self._update_stats()
        self._clear_still()
        self.reset_crop_box()
        self.tabs.setCurrentIndex(0)
        self.frame_all()

    def _ask_export_fit(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export fitted scene", "fit.ply", "3DGS scene (*.ply)")
        if path:
            try:
                written = self.export_fit(path, force=True)
                self.services.notify(f"Exported {written}")
            except Exception as exc:  # noqa: BLE001 - shown to the user
                from studio.errors import describe_error

                self.services.notify(f"Export failed: {describe_error(exc)}", "error")

    def export_fit(self, path: str, force: bool = False) -> str:
        """Write the fitted scene as a 3DGS .ply with a provenance sidecar."""
        if self.fit_result is None:
            raise OpenError("No fitted scene to export yet")
        from engines.render.io import save_ply
        from studio.export import make_provenance, save_with_sidecar

        scene = self.fit_result.gaussians()
        params = dict(vars(self._fit_settings))
        prov = make_provenance(self.name, "engines.render.fit", params, seed=self._fit_settings.seed, device="cpu",
                               inputs=[p for p in self.fit_source if p and Path(p).is_file()],
                               extra={"final_psnr": self.fit_result.final_psnr})
        return os.fspath(save_with_sidecar(path, lambda tmp: save_ply(tmp, scene), prov, force=force))

    # -- export / parameters ------------------------------------------------------------
    def can_export(self) -> bool:
        return (self.scene is not None and len(self.scene) > 0) or self.still is not None

    def export(self, path: str, force: bool = False) -> str:
        """``.ply`` / ``.compressed.ply`` / ``.splat`` / ``.spz``: the (edited) viewer scene; ``.png``: the last still."""
        from studio.export import make_provenance, save_png, save_with_sidecar

        suffix = Path(path).suffix.lower()
        inputs = [self.scene_path] if self.scene_path else []
        if suffix == ".png":
            if self.still is None:
                raise OpenError("Render a still first (the Render still button), then export it as PNG")
            params = dict(self.current_parameters(), camera=self.still_camera.as_dict())
            prov = make_provenance(self.name, "engines.render.rasterize", params, device="cpu", inputs=inputs)
            return os.fspath(save_png(path, self.still, prov, force=force))
        if suffix in (".ply", ".splat", ".spz"):
            if self.scene is None:
                raise OpenError("No scene to export")
            from engines.render.formats import save_scene, scene_format

            scene, fmt = self.scene, scene_format(path)
            prov = make_provenance(self.name, "engines.render.formats", {"splats": len(scene), "format": fmt, "edits":
                                   [self.undo_stack.text(i) for i in range(self.undo_stack.index())]}, inputs=inputs)
            return os.fspath(save_with_sidecar(path, lambda tmp: save_scene(tmp, scene, fmt), prov, force=force))
        raise OpenError(f"Render exports .ply, .compressed.ply, .splat, .spz or .png, "
                        f"not {suffix or 'files without a suffix'}")

    def current_parameters(self) -> dict:
        return {"background": list(self.background), "point_size": self.point_size.value(),
                "sh_degree": self.sh_degree.value(), "aa": self.aa_mode.currentText(),
                "still_scale": self.still_scale.value(), "primitive": self.primitive.currentText(),
                "count": self.count.value(), "steps": self.steps.value(), "fit_aa": self.fit_aa.currentText(),
                "densify": self.densify.isChecked(), "max_side": self.max_side.value(), "seed": self.seed.value(),
                "max_count": self.max_count.value(), "strategy": self.strategy.currentText(),
                "mip_3d": self.mip_3d.isChecked(), "still_renderer": self.still_renderer.currentData(),
                "fit_renderer": self.fit_renderer.currentData()}

    def restore_parameters(self, parameters: dict) -> None:
        p = self.check_parameters(parameters or {})
        for key in ("aa", "fit_aa"):
            if key in p and p[key] not in AA_MODES:
                raise OpenError(f"Render parameter {key}: {p[key]!r} is not one of {', '.join(AA_MODES)}")
        if "background" in p:
            self.set_background(p["background"])
        for key, widget in (("point_size", self.point_size), ("sh_degree", self.sh_degree),
                            ("still_scale", self.still_scale), ("count", self.count), ("steps", self.steps),
                            ("max_side", self.max_side), ("seed", self.seed), ("max_count", self.max_count)):
            if key in p:
                widget.setValue(type(widget.value())(p[key]))
        for key, combo in (("aa", self.aa_mode), ("primitive", self.primitive), ("fit_aa", self.fit_aa),
                           ("strategy", self.strategy)):
            if key in p:
                combo.setCurrentText(str(p[key]))
        if "densify" in p:
            self.densify.setChecked(bool(p["densify"]))
        if "mip_3d" in p:
            self.mip_3d.setChecked(bool(p["mip_3d"]))
        for key, combo in (("still_renderer", self.still_renderer), ("fit_renderer", self.fit_renderer)):
            if key in p:
                _set_renderer(combo, p[key])

    def open_exported(self, path: str, provenance: dict, open_file: bool = True):
        """A scene is opened with its parameters; a still PNG restores its parameters and reopens the
        scene it was rendered from when that file still exists (the PNG is not a fit target)."""
        if Path(path).suffix.lower() == ".png":
            self.check_parameters(provenance.get("parameters") or {})
            scenes = [p for p in (provenance.get("inputs") or {}) if Path(p).suffix.lower() in (".ply", ".splat", ".spz")]
            if scenes and Path(scenes[0]).is_file() and self.open_file(scenes[0]) is not None:
                self._after_open = lambda: self.restore_from_provenance(provenance)  # once the scene is shown
                return None  # the PNG itself is not being opened
            self.restore_from_provenance(provenance)
            return None
        return super().open_exported(path, provenance, open_file)
