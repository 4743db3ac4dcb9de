"""Widgets of the Codec panel: an image canvas with block overlay, the quantization-matrix
editor and the A/B compare view. Display only: nothing here computes more than a few ms."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from qtpy.QtCore import QEvent, QObject, QRectF, Qt, Signal
from qtpy.QtGui import QBrush, QColor, QPen
from qtpy.QtWidgets import (
    QComboBox,
    QFrame,
    QGraphicsItem,
    QGraphicsRectItem,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QSlider,
    QTableWidget,
    QTableWidgetItem,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from engines.codec.difference import difference_image, difference_job, signed_difference

__all__ = ["PAIR_ON_GUI_MAX_PIXELS", "CompareView", "ImageCanvas", "InfoText", "PointerMoves", "QuantEditor", "difference_image",
           "difference_job", "heat_lut", "make_view", "pair_fits_gui_thread", "show_image"]


def heat_lut(name: str = "viridis") -> np.ndarray:
    """A 256-entry RGB lookup table from pyqtgraph's bundled colour maps."""
    try:
        cmap = pg.colormap.get(name)
    except Exception:  # pragma: no cover - very old pyqtgraph
        cmap = pg.ColorMap([0, 1], [(0, 0, 0), (255, 255, 255)])
    return cmap.getLookupTable(0.0, 1.0, 256, alpha=False)


def show_image(item: pg.ImageItem, image: np.ndarray) -> None:
    """Show an 8-bit image in a row-major ImageItem without per-pixel work on the GUI thread: uint8
    data gets no levels, so pyqtgraph wraps it in a QImage as it is (levels (0, 255) make it rescale
    every pixel: ~0.2 s for 16 Mpx); other dtypes keep the 0..255 window."""
    if image.dtype == np.uint8:
        item.setImage(image if image.flags.c_contiguous else np.ascontiguousarray(image), autoLevels=False,
                      levels=None)
    else:
        item.setImage(image, autoLevels=False, levels=(0, 255))


#: job states in which a difference job will still deliver its result
_JOB_LIVE = ("queued", "running", "paused")

#: the largest A/B pair (pixels per image) whose per-pixel work runs on the GUI thread: the compare
#: view's difference image and the Compare tab's PSNR; larger pairs are computed by a job
PAIR_ON_GUI_MAX_PIXELS = 1 << 20


def pair_fits_gui_thread(image: np.ndarray) -> bool:
    """Whether per-pixel work on a pair of images like ``image`` may run on the GUI thread
    (at most :data:`PAIR_ON_GUI_MAX_PIXELS` pixels)."""
    return image.shape[0] * image.shape[1] <= PAIR_ON_GUI_MAX_PIXELS


def make_view(layout: pg.GraphicsLayout, title: str = "", row=None, col=None) -> tuple[pg.ViewBox, pg.ImageItem]:
    """A ViewBox (y down, square pixels) holding a row-major ImageItem."""
    if title:
        layout.addLabel(title, row=row, col=col)
        row = None if row is None else row + 1
    vb = layout.addViewBox(row=row, col=col, lockAspect=True, invertY=True, enableMenu=False)
    item = pg.ImageItem(axisOrder="row-major")
    vb.addItem(item)
    return vb, item


class PointerMoves(QObject):
    """Calls ``callback(scene_pos)`` for every pointer move over a pyqtgraph view, at the scene
    position Qt gives its items. pyqtgraph's ``sigMouseMoved`` drops moves closer than 1/100 s to the
    previous one, so a read-out could keep the pixel of a move before the one the pointer rests at."""

    def __init__(self, view: pg.GraphicsView, callback) -> None:
        super().__init__(view)
        self.view, self.callback = view, callback
        view.viewport().installEventFilter(self)

    def eventFilter(self, watched, event) -> bool:  # Qt's name
        if event.type() == QEvent.Type.MouseMove:
            pos = event.position().toPoint() if hasattr(event, "position") else event.pos()
            self.callback(self.view.mapToScene(pos))
        return False


