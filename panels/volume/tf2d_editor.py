"""2-D transfer-function editor: joint histogram of (value, |∇v|) with box and Gaussian widgets
(pyqtgraph ROIs: drag to move, handles to resize)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from qtpy.QtCore import Signal
from qtpy.QtGui import QColor
from qtpy.QtWidgets import (
    QCheckBox,
    QColorDialog,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from engines.volume.tf2d import TransferFunction2D, Widget2D


class TF2DEditor(QWidget):
    """Edits a :class:`TransferFunction2D`; ``changed(tf2d)`` fires when a widget is released,
    added, removed or recoloured. ``enabled_changed(bool)`` when "Use 2D TF" toggles."""

    changed = Signal(object)
    enabled_changed = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tf2d = TransferFunction2D()
        self._rois: list = []
        self._selected = -1
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.plot = pg.PlotWidget()
        self.plot.setBackground("#1e1e1e")
        self.plot.setMenuEnabled(False)
        self.plot.setLabel("bottom", "value")
        self.plot.setLabel("left", "gradient magnitude")
        self.hist = pg.ImageItem(axisOrder="row-major")
        self.hist.setLookupTable(pg.colormap.get("inferno").getLookupTable(nPts=256))
        self.plot.addItem(self.hist)
        layout.addWidget(self.plot)
        row = QHBoxLayout()
        self.use_check = QCheckBox("Use 2D TF")
        self.use_check.toggled.connect(self.enabled_changed)
        add_box = QPushButton("Add box")
        add_box.clicked.connect(lambda: self.add_widget("rect"))
        add_gauss = QPushButton("Add Gaussian")
        add_gauss.clicked.connect(lambda: self.add_widget("gauss"))
        remove = QPushButton("Remove")
        remove.clicked.connect(self.remove_selected)
        colour = QPushButton("Colour…")
        colour.clicked.connect(self._pick_color)
        self.opacity_spin = QDoubleSpinBox()
        self.opacity_spin.setRange(0.0, 1.0)
        self.opacity_spin.setSingleStep(0.05)
        self.opacity_spin.setValue(0.5)
        self.opacity_spin.valueChanged.connect(self._on_opacity)
        for w in (self.use_check, add_box, add_gauss, remove, colour, QLabel("opacity"), self.opacity_spin):
            row.addWidget(w)
        row.addStretch(1)
        layout.addLayout(row)
        self._vrange = (0.0, 1.0)
        self._grange = (0.0, 1.0)

    def set_histogram(self, log_counts: np.ndarray, v_edges: np.ndarray, g_edges: np.ndarray) -> None:
        """Show a (bins_v, bins_g) log histogram with its bin edges."""
        img = log_counts.T  # rows = gradient, cols = value
        self.hist.setImage(img, autoLevels=True)
        self._vrange = (float(v_edges[0]), float(v_edges[-1]))
        self._grange = (float(g_edges[0]), float(g_edges[-1]))
        self.hist.setRect(pg.QtCore.QRectF(self._vrange[0], self._grange[0], self._vrange[1] - self._vrange[0],
                                           self._grange[1] - self._grange[0]))
        self.plot.autoRange(padding=0.02)

    def set_tf2d(self, tf2d: TransferFunction2D) -> None:
        """Replace the widgets (no signal)."""
        for roi in self._rois:
            self.plot.removeItem(roi)
        self._rois = []
        self.tf2d = TransferFunction2D(list(tf2d.widgets), tf2d.reference_step, tf2d.name)
        for widget in self.tf2d.widgets:
            self._add_roi(widget)

    def add_widget(self, kind: str, center=None, size=None, color=(1.0, 0.8, 0.3), opacity: float | None = None) -> None:
        """Add a box (``rect``) or Gaussian widget (default: centred in the histogram)."""
        v0, v1 = self._vrange
        g0, g1 = self._grange
        center = center or ((v0 + v1) / 2, (g0 + g1) / 4)
        size = size or ((v1 - v0) / 10, (g1 - g0) / 8)
        widget = Widget2D(kind, center, size, color, self.opacity_spin.value() if opacity is None else opacity)
        self.tf2d.widgets.append(widget)
        self._add_roi(widget)
        self._selected = len(self.tf2d.widgets) - 1
        self.changed.emit(self.tf2d)

    def remove_selected(self) -> None:
        """Remove the selected (last added / last touched) widget."""
        if not (0 <= self._selected < len(self.tf2d.widgets)):
            return
        self.plot.removeItem(self._rois.pop(self._selected))
        del self.tf2d.widgets[self._selected]
        self._selected = len(self.tf2d.widgets) - 1
        self.changed.emit(self.tf2d)

    # -- internals --------------------------------------------------------------------
    def _extent(self, widget: Widget2D) -> tuple:
        k = 1.0 if widget.kind == "rect" else 2.0  # Gaussians drawn at ±2σ
        (v, g), (sv, sg) = widget.center, widget.size
        return (v - k * sv, g - k * sg), (2 * k * sv, 2 * k * sg)

    def _add_roi(self, widget: Widget2D) -> None:
        pos, size = self._extent(widget)
        pen = pg.mkPen(QColor.fromRgbF(*widget.color), width=2)
        cls = pg.RectROI if widget.kind == "rect" else pg.EllipseROI
        roi = cls(pos, size, pen=pen)
        roi.sigRegionChangeFinished.connect(lambda r=roi: self._roi_moved(r))
        roi.sigClicked.connect(lambda r=roi: self._select(r))
        roi.setAcceptedMouseButtons(pg.QtCore.Qt.MouseButton.LeftButton)
        self.plot.addItem(roi)
        self._rois.append(roi)

    def _select(self, roi) -> None:
        if roi in self._rois:
            self._selected = self._rois.index(roi)
            self.opacity_spin.blockSignals(True)
            self.opacity_spin.setValue(self.tf2d.widgets[self._selected].opacity)
            self.opacity_spin.blockSignals(False)

    def _roi_moved(self, roi) -> None:
        if roi not in self._rois:
            return
        i = self._rois.index(roi)
        old = self.tf2d.widgets[i]
        k = 1.0 if old.kind == "rect" else 2.0
        pos, size = roi.pos(), roi.size()
        sv, sg = max(abs(size.x()) / (2 * k), 1e-6), max(abs(size.y()) / (2 * k), 1e-6)
        self.tf2d.widgets[i] = Widget2D(old.kind, (pos.x() + size.x() / 2, pos.y() + size.y() / 2), (sv, sg), old.color, old.opacity)
        self._selected = i
        self.changed.emit(self.tf2d)

    def _on_opacity(self, value: float) -> None:
        if 0 <= self._selected < len(self.tf2d.widgets):
            w = self.tf2d.widgets[self._selected]
            self.tf2d.widgets[self._selected] = Widget2D(w.kind, w.center, w.size, w.color, float(value))
            self.changed.emit(self.tf2d)

    def _pick_color(self) -> None:
        if not (0 <= self._selected < len(self.tf2d.widgets)):
            return
        w = self.tf2d.widgets[self._selected]
        color = QColorDialog.getColor(QColor.fromRgbF(*w.color), self, "Widget colour")
        if color.isValid():
            self.tf2d.widgets[self._selected] = Widget2D(w.kind, w.center, w.size, (color.redF(), color.greenF(), color.blueF()), w.opacity)
            self._rois[self._selected].setPen(pg.mkPen(color, width=2))
            self.changed.emit(self.tf2d)
