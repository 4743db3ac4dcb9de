"""Three orthogonal slice views (axial, coronal, sagittal) with a linked crosshair and a brush."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pyqtgraph as pg
from qtpy.QtCore import Qt

AXIS_NAMES = {0: "Axial (z)", 1: "Coronal (y)", 2: "Sagittal (x)"}


def slice_coords(axis: int, cursor) -> tuple:
    """Index tuple selecting the slice of ``axis`` through ``cursor`` (z, y, x)."""
    index = [slice(None)] * 3
    index[axis] = int(cursor[axis])
    return tuple(index)


def view_to_voxel(axis: int, cursor, row: float, col: float) -> tuple[int, int, int]:
    """Voxel (z, y, x) under image position (row, col) of the slice view ``axis``: the image item's
    coordinates, where pixel ``j`` covers ``[j, j + 1)`` (rounding picked the next voxel on the lower
    or right half of a voxel)."""
    voxel = [int(c) for c in cursor]
    free = [a for a in range(3) if a != axis]  # (row axis, col axis)
    voxel[free[0]] = math.floor(row)
    voxel[free[1]] = math.floor(col)
    return tuple(voxel)


def segment_points(r0: float, c0: float, r1: float, c1: float, first: bool) -> tuple[np.ndarray, np.ndarray]:
    """Points (rows, cols) along the segment from (r0, c0) to (r1, c1) in image coordinates, at most
    half a voxel apart, so the voxels under them are every voxel the segment crosses; ``first``: with
    the start point (else it belongs to the previous segment)."""
    n = max(1, int(np.ceil(2.0 * max(abs(r1 - r0), abs(c1 - c0)))))
    t = np.linspace(0.0, 1.0, n + 1)[0 if first else 1:]
    return r0 + (r1 - r0) * t, c0 + (c1 - c0) * t


class _SliceImage(pg.ImageItem):
    """An ImageItem that reports clicks and drags (in image coordinates) to its view."""

    def __init__(self, owner: SliceView) -> None:
        super().__init__(axisOrder="row-major")
        self.owner = owner
        self._last = None  # the drag's previous position

    def mouseClickEvent(self, ev):
        if ev.button() != Qt.MouseButton.LeftButton:
            ev.ignore()
            return
        ev.accept()
        pos = ev.pos()
        self.owner.pointer(pos.y(), pos.x(), drag=False, finish=True)

    def mouseDragEvent(self, ev):
        if ev.button() != Qt.MouseButton.LeftButton or not self.owner.painting():
            ev.ignore()
            return
        ev.accept()
        pos = ev.pos()
        if ev.isStart():  # the stroke starts where the button went down, not where the drag was noticed
            self._last = ev.buttonDownPos()
            rows, cols = segment_points(self._last.y(), self._last.x(), pos.y(), pos.x(), first=True)
        else:  # every voxel the pointer crossed since the last event, however fast it moved
            rows, cols = segment_points(self._last.y(), self._last.x(), pos.y(), pos.x(), first=False)
        self._last = pos
        self.owner.pointer(rows, cols, drag=True, finish=ev.isFinish())


class SliceView(pg.GraphicsLayoutWidget):
    """One slice view. ``on_pointer(axis, row, col, drag, finish)`` receives mouse input."""

    def __init__(self, axis: int, on_pointer: Callable, painting: Callable[[], bool]) -> None:
        super().__init__()
        self.axis = axis
        self._on_pointer = on_pointer
        self.painting = painting
        self.setBackground("#111111")
        self.vb = self.addViewBox(lockAspect=True, enableMenu=False)
        self.vb.invertY(axis == 0)  # axial: y down like radiology viewers; others: z up
        self.image = _SliceImage(self)
        self.overlay = pg.ImageItem(axisOrder="row-major")
        self.vb.addItem(self.image)
        self.vb.addItem(self.overlay)
        pen = pg.mkPen((255, 200, 0, 160), width=1)
        self.vline = pg.InfiniteLine(angle=90, pen=pen, movable=False)
        self.hline = pg.InfiniteLine(angle=0, pen=pen, movable=False)
        self.vb.addItem(self.vline)
        self.vb.addItem(self.hline)
        self.title = pg.TextItem(AXIS_NAMES[axis], color=(200, 200, 200), anchor=(0, 0))
        self.title.setParentItem(self.vb)
        self.hint = pg.TextItem("", color=(255, 200, 0), anchor=(1, 0))
        self.hint.setParentItem(self.vb)
        self.letters = {side: pg.TextItem("", color=(120, 200, 255), anchor=anchor)
                        for side, anchor in (("left", (0, 0.5)), ("right", (1, 0.5)),
                                             ("top", (0.5, 0)), ("bottom", (0.5, 1)))}
        for item in self.letters.values():
            item.setParentItem(self.vb)
        self.vb.sigResized.connect(self._place_hint)
        self.setMinimumSize(160, 160)
        self._spacing = (1.0, 1.0)
        self._shape = None

    def _place_hint(self, *_args) -> None:
        width, height = self.vb.width(), self.vb.height()
        self.hint.setPos(width, 0)
        self.letters["left"].setPos(2, height / 2)
        self.letters["right"].setPos(width - 2, height / 2)
        self.letters["top"].setPos(width / 2, 20)  # below the title / hint row
        self.letters["bottom"].setPos(width / 2, height - 2)

    def set_orientation(self, row_letters: tuple[str, str], col_letters: tuple[str, str]) -> None:
        """Anatomical letters at the view's edges: ``row_letters`` / ``col_letters`` are the
        (low index, high index) ends of the image's row and column axes, e.g. ('P', 'A')."""
        low_row, high_row = row_letters
        top, bottom = (low_row, high_row) if self.vb.yInverted() else (high_row, low_row)
        texts = {"left": col_letters[0], "right": col_letters[1], "top": top, "bottom": bottom}
        for side, text in texts.items():
            self.letters[side].setText(text)
        self._place_hint()

    def orientation(self) -> dict[str, str]:
        """The letters shown at the left, right, top and bottom edges."""
        return {side: item.toPlainText() for side, item in self.letters.items()}

    def set_hint(self, text: str) -> None:
        """A short right-aligned note in the top corner (e.g. the paint mode), or none."""
        self.hint.setText(text)
        self._place_hint()

    def pointer(self, row, col, drag: bool, finish: bool) -> None:
        """Forward an image-coordinate event to the panel (``row``, ``col``: a point, or arrays of the
        points a drag step crossed)."""
        self._on_pointer(self.axis, row, col, drag, finish)

    def set_image(self, rgb: np.ndarray, spacing_rc: tuple, fit: bool = False) -> None:
        """Show an (rows, cols, 3) uint8 image; the view is in mm using (row, col) spacing."""
        self.image.setImage(rgb, levels=None, autoLevels=False)  # uint8 as it is (levels rescale every pixel)
        rows, cols = rgb.shape[:2]
        sr, sc = (float(v) for v in spacing_rc)
        rect = pg.QtCore.QRectF(-0.5 * sc, -0.5 * sr, cols * sc, rows * sr)
        self.image.setRect(rect)
        self.overlay.setRect(rect)
        if fit or self._shape != (rows, cols) or self._spacing != (sr, sc):
            self._shape, self._spacing = (rows, cols), (sr, sc)
            self.vb.autoRange(padding=0.02)
            # apply the new range now: left to the next paint, it changes the scene during that paint
            # and asks for one more repaint of the window per view
            self.vb.prepareForPaint()

    def set_overlay(self, rgba: np.ndarray | None) -> None:
        """Show an (rows, cols, 4) uint8 overlay, or clear it."""
        if rgba is None:
            self.overlay.clear()
        else:
            self.overlay.setImage(rgba, levels=None, autoLevels=False)

    def set_crosshair(self, row: float, col: float) -> None:
        """Move the crosshair to image position (row, col)."""
        self.vline.setPos(col * self._spacing[1])
        self.hline.setPos(row * self._spacing[0])