class ImageCanvas(pg.GraphicsLayoutWidget):
    """Shows an image with an optional block grid and per-block heat map; emits ``clicked(x, y)``
    and ``hovered(x, y)`` in image pixel coordinates."""

    clicked = Signal(float, float)
    hovered = Signal(float, float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setBackground("#202020")
        self.view, self.image_item = make_view(self.ci)
        self.heat = pg.ImageItem(axisOrder="row-major")
        self.heat.setLookupTable(heat_lut("inferno"))
        self.heat.setOpacity(0.35)
        # the heat map's last row and column of blocks may reach past an image whose size is not a
        # multiple of the block: it is drawn inside a frame of the image's size that clips it
        self.heat_clip = QGraphicsRectItem()
        self.heat_clip.setPen(QPen(Qt.PenStyle.NoPen))
        self.heat_clip.setFlag(QGraphicsItem.GraphicsItemFlag.ItemClipsChildrenToShape, True)
        self.heat_clip.setZValue(5)
        self.heat.setParentItem(self.heat_clip)
        self.view.addItem(self.heat_clip)
        self.grid = pg.PlotCurveItem(pen=pg.mkPen((255, 255, 255, 90), width=0))
        self.grid.setZValue(6)
        self.view.addItem(self.grid)
        self.selection = pg.QtWidgets.QGraphicsRectItem()
        self.selection.setPen(pg.mkPen((0, 255, 255), width=2, cosmetic=True))
        self.selection.setZValue(7)
        self.selection.setVisible(False)
        self.view.addItem(self.selection)
        self.placeholder = pg.TextItem("Drop an image here, or load a sample from the dock", color=(200, 200, 200), anchor=(0.5, 0.5))
        self.view.addItem(self.placeholder)
        self._centre_placeholder()
        self.scene().sigMouseClicked.connect(self._on_click)
        self._moves = PointerMoves(self, self._on_move)
        self._shape = None
        self._needs_fit = False

    def set_image(self, image: np.ndarray | None, auto_range: bool = False) -> None:
        """Show ``(H, W, 3)`` or ``(H, W)`` uint8 (None clears)."""
        if image is None:
            self.image_item.clear()
            self._shape = None
            self.heat.setVisible(False)
            self.grid.setVisible(False)
            self.selection.setVisible(False)
            self.placeholder.setVisible(True)
            self._centre_placeholder()
            return
        self.placeholder.setVisible(False)
        first = self._shape != image.shape[:2]
        self._shape = image.shape[:2]
        show_image(self.image_item, image)
        if first or auto_range:
            self.fit()

    def fit(self) -> None:
        """Zoom to the whole image; deferred until the canvas is on screen (a hidden tab has
        no size, and a range fitted then is wrong once it is shown)."""
        if self._shape is None:
            return
        if not self.isVisible() or self.view.width() <= 1:
            self._needs_fit = True
            return
        self._needs_fit = False
        h, w = self._shape
        self.view.setRange(xRange=(0, w), yRange=(0, h), padding=0.02)

    def showEvent(self, event) -> None:  # Qt override
        super().showEvent(event)
        if self._needs_fit:
            from qtpy.QtCore import QTimer

            QTimer.singleShot(0, self.fit)

    def _centre_placeholder(self) -> None:
        """Put the view's centre on the hint text (it sits at the origin)."""
        self.view.setRange(xRange=(-1, 1), yRange=(-1, 1), padding=0)

    def set_overlay(self, bits: np.ndarray | None, block, shape: tuple[int, int], show: bool,
                    peak: float | None = None) -> None:
        """Block grid every ``block`` px (an int or ``(height, width)``) and a heat map of ``bits``
        ``(nby, nbx)`` (None hides) from 0 to ``peak`` (None: the largest of ``bits``). float32
        ``bits`` with their ``peak`` (prepared by a job) are drawn with no pass over them here."""
        if not show or bits is None:
            self.heat.setVisible(False)
            self.grid.setVisible(False)
            return
        bh, bw = (block, block) if np.isscalar(block) else block
        nby, nbx = bits.shape
        top = float(bits.max()) if peak is None else float(peak)
        self.heat.setImage(np.asarray(bits, np.float32), autoLevels=False, levels=(0.0, max(top, 1e-9)))
        self.heat.setRect(QRectF(0, 0, nbx * bw, nby * bh))
        self.heat.setVisible(True)
        h, w = shape
        self.heat_clip.setRect(QRectF(0, 0, w, h))
        xs = np.arange(0, w + 1, bw, dtype=float)
        ys = np.arange(0, h + 1, bh, dtype=float)
        if len(xs) + len(ys) <= 2000:
            # vertical segments (x, 0)-(x, h), then horizontal ones (0, y)-(w, y)
            px = np.concatenate([np.repeat(xs, 2), np.tile([0.0, w], len(ys))])
            py = np.concatenate([np.tile([0.0, h], len(xs)), np.repeat(ys, 2)])
            self.grid.setData(px, py, connect="pairs")
            self.grid.setVisible(True)
        else:
            self.grid.setVisible(False)

    def set_selection(self, rect: tuple[float, float, float, float] | None) -> None:
        """Outline ``(x, y, w, h)`` (None hides)."""
        if rect is None:
            self.selection.setVisible(False)
            return
        self.selection.setRect(QRectF(*rect))
        self.selection.setVisible(True)

    def _on_click(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton or self._shape is None:
            return
        pos = self.view.mapSceneToView(event.scenePos())
        if 0 <= pos.x() < self._shape[1] and 0 <= pos.y() < self._shape[0]:
            self.clicked.emit(pos.x(), pos.y())

    def _on_move(self, scene_pos) -> None:
        if self._shape is None:
            return
        pos = self.view.mapSceneToView(scene_pos)
        self.hovered.emit(pos.x(), pos.y())


class InfoText(QTextBrowser):
    """Read-only rich text that scrolls itself, hidden while empty; ``setText(html)`` / ``text()`` as
    a QLabel's. A document is laid out once per width here, where a word-wrapping QLabel in a scroll
    area lays it out again for every size its layout asks about: ~60-130 ms on the GUI thread for a
    JPEG's facts and tables each time they were set, ~18 ms here."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._html = ""
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setOpenLinks(False)
        self.setStyleSheet("QTextBrowser { background: transparent; }")
        self.setVisible(False)

    def setText(self, html: str) -> None:  # QLabel's name
        """Show ``html`` (empty: hide)."""
        if html != self._html:
            self._html = html
            self.setHtml(html)
        self.setVisible(bool(html))

    def text(self) -> str:
        """The HTML last set."""
        return self._html


class QuantEditor(QWidget):
    """8x8 quantization-matrix heat map with editable cells (the codec resizes it to N).

    ``matrix_edited(which, matrix)`` is emitted when the user edits a cell (which = 0 luma,
    1 chroma).
    """

    matrix_edited = Signal(int, object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        top = QHBoxLayout()
        self.which = QComboBox()
        self.which.addItems(["Luma (Y)", "Chroma (Cb, Cr)"])
        top.addWidget(QLabel("Table:"))
        top.addWidget(self.which)
        top.addWidget(QLabel("Preset:"))
        self.preset = QComboBox()
        self.preset.addItems(["jpeg", "flat", "custom"])
        top.addWidget(self.preset)
        top.addWidget(QLabel("Quality:"))
        self.quality = QSlider(Qt.Orientation.Horizontal)
        self.quality.setRange(1, 100)
        self.quality.setValue(75)
        self.quality.setMaximumWidth(200)
        top.addWidget(self.quality)
        self.quality_label = QLabel("75")
        self.quality.valueChanged.connect(lambda v: self.quality_label.setText(str(v)))
        top.addWidget(self.quality_label)
        top.addStretch(1)
        self.info = QLabel("")
        top.addWidget(self.info)
        layout.addLayout(top)
        self.table = QTableWidget(8, 8)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setHorizontalHeaderLabels([f"v{j}" for j in range(8)])
        self.table.setVerticalHeaderLabels([f"u{i}" for i in range(8)])
        layout.addWidget(self.table, 1)
        hint = QLabel(
            "Double-click a cell to edit a step (1–65535). Edits switch the preset to 'custom'; "
            "the 8×8 table is mapped to N×N by frequency. Quality and preset are the same controls as in the dock "
            "(IJG scaling of the Annex K tables; 'flat' = one step everywhere). Edit > Undo reverts an edit."
        )
        hint.setWordWrap(True)
        layout.addWidget(hint)
        self._matrices = [np.ones((8, 8), int), np.ones((8, 8), int)]
        self._updating = False
        self.lut = heat_lut("viridis")
        self.which.currentIndexChanged.connect(lambda _: self._fill())
        self.table.itemChanged.connect(self._on_item)

    def set_matrices(self, luma: np.ndarray, chroma: np.ndarray) -> None:
        """Show these 8x8 tables (ints)."""
        self._matrices = [np.asarray(luma, int).copy(), np.asarray(chroma, int).copy()]
        self._fill()

    def matrix(self, which: int) -> np.ndarray:
        return self._matrices[which].copy()

    def _fill(self) -> None:
        self._updating = True
        m = self._matrices[self.which.currentIndex()]
        lo, hi = float(m.min()), float(max(m.max(), m.min() + 1))
        for i in range(8):
            for j in range(8):
                item = self.table.item(i, j)
                if item is None:
                    item = QTableWidgetItem()
                    item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                    self.table.setItem(i, j, item)
                v = int(m[i, j])
                item.setText(str(v))
                r, g, b = self.lut[int(255 * (np.log(v) - np.log(lo)) / max(np.log(hi) - np.log(lo), 1e-9))]
                item.setBackground(QBrush(QColor(int(r), int(g), int(b))))
                item.setForeground(QBrush(QColor("black" if (0.3 * r + 0.6 * g + 0.1 * b) > 120 else "white")))
        self.info.setText(f"min {int(m.min())}, max {int(m.max())}, mean {m.mean():.1f}")
        self._updating = False

    def _on_item(self, item: QTableWidgetItem) -> None:
        if self._updating:
            return
        which = self.which.currentIndex()
        try:
            value = int(float(item.text()))
        except ValueError:
            value = -1
        if not (1 <= value <= 65535):
            self._fill()  # reject: restore the old value
            return
        m = self._matrices[which].copy()
        if m[item.row(), item.column()] == value:
            return
        m[item.row(), item.column()] = value
        self.matrix_edited.emit(which, m)


class CompareView(QWidget):
    """A/B comparison: split with a draggable divider, side by side (equal widths) with linked
    zoom/pan, the absolute or the signed difference image with a gain. A hover read-out shows
    both pixel values; zoomed in far enough, every pixel's values are drawn on it. Dropping one
    file emits ``files_dropped([path])`` (for B), two files ``[path A, path B]``.

    No per-pixel work on the GUI thread: the split view stacks B's image on A's, clipped to the
    right of the divider (dragging moves a clip rectangle), and a difference image is cached per
    (A, B, mode, gain) and computed by ``run_job(name, factory, on_result)`` (set by the panel:
    the studio's job queue) once the images are larger than :data:`PAIR_ON_GUI_MAX_PIXELS`."""

    MODES = ("Split", "Side by side", "Difference", "Signed difference")
    files_dropped = Signal(list)
    #: screen pixels per image pixel from which values are drawn on the pixels
    VALUE_ZOOM = 34.0

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        bar = QHBoxLayout()
        self.mode = QComboBox()
        self.mode.addItems(self.MODES)
        bar.addWidget(QLabel("View:"))
        bar.addWidget(self.mode)
        bar.addWidget(QLabel("Difference gain:"))
        self.gain = QSlider(Qt.Orientation.Horizontal)
        self.gain.setRange(1, 32)
        self.gain.setValue(4)
        self.gain.setMaximumWidth(160)
        bar.addWidget(self.gain)
        self.gain_label = QLabel("×4")
        bar.addWidget(self.gain_label)
        bar.addStretch(1)
        layout.addLayout(bar)
        self.canvas = pg.GraphicsLayoutWidget()
        self.canvas.setBackground("#202020")
        self.label_a = self.canvas.addLabel("A", row=0, col=0)
        self.label_b = self.canvas.addLabel("B", row=0, col=1)
        self.view_a, self.item_a = make_view(self.canvas.ci, row=1, col=0)
        self.view_b, self.item_b = make_view(self.canvas.ci, row=1, col=1)
        self._syncing = False
        #: the view whose centre and zoom the other follows: the one last panned or zoomed (A after a fit)
        self._leader = self.view_a
        self._synced_sizes: dict = {}  # view -> (width, height) when its range was last synced
        self.view_a.sigRangeChanged.connect(lambda *_: self._on_range(self.view_a))
        self.view_b.sigRangeChanged.connect(lambda *_: self._on_range(self.view_b))
        self.view_b.sigResized.connect(lambda *_: self._follow_leader())
        self.view_a.sigResized.connect(lambda *_: self._follow_leader())
        self.canvas.ci.layout.setColumnStretchFactor(0, 1)
        self.canvas.ci.layout.setColumnStretchFactor(1, 1)
        # split mode: B stacked on A, clipped to the part right of the divider
        self.split_clip = QGraphicsRectItem()
        self.split_clip.setPen(QPen(Qt.PenStyle.NoPen))
        self.split_clip.setFlag(QGraphicsItem.GraphicsItemFlag.ItemClipsChildrenToShape, True)
        self.split_clip.setZValue(1)
        self.split_clip.setVisible(False)
        self.view_a.addItem(self.split_clip)
        self.item_split_b = pg.ImageItem(axisOrder="row-major")
        self.item_split_b.setParentItem(self.split_clip)
        self.divider = pg.InfiniteLine(angle=90, movable=True, pen=pg.mkPen((255, 220, 0), width=2))
        self.divider.setZValue(10)
        self.view_a.addItem(self.divider)
        # while a difference job runs: the pair's A dimmed under this placeholder (never an old picture)
        self.computing = pg.TextItem(self.COMPUTING_TEXT, color=(255, 255, 255), anchor=(0.5, 0.5),
                                     fill=pg.mkBrush(0, 0, 0, 190))
        self.computing.setZValue(15)
        self.computing.setVisible(False)
        self.view_a.addItem(self.computing)
        layout.addWidget(self.canvas, 1)
        self.setAcceptDrops(True)
        self.canvas.setAcceptDrops(False)  # drops go to this widget, not to the graphics scene
        self._value_items: dict[int, list] = {0: [], 1: []}
        self.view_a.sigRangeChanged.connect(lambda *_: self._draw_values())
        self.view_b.sigRangeChanged.connect(lambda *_: self._draw_values())
        bottom = QHBoxLayout()
        self.zoom = pg.GraphicsLayoutWidget()
        self.zoom.setBackground("#202020")
        self.zoom.setFixedSize(264, 140)
        self.zoom.addLabel("zoom: A | B (16×16 px)", row=0, col=0)
        self.zoom_view, self.zoom_item = make_view(self.zoom.ci, row=1, col=0)
        bottom.addWidget(self.zoom)
        self.readout = QLabel("Hover over the image for pixel values of A and B.")
        self.readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.readout.setWordWrap(True)
        bottom.addWidget(self.readout, 1)
        layout.addLayout(bottom)
        self.stats = QLabel("")
        self.stats.setWordWrap(True)
        layout.addWidget(self.stats)
        self.a: np.ndarray | None = None
        self.b: np.ndarray | None = None
        self._needs_fit = False
        #: ``run_job(name, factory, on_result)`` runs a job off the GUI thread (None: compute here)
        self.run_job = None
        self._diff: tuple | None = None  # (a, b, mode, gain, image): the last difference image
        self._diff_pending: tuple | None = None  # (a, b, mode, gain, handle) of the running job
        self._diff_stopped: tuple | None = None  # (a, b, mode, gain, "was cancelled" | "failed"): no result
        self.mode.currentIndexChanged.connect(self._on_mode)
        self.gain.valueChanged.connect(self._on_gain)
        self.divider.sigPositionChanged.connect(self._on_divider)
        self._moves = PointerMoves(self.canvas, self._on_move)
        self.refresh()

    def _on_range(self, view: pg.ViewBox) -> None:
        """``view``'s range changed: a pan or zoom makes it the leader the other view follows; a change
        that came with a resize of ``view`` (its aspect lock) does not (the leader's zoom is kept: a view
        laid out after a fit used to hand its unfitted range to the other)."""
        if self._syncing:
            return
        size = (view.width(), view.height())
        resized = self._synced_sizes.get(view) != size
        self._synced_sizes[view] = size
        if not resized:
            self._leader = view
        self._follow_leader()

    def _follow_leader(self) -> None:
        """The other view takes the leader's centre and zoom."""
        other = self.view_b if self._leader is self.view_a else self.view_a
        self._sync(self._leader, other)

    def _sync(self, src: pg.ViewBox, dst: pg.ViewBox) -> None:
        """Linked zoom and pan: ``dst`` gets ``src``'s centre and zoom (screen pixels per image pixel)."""
        if self._syncing:
            return
        sw, sh, dw, dh = src.width(), src.height(), dst.width(), dst.height()
        self._synced_sizes[src], self._synced_sizes[dst] = (sw, sh), (dw, dh)
        if min(sw, sh, dw, dh) <= 1:
            return
        r = src.viewRect()
        ux, uy = r.width() / sw, r.height() / sh  # image units per screen pixel
        c = r.center()
        self._syncing = True
        try:
            dst.setRange(
                xRange=(c.x() - dw * ux / 2, c.x() + dw * ux / 2),
                yRange=(c.y() - dh * uy / 2, c.y() + dh * uy / 2),
                padding=0,
            )
        finally:
            self._syncing = False

    def set_pair(self, a: np.ndarray | None, b: np.ndarray | None, label_a: str = "A", label_b: str = "B") -> None:
        """Set the two images (same shape, uint8 RGB)."""
        first = self.a is None or a is None or self.a.shape != a.shape
        self.a, self.b = a, b
        if self._diff is not None and (self._diff[0] is not a or self._diff[1] is not b):
            self._diff = None  # a difference of the old pair: drop it (and its references)
        if self._diff_stopped is not None and (self._diff_stopped[0] is not a or self._diff_stopped[1] is not b):
            self._diff_stopped = None
        self._text_a = label_a
        self.label_a.setText(label_a)
        self.label_b.setText(label_b)
        if a is not None and first:
            self.divider.setValue(a.shape[1] / 2)
        self.refresh()
        if a is not None and first:
            self.fit()

    def fit(self) -> None:
        """Zoom to the whole image (now if the view is on screen, else when it is shown)."""
        if self.a is None:
            return
        if not self.isVisible() or self.view_a.width() <= 1:
            self._needs_fit = True
            return
        self._needs_fit = False
        h, w = self.a.shape[:2]
        self._leader = self.view_a
        self.view_a.setRange(xRange=(0, w), yRange=(0, h), padding=0.02)
        self._sync(self.view_a, self.view_b)

    def showEvent(self, event) -> None:  # Qt override
        super().showEvent(event)
        if self._needs_fit:
            from qtpy.QtCore import QTimer

            QTimer.singleShot(0, self.fit)  # after the layout has given the views their size

    def _on_mode(self, _index: int) -> None:
        self._diff_stopped = None  # the user asks again: a stopped difference job is tried again
        self.refresh()
        if self.a is not None:
            from qtpy.QtCore import QTimer

            QTimer.singleShot(0, self.fit)  # the column of B appears or goes: fit after re-layout

    def _on_gain(self, value: int) -> None:
        self.gain_label.setText(f"×{value}")
        self._diff_stopped = None
        if self.mode.currentIndex() >= 2:
            self.refresh()

    def dragEnterEvent(self, event) -> None:  # Qt override
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event) -> None:  # Qt override
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.files_dropped.emit(paths[:2])

    def resizeEvent(self, event) -> None:  # Qt override
        super().resizeEvent(event)
        self._equalize()

    def _equalize(self) -> None:
        """Side by side: both columns exactly half the canvas, whatever their labels say."""
        grid = self.canvas.ci.layout
        if self.mode.currentIndex() == 1:
            half = max((self.canvas.width() - 20) / 2.0, 10.0)
            for col in (0, 1):
                grid.setColumnFixedWidth(col, half)
        else:
            grid.setColumnMinimumWidth(0, 0)
            grid.setColumnMaximumWidth(0, 1e6)

    def signed_difference(self) -> np.ndarray | None:
        """``B − A`` as a signed ``(H, W, 3)`` array (int16 for uint8 images; None without both images)."""
        if self.a is None or self.b is None:
            return None
        return signed_difference(self.a, self.b)

    def _values_shown(self, view: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray | None:
        """The numbers behind what ``view`` (0 = left, 1 = right) shows in rows ``y0:y1``, columns
        ``x0:x1``: pixel values, or the (absolute / signed) difference ``B − A``."""
        a, b = self.a, self.b
        if a is None or (view == 1 and b is None):
            return None
        if view == 1:
            return b[y0:y1, x0:x1]
        mode = self.mode.currentIndex()
        crop_a = a[y0:y1, x0:x1]
        if b is None or mode == 1:
            return crop_a
        crop_b = b[y0:y1, x0:x1]
        if mode == 2:
            return np.abs(signed_difference(crop_a, crop_b))
        if mode == 3:
            return signed_difference(crop_a, crop_b)
        split = self._split_x() - x0  # columns from here on show B
        return np.concatenate([crop_a[:, : max(split, 0)], crop_b[:, max(split, 0) :]], axis=1)

    def _draw_values(self) -> None:
        """Zoomed in to at least :attr:`VALUE_ZOOM` screen px per pixel: draw each visible pixel's values."""
        for index, vb in enumerate((self.view_a, self.view_b)):
            pool = self._value_items[index]
            shown = 0
            r = vb.viewRect()
            zoomed = vb.isVisible() and vb.width() > 1 and r.width() > 0 and vb.width() / r.width() >= self.VALUE_ZOOM
            values = None
            if zoomed and self.a is not None:
                h, w = self.a.shape[:2]
                x0, x1 = max(int(np.floor(r.left())), 0), min(int(np.ceil(r.right())), w)
                y0, y1 = max(int(np.floor(r.top())), 0), min(int(np.ceil(r.bottom())), h)
                values = self._values_shown(index, y0, y1, x0, x1) if x1 > x0 and y1 > y0 else None
            if values is not None:
                for y in range(y0, y1):
                    for x in range(x0, x1):
                        if shown >= 600:
                            break
                        if shown == len(pool):
                            item = pg.TextItem(anchor=(0.5, 0.5))
                            item.setZValue(20)
                            vb.addItem(item)
                            pool.append(item)
                        item = pool[shown]
                        v = values[y - y0, x - x0]
                        bright = float(np.mean(v)) > 127 if values.dtype == np.uint8 else False
                        item.setColor((0, 0, 0) if bright else (255, 255, 255))
                        item.setText("\n".join(str(int(c)) for c in np.atleast_1d(v)))
                        item.setPos(x + 0.5, y + 0.5)
                        item.setVisible(True)
                        shown += 1
            for item in pool[shown:]:
                item.setVisible(False)

    def _split_x(self) -> int:
        """The first image column right of the divider (split mode shows B from there on)."""
        return int(np.clip(round(self.divider.value()), 0, self.a.shape[1])) if self.a is not None else 0

    def composite(self) -> np.ndarray | None:
        """What the left view shows now (split composite, A, or the difference image), as one array.
        The view itself never builds the split composite; this is for tests and exports."""
        a, b = self.a, self.b
        if a is None:
            return None
        if b is None:
            return a
        mode = self.mode.currentIndex()
        if mode == 0:
            x = self._split_x()
            out = a.copy()
            out[:, x:] = b[:, x:]
            return out
        if mode in (2, 3):  # mode 3: mid grey = equal, brighter = B larger
            cached = self._cached_difference()
            if cached is None:
                cached = self._store_difference(difference_image(a, b, mode == 3, self.gain.value()))
            return cached
        return a

    def _diff_key(self) -> tuple:
        return self.a, self.b, self.mode.currentIndex(), int(self.gain.value())

    @staticmethod
    def _same_key(k1: tuple, k2: tuple) -> bool:
        return k1[0] is k2[0] and k1[1] is k2[1] and k1[2:4] == k2[2:4]

    def _cached_difference(self) -> np.ndarray | None:
        """The difference image for the current (A, B, mode, gain) if it was computed already."""
        if self._diff is not None and self._same_key(self._diff, self._diff_key()):
            return self._diff[4]
        return None

    def _store_difference(self, image: np.ndarray) -> np.ndarray:
        self._diff = (*self._diff_key(), image)
        return image

    def _difference_for_display(self) -> np.ndarray | None:
        """The difference image to show now: cached, computed here when small, else None while a job
        (started here unless one runs for the same key) computes it and refreshes the view when done."""
        cached = self._cached_difference()
        if cached is not None:
            return cached
        a, b = self.a, self.b
        key = self._diff_key()
        if self.run_job is None or pair_fits_gui_thread(a):
            return self._store_difference(difference_image(a, b, key[2] == 3, key[3]))
        pending = self._diff_pending
        if pending is not None and self._same_key(pending, key) and getattr(pending[4], "state", "") in _JOB_LIVE:
            return None
        if self._diff_stopped is not None and self._same_key(self._diff_stopped, key):
            return None  # its job was cancelled or failed: not again until the user changes mode or gain
        signed, gain = key[2] == 3, key[3]

        def done(image, _key=key) -> None:
            if self._diff_pending is not None and self._same_key(self._diff_pending, _key):
                self._diff_pending = None
            if _key[0] is not self.a or _key[1] is not self.b:
                return  # other images by now: keep no reference to the old pair
            self._diff = (*_key, image)
            if self._same_key(_key, self._diff_key()):
                self.refresh()

        name = "compare: signed difference image" if signed else "compare: difference image"
        handle = self.run_job(name, lambda: difference_job(a, b, signed, gain), done)
        self._diff_pending = (*key, handle)
        return None

    def difference_job_ended(self) -> None:
        """Called when a difference job has ended, however (the panel passes it to its job queue): if the
        job of the pair shown was cancelled or failed, the view says so instead of "computing…"."""
        pending = self._diff_pending
        state = getattr(pending[4], "state", "") if pending is not None else ""
        if pending is None or state in _JOB_LIVE or state == "done":
            return  # no job, a newer job runs, or the result has arrived
        self._diff_pending = None
        if pending[0] is self.a and pending[1] is self.b:
            self._diff_stopped = (*pending[:4], "was cancelled" if state == "cancelled" else "failed")
            if self._same_key(pending, self._diff_key()):
                self.refresh()

    def _show(self, item: pg.ImageItem, image: np.ndarray) -> None:
        """:func:`show_image` unless ``item`` shows this very array already (a refresh that changes
        nothing does no work)."""
        if getattr(item, "_shown_source", None) is not image or item.image is None:
            show_image(item, image)
            item._shown_source = image

    def _clear(self, *items: pg.ImageItem) -> None:
        for item in items:
            item.clear()
            item._shown_source = None

    def _on_divider(self, _line=None) -> None:
        """The divider moved: only the clip rectangle of B follows it (no pixel work)."""
        if self.mode.currentIndex() != 0 or self.a is None:
            return
        x = self._split_x()
        if self.divider.value() != x:  # the line sits on the pixel boundary where B starts
            self.divider.setValue(x)  # (emits again: placed then)
            return
        self._place_split_clip()
        self._draw_values()

    def _place_split_clip(self) -> None:
        h, w = self.a.shape[:2]
        x = self._split_x()
        self.split_clip.setRect(QRectF(x, 0, w - x, h))

    def refresh(self) -> None:
        """Show the current images in the current mode."""
        mode = self.mode.currentIndex()
        side = mode == 1
        self.view_b.setVisible(side)
        self.label_b.setVisible(side)
        grid = self.canvas.ci.layout
        grid.setColumnStretchFactor(1, 1 if side else 0)
        grid.setColumnMaximumWidth(1, 1e6 if side else 0)
        if not side:
            grid.setColumnMinimumWidth(1, 0)
        self._equalize()
        for item in (self.view_b, self.label_b):  # a long B label must not keep its column open
            item.setMaximumWidth(1e6 if side else 0)
            item.setMinimumWidth(0)
        a, b = self.a, self.b
        split = mode == 0 and b is not None
        self.divider.setVisible(split)
        self.split_clip.setVisible(split)
        if a is None:
            self._clear(self.item_a, self.item_b, self.item_split_b)
            self._show_computing(False)
            self.label_a.setText("No image yet: load one (Image tab or dock), then press 'Encode B', or drop two files here")
            self._draw_values()
            return
        wants_diff = mode in (2, 3) and b is not None
        diff = self._difference_for_display() if wants_diff else None
        pending = ""
        if wants_diff and diff is None:
            stopped = self._diff_stopped
            if stopped is not None and self._same_key(stopped, self._diff_key()):
                pending = f"  (not computed: the job {stopped[4]})"
                self.computing.setText(f"difference not computed: the job {stopped[4]}\n"
                                       "change the gain or the view to try again  (A is shown dimmed)")
            else:
                pending = "  (computing…)"  # the job refreshes the view when it is done
                self.computing.setText(self.COMPUTING_TEXT)
        self._show(self.item_a, a if diff is None else diff)
        self._show_computing(bool(pending))
        if split:
            self._show(self.item_split_b, b)
            self._place_split_clip()
        else:
            self._clear(self.item_split_b)  # no reference to an old B kept alive
        if side and b is not None:
            self._show(self.item_b, b)
        if mode == 0:
            self.label_a.setText("Split: A | B (drag the divider)" if b is not None else getattr(self, "_text_a", "A"))
        elif mode == 1:
            self.label_a.setText(getattr(self, "_text_a", "A"))
        elif mode == 2:
            self.label_a.setText(f"|A − B| × {self.gain.value()}{pending}")
        elif mode == 3:
            self.label_a.setText(f"128 + (B − A) × {self.gain.value()}  (grey = equal, bright = B larger){pending}")
        self._draw_values()

    #: opacity of A under the "computing difference…" placeholder
    COMPUTING_OPACITY = 0.3
    COMPUTING_TEXT = "computing difference…  (A shown dimmed)"

    def _show_computing(self, on: bool) -> None:
        """No difference to show (``on``: its job runs or has stopped): A of this pair dimmed under the
        placeholder, so the left view never shows an older pair's picture as the difference; off: full
        opacity, no placeholder."""
        self.item_a.setOpacity(self.COMPUTING_OPACITY if on else 1.0)
        self.computing.setVisible(on)
        if on:
            h, w = self.a.shape[:2]
            self.computing.setPos(w / 2, h / 2)

    def _on_move(self, scene_pos) -> None:
        if self.a is None:
            return
        for vb in (self.view_a, self.view_b):
            if vb.isVisible() and vb.sceneBoundingRect().contains(scene_pos):
                p = vb.mapSceneToView(scene_pos)  # pixel (x, y) covers [x, x + 1) × [y, y + 1)
                self.show_pixel(math.floor(p.x()), math.floor(p.y()))
                return

    def show_pixel(self, x: int, y: int) -> str:
        """Update the read-out for pixel (x, y); returns the text."""
        a, b = self.a, self.b
        if a is None or not (0 <= x < a.shape[1] and 0 <= y < a.shape[0]):
            return self.readout.text()
        self._update_zoom(x, y)
        va = tuple(int(v) for v in a[y, x])
        text = f"x {x}, y {y}   A = {va}"
        if b is not None:
            vb = tuple(int(v) for v in b[y, x])
            text += f"   B = {vb}   B − A = {tuple(int(v) for v in signed_difference(a[y, x], b[y, x]))}"
        self.readout.setText(text)
        return text

    def _update_zoom(self, x: int, y: int, half: int = 8) -> None:
        a, b = self.a, self.b
        h, w = a.shape[:2]
        y0, x0 = int(np.clip(y - half, 0, max(h - 2 * half, 0))), int(np.clip(x - half, 0, max(w - 2 * half, 0)))
        crop_a = a[y0 : y0 + 2 * half, x0 : x0 + 2 * half]
        crop_b = b[y0 : y0 + 2 * half, x0 : x0 + 2 * half] if b is not None else np.zeros_like(crop_a)
        sep = np.full((crop_a.shape[0], 1, 3), 255, np.uint8)
        show_image(self.zoom_item, np.concatenate([crop_a, sep, crop_b], axis=1))
        self.zoom_view.autoRange(padding=0)
