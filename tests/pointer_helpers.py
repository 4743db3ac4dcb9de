"""Helpers for pointer tests at any device pixel ratio: find on screen where something is drawn
(the pixels that change when it changes, from real screenshots) and press, move and release the
mouse there in the widget's logical coordinates, as a user's pointer does."""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import QPoint, Qt
from qtpy.QtGui import QImage
from qtpy.QtTest import QTest
from qtpy.QtWidgets import QApplication


def screenshot(widget) -> tuple[np.ndarray, float]:
    """``(rgb, ratio)``: the widget as drawn, in device pixels ``(H·ratio, W·ratio, 3)``."""
    for _ in range(3):
        QApplication.processEvents()
    image = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    rows = np.frombuffer(image.constBits(), np.uint8, image.sizeInBytes()).reshape(image.height(), -1)
    return rows[:, : image.width() * 3].reshape(image.height(), image.width(), 3).copy(), image.devicePixelRatio()


class Footprint:
    """The device-pixel box ``[y0, y1) × [x0, x1)`` that changed on screen, and the pixel ratio."""

    def __init__(self, before: np.ndarray, after: np.ndarray, ratio: float) -> None:
        ys, xs = np.nonzero((before != after).any(axis=2))
        assert len(ys), "nothing changed on screen"
        self.y0, self.y1, self.x0, self.x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        self.ratio = ratio

    def point(self, fx: float = 0.5, fy: float = 0.5) -> QPoint:
        """The logical widget position at fractions (fx, fy) of the box."""
        x = self.x0 + fx * (self.x1 - self.x0)
        y = self.y0 + fy * (self.y1 - self.y0)
        return QPoint(int(x / self.ratio), int(y / self.ratio))

    def size(self) -> tuple[float, float]:
        """(width, height) in logical pixels."""
        return (self.x1 - self.x0) / self.ratio, (self.y1 - self.y0) / self.ratio


def footprint(widget, change) -> Footprint:
    """Where on ``widget`` the drawing changes when ``change()`` runs (screenshots before and after)."""
    before, ratio = screenshot(widget)
    change()
    after, ratio_after = screenshot(widget)
    assert ratio == ratio_after
    return Footprint(before, after, ratio)


def click(widget, point: QPoint, button=Qt.MouseButton.LeftButton) -> None:
    """A press and release at ``point`` (logical)."""
    QTest.mouseClick(widget, button, Qt.KeyboardModifier.NoModifier, point)
    QApplication.processEvents()


def double_click(widget, point: QPoint) -> None:
    """A left double click at ``point`` as Qt delivers a mouse's: press, release, double-click press,
    release (QTest.mouseDClick does not give pyqtgraph's scene a double click the first time)."""
    from qtpy.QtCore import QEvent, QPointF
    from qtpy.QtGui import QMouseEvent

    local = QPointF(point)
    screen = QPointF(widget.mapToGlobal(point))
    left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
    hover(widget, point)
    for kind, buttons in ((QEvent.Type.MouseButtonPress, left), (QEvent.Type.MouseButtonRelease, none),
                          (QEvent.Type.MouseButtonDblClick, left), (QEvent.Type.MouseButtonRelease, none)):
        event = QMouseEvent(kind, local, screen, left, buttons, Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(widget, event)
    QApplication.processEvents()


def drag(widget, start: QPoint, end: QPoint, steps: int = 6) -> None:
    """Press at ``start``, move in ``steps`` steps to ``end`` with the button held, release there."""
    QTest.mousePress(widget, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    for i in range(1, steps + 1):
        QTest.qWait(MOVE_INTERVAL_MS)
        QTest.mouseMove(widget, start + (end - start) * (i / steps))
        QApplication.processEvents()
    QTest.mouseRelease(widget, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, end)
    QApplication.processEvents()


#: pyqtgraph's scenes drop mouse moves closer than ~1/60 s to the previous one
MOVE_INTERVAL_MS = 25


def hover(widget, point: QPoint) -> None:
    """Move the pointer (no button) to ``point``."""
    QTest.qWait(MOVE_INTERVAL_MS)
    QTest.mouseMove(widget, point)
    QApplication.processEvents()
