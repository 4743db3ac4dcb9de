"""1-D transfer-function editor (pyqtgraph): log-histogram backdrop, opacity curve with
draggable points, colour points on a strip below, right-click deletes, double-click a colour
point to pick its colour, double-click empty space to add a point."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from qtpy.QtCore import Qt, Signal
from qtpy.QtGui import QColor
from qtpy.QtWidgets import QColorDialog, QVBoxLayout, QWidget

from engines.volume.tf import TransferFunction1D

COLOR_STRIP_Y = -0.08  # y position of the colour points (below the opacity range 0…1)


class _Nodes(pg.GraphItem):
    """Draggable nodes; calls ``owner`` back with (kind, index, x, y) on drag / click."""

    def __init__(self, owner: TFEditor, kind: str) -> None:
        super().__init__()
        self.owner = owner
        self.kind = kind
        self._drag_index: int | None = None
        self._drag_offset = None

    def _index_at(self, pos) -> int | None:
        points = self.scatter.pointsAt(pos)
        if len(points) == 0:
            return None
        return int(points[0].index())

    def mouseDragEvent(self, ev):
        if ev.button() != Qt.MouseButton.LeftButton:
            ev.ignore()
            return
        if ev.isStart():
            index = self._index_at(ev.buttonDownPos())
            if index is None:
                ev.ignore()
                return
            self._drag_index = index
        elif self._drag_index is None:
            ev.ignore()
            return
        ev.accept()
        pos = ev.pos()
        self.owner._drag(self.kind, self._drag_index, pos.x(), pos.y(), final=ev.isFinish())
        if ev.isFinish():
            self._drag_index = None

    def mouseClickEvent(self, ev):
        index = self._index_at(ev.pos())
        if index is None:
            ev.ignore()
            return
        ev.accept()
        if ev.button() == Qt.MouseButton.RightButton:
            self.owner.delete_point(self.kind, index)
        elif ev.double():
            self.owner._pick_color(self.kind, index)


def histogram_counts(values: np.ndarray, value_range: tuple[float, float], bins: int = 256):
    """``(counts, edges)`` of every 7th value over ``value_range`` (numpy only: fine on a worker)."""
    lo, hi = float(value_range[0]), float(value_range[1])
    if hi <= lo:
        hi = lo + 1.0
    return np.histogram(np.asarray(values).ravel()[::7], bins=bins, range=(lo, hi))


class TFEditor(QWidget):
    """Edits a :class:`TransferFunction1D`. ``tf_changed(tf, final)`` fires on every edit
    (``final`` False while dragging, True on release / discrete edits)."""

    tf_changed = Signal(object, bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._tf = TransferFunction1D()
        self._range = (0.0, 1.0)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.plot = pg.PlotWidget()
        self.plot.setBackground("#1e1e1e")
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(x=True, y=False)
        self.plot.setLabel("bottom", "value")
        self.plot.setLabel("left", "opacity")
        self.plot.getAxis("left").enableAutoSIPrefix(False)  # opacity 0..0.8 read "0..800 (x0.001)" with it
        self.plot.showGrid(x=True, y=True, alpha=0.15)
        self.plot.setMinimumHeight(150)
        layout.addWidget(self.plot)
        self.hist = pg.PlotDataItem(fillLevel=0, brush=(90, 90, 110, 140), pen=None, stepMode="center")
        self.plot.addItem(self.hist)
        self.curve = pg.PlotDataItem(pen=pg.mkPen("#f0f0f0", width=2))
        self.plot.addItem(self.curve)
        self.color_bar = pg.ImageItem()
        self.plot.addItem(self.color_bar)
        self.opacity_nodes = _Nodes(self, "opacity")
        self.color_nodes = _Nodes(self, "color")
        self.plot.addItem(self.opacity_nodes)
        self.plot.addItem(self.color_nodes)
        self.plot.scene().sigMouseClicked.connect(self._scene_clicked)
        self.plot.setToolTip("Drag points to edit · double-click empty space to add · right-click a point to delete · "
                             "double-click a colour point (bottom strip) to pick its colour")
        self._redraw()

    # -- public API -----------------------------------------------------------------
    def tf(self) -> TransferFunction1D:
        """The current transfer function."""
        return self._tf

    def set_tf(self, tf: TransferFunction1D, emit: bool = False) -> None:
        """Show ``tf`` (and emit ``tf_changed`` if ``emit``)."""
        self._tf = tf
        self._redraw()
        if emit:
            self.tf_changed.emit(self._tf, True)

    def set_histogram(self, values: np.ndarray, value_range: tuple[float, float], bins: int = 256) -> None:
        """Show a log-scaled histogram of ``values`` over ``value_range`` (also sets the x range)."""
        self.set_histogram_counts(*histogram_counts(values, value_range, bins))

    def set_histogram_counts(self, counts: np.ndarray, edges: np.ndarray) -> None:
        """Show precomputed :func:`histogram_counts` (log-scaled; the x range is the edges' span)."""
        lo, hi = float(edges[0]), float(edges[-1])
        logc = np.log1p(counts)
        logc = logc / logc.max() if logc.max() > 0 else logc
        self.hist.setData(edges, logc)
        self._range = (lo, hi)
        self.plot.setXRange(lo, hi, padding=0.02)
        self.plot.setYRange(COLOR_STRIP_Y - 0.06, 1.05, padding=0)
        self._redraw()

    def add_point(self, x: float, alpha: float) -> None:
        """Add an opacity point (colour points are added where the colour strip is clicked)."""
        alpha = float(np.clip(alpha, 0.0, 1.0))
        self._set(self._tf.copy(opacity=self._tf.opacity + [(float(x), alpha)]), True)

    def add_color_point(self, x: float, rgb: tuple) -> None:
        """Add a colour point at ``x``."""
        self._set(self._tf.copy(color=self._tf.color + [(float(x), *[float(c) for c in rgb])]), True)

    def move_point(self, kind: str, index: int, x: float, alpha: float | None = None, final: bool = True) -> None:
        """Move point ``index`` of ``kind`` (``"opacity"`` or ``"color"``)."""
        if kind == "opacity":
            pts = list(self._tf.opacity)
            old = pts[index]
            pts[index] = (float(x), float(np.clip(old[1] if alpha is None else alpha, 0.0, 1.0)))
            self._set(self._tf.copy(opacity=pts), final)
        else:
            pts = list(self._tf.color)
            pts[index] = (float(x), *pts[index][1:])
            self._set(self._tf.copy(color=pts), final)

    def delete_point(self, kind: str, index: int) -> None:
        """Delete a point (the last point of a kind cannot be deleted)."""
        pts = list(self._tf.opacity if kind == "opacity" else self._tf.color)
        if len(pts) <= 1:
            return
        del pts[index]
        self._set(self._tf.copy(**{kind: pts}), True)

    def set_point_color(self, index: int, rgb: tuple) -> None:
        """Set the colour of colour point ``index``."""
        pts = list(self._tf.color)
        pts[index] = (pts[index][0], *[float(np.clip(c, 0, 1)) for c in rgb])
        self._set(self._tf.copy(color=pts), True)

    # -- internals --------------------------------------------------------------------
    def _set(self, tf: TransferFunction1D, final: bool) -> None:
        self._tf = tf
        self._redraw()
        self.tf_changed.emit(tf, final)

    def _drag(self, kind: str, index: int, x: float, y: float, final: bool) -> None:
        lo, hi = self._range
        span = hi - lo
        x = float(np.clip(x, lo - span, hi + span))
        if kind == "opacity":
            self.move_point(kind, index, x, float(np.clip(y, 0.0, 1.0)), final=final)
        else:
            self.move_point(kind, index, x, final=final)
        # keep dragging the same point even if sorting changed its index
        items = self._tf.opacity if kind == "opacity" else self._tf.color
        nodes = self.opacity_nodes if kind == "opacity" else self.color_nodes
        nodes._drag_index = int(np.argmin([abs(p[0] - x) for p in items]))

    def _pick_color(self, kind: str, index: int) -> None:
        if kind != "color":
            return
        _, r, g, b = self._tf.color[index]
        color = QColorDialog.getColor(QColor.fromRgbF(r, g, b), self, "Point colour")
        if color.isValid():
            self.set_point_color(index, (color.redF(), color.greenF(), color.blueF()))

    def _scene_clicked(self, ev) -> None:
        if not ev.double() or ev.button() != Qt.MouseButton.LeftButton or ev.isAccepted():
            return
        pos = self.plot.getPlotItem().vb.mapSceneToView(ev.scenePos())
        if pos.y() < 0:
            rgba = self._tf.evaluate([pos.x()])[0]
            self.add_color_point(pos.x(), tuple(rgba[:3]))
        else:
            self.add_point(pos.x(), pos.y())

    def _redraw(self) -> None:
        lo, hi = self._range
        tf = self._tf
        xs = np.array([p[0] for p in tf.opacity])
        ys = np.array([p[1] for p in tf.opacity])
        # curve over the visible range, including end values held outside the points
        cx = np.concatenate([[min(lo, xs.min())], xs, [max(hi, xs.max())]])
        cy = np.concatenate([[ys[0]], ys, [ys[-1]]])
        self.curve.setData(cx, cy)
        colors = tf.evaluate(xs)
        brushes = [pg.mkBrush(*(np.clip(c[:3], 0, 1) * 255).astype(int), 255) for c in colors]
        self.opacity_nodes.setData(pos=np.c_[xs, ys], size=11, symbol="o", brush=brushes,
                                   pen=pg.mkPen("w"), adj=None)
        cxs = np.array([p[0] for p in tf.color])
        cbr = [pg.mkBrush(int(r * 255), int(g * 255), int(b * 255), 255) for _, r, g, b in tf.color]
        self.color_nodes.setData(pos=np.c_[cxs, np.full(len(cxs), COLOR_STRIP_Y)], size=12, symbol="s",
                                 brush=cbr, pen=pg.mkPen("#cccccc"), adj=None)
        strip = tf.lut(lo, hi, 256)[:, :3]
        self.color_bar.setImage((strip[:, None, :] * 255).astype(np.uint8), levels=(0, 255))
        self.color_bar.setRect(pg.QtCore.QRectF(lo, COLOR_STRIP_Y - 0.035, hi - lo, 0.07))
