"""A vispy canvas drawn off screen and shown as an image, so the window stays raster-composited.

Once a ``QOpenGLWidget`` (vispy's Qt canvas) is inside a window, Qt composites that whole window
through OpenGL on every repaint: with a software rasterizer (Mesa llvmpipe, no GPU) a one-label
repaint goes from under 1 ms to about 10 ms and a full-window repaint from 9 to 18-26 ms, on the
GUI thread. Here the canvas's GL widget is a hidden window of its own (never shown: its context
renders into an offscreen framebuffer, which Qt supports for a widget that is never shown), and
:class:`OffscreenCanvasView`, a plain widget in the layout, draws it when vispy asks for a frame
(``grabFramebuffer``), shows the image and passes mouse, wheel and key events on to it.

The canvas class needs :class:`FrameOnRequest` first in its bases (see :func:`offscreen_canvas_class`)
so that ``canvas.update()`` reaches the view: Qt never paints a hidden widget by itself.
"""

from __future__ import annotations

import time

from qtpy.QtCore import QEvent, QPoint, QPointF, QRectF, Qt, QTimer
from qtpy.QtGui import QColor, QImage, QPainter, QResizeEvent
from qtpy.QtWidgets import QApplication, QWidget


class FrameOnRequest:
    """Mixin for a vispy ``SceneCanvas`` shown by :class:`OffscreenCanvasView`: every ``update()``
    asks the view for a frame."""

    offscreen_view = None  # the OffscreenCanvasView showing this canvas (set by the view)

    def update(self, node=None) -> None:
        """vispy's update, then a frame request to the view that shows the canvas (nothing once the
        view, and the GL widget deleted with it, are gone: a timer may still fire)."""
        view = self.offscreen_view
        if view is not None and not _alive(view):
            return
        super().update(node)
        if view is not None:
            view.request_frame()


def _alive(widget) -> bool:
    """False once the Qt object behind ``widget`` was deleted."""
    try:
        import shiboken6
    except ImportError:  # another binding: assume alive
        return True
    return shiboken6.isValid(widget)


_CLASSES: dict[type, type] = {}


def offscreen_canvas_class(base: type) -> type:
    """``base`` (a vispy SceneCanvas class) with :class:`FrameOnRequest` in front, made once per base."""
    if base not in _CLASSES:
        _CLASSES[base] = type(f"Offscreen{base.__name__}", (FrameOnRequest, base), {})
    return _CLASSES[base]


class OffscreenCanvasView(QWidget):
    """Shows ``canvas`` (a vispy canvas of an :func:`offscreen_canvas_class`, made with ``show=False`` and
    no parent) without putting its OpenGL widget in the window.

    ``frames`` counts the frames drawn; ``last_frame_ms`` is what the last one cost (draw + read back).
    """

    def __init__(self, canvas, parent: QWidget | None = None, background: str = "#111111") -> None:
        super().__init__(parent)
        self.canvas = canvas
        self.gl_widget = canvas.native
        self.background = QColor(background)
        self.image: QImage | None = None
        self._coarse: QImage | None = None  # the last coarse frame, scaled up to the full size
        self.frames = 0
        self.last_frame_ms = 0.0
        self._due = False  # a frame was asked for and not drawn yet
        self._gl_size_sent = None  # (width, height, pixel ratio) the GL widget and vispy were last told
        # the GL widget: a window of its own that is never shown, deleted with this view. It must have
        # no parent at all: Qt marks every ancestor of an OpenGL widget (up to the first window, but a
        # child window's parent too) to composite through OpenGL, which is what this module avoids.
        self.gl_widget.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen, True)
        self.gl_widget.hide()
        self.destroyed.connect(self.gl_widget.deleteLater)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.WheelFocus)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent, True)
        self.setMinimumSize(64, 64)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._draw)
        canvas.offscreen_view = self
        self._resize_gl(self.gl_widget.size())  # creates the GL context now

    # -- frames ---------------------------------------------------------------------------
    def request_frame(self) -> None:
        """Draw a frame soon (at the next event-loop turn; once however often it is asked)."""
        self._due = True
        if self.isVisible() and not self._timer.isActive():
            self._timer.start(0)

    def draw_now(self) -> QImage | None:
        """Draw a frame now and show it; returns the image (None when OpenGL failed)."""
        self._timer.stop()
        self._draw()
        return self.image

    def _follow_view(self) -> None:
        """Put the hidden GL window where this view is on the screen (vispy maps global positions into
        it). Not its screen: a screen change makes the OpenGL widget drop its context and framebuffer."""
        place = self.mapToGlobal(QPoint(0, 0))
        if self.gl_widget.pos() != place:
            self.gl_widget.move(place)

    def _draw(self) -> None:
        self._due = False
        self._sync_gl_size()
        start = time.perf_counter()
        image = self.gl_widget.grabFramebuffer()  # runs paintGL (vispy's draw), then reads the pixels
        self.last_frame_ms = (time.perf_counter() - start) * 1000.0
        if image.isNull():
            return
        self.image = self._compose(image)
        self.frames += 1
        self.update()

    def _compose(self, image: QImage) -> QImage:
        """What to show of the framebuffer ``image``: all of it, unless the canvas drew its last frame
        into the lower-left 1/divisor of it (``canvas.frame_layout()``, see panels/volume/progressive_gl.py):
        then that part scaled up, under the top rows redrawn at full size since."""
        layout = getattr(self.canvas, "frame_layout", None)
        divisor, refined = layout() if layout is not None else (1, 0)
        if divisor <= 1:
            self._coarse = None
            return image
        width, height = image.width(), image.height()
        if refined == 0 or self._coarse is None or self._coarse.size() != image.size():
            small_w, small_h = max(1, width // divisor), max(1, height // divisor)
            part = image.copy(0, height - small_h, small_w, small_h)  # GL's lower left is the image's bottom left
            self._coarse = part.scaled(width, height, Qt.AspectRatioMode.IgnoreAspectRatio,
                                       Qt.TransformationMode.SmoothTransformation)
            self._coarse.setDevicePixelRatio(image.devicePixelRatio())
            if refined == 0:
                return self._coarse
        if refined >= height:  # every row redrawn: the full frame
            return image
        shown = self._coarse.copy()
        painter = QPainter(shown)
        ratio = image.devicePixelRatio() or 1.0
        painter.drawImage(QRectF(0, 0, width / ratio, refined / ratio), image, QRectF(0, 0, width, refined))
        painter.end()
        return shown

    def _sync_gl_size(self) -> bool:
        """Give the hidden GL widget this view's size (and tell vispy its screen's pixel ratio) unless
        it has them already, e.g. after code set ``canvas.size``; True when it changed."""
        size = self.size().expandedTo(self.minimumSize())
        if self._gl_size_sent == (size.width(), size.height(), self.gl_widget.devicePixelRatioF()) \
                and self.gl_widget.size() == size:
            return False
        self._resize_gl(size)
        return True

    def _resize_gl(self, size) -> None:
        """Give the hidden GL widget this ``QSize``. A hidden widget gets no resize event from Qt, and its
        framebuffer and vispy's viewport follow that event: send it, without the paint it triggers
        (the frame is drawn once, by :meth:`_draw`)."""
        widget = self.gl_widget
        old = widget.size()
        widget.resize(size)
        self._gl_size_sent = (size.width(), size.height(), widget.devicePixelRatioF())
        widget.setUpdatesEnabled(False)
        try:
            QApplication.sendEvent(widget, QResizeEvent(widget.size(), old))
        finally:
            widget.setUpdatesEnabled(True)

    # -- Qt -------------------------------------------------------------------------------
    def paintEvent(self, event) -> None:  # noqa: N802 - Qt's name
        painter = QPainter(self)
        image = self.image
        if image is None:
            painter.fillRect(self.rect(), self.background)
        else:
            painter.drawImage(QPointF(0, 0), image)
            shown = image.deviceIndependentSize()
            if shown.width() < self.width():
                painter.fillRect(int(shown.width()), 0, self.width(), self.height(), self.background)
            if shown.height() < self.height():
                painter.fillRect(0, int(shown.height()), self.width(), self.height(), self.background)
        painter.end()

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        if self._sync_gl_size():  # Qt also sends one when a view hidden meanwhile is shown
            self.request_frame()

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        if self._due or self.image is None:
            self.request_frame()

    def event(self, event) -> bool:
        if event.type() == QEvent.Type.NativeGesture:  # pinch / rotate on touchpads: vispy maps the event's
            # global position into the GL widget, so that hidden window is put where this view is first
            self._follow_view()
            return self.gl_widget.event(event)
        return super().event(event)

    def mousePressEvent(self, event) -> None:  # noqa: N802
        self.gl_widget.mousePressEvent(event)

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        self.gl_widget.mouseReleaseEvent(event)

    def mouseDoubleClickEvent(self, event) -> None:  # noqa: N802
        self.gl_widget.mouseDoubleClickEvent(event)

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        self.gl_widget.mouseMoveEvent(event)

    def wheelEvent(self, event) -> None:  # noqa: N802
        self.gl_widget.wheelEvent(event)

    def keyPressEvent(self, event) -> None:  # noqa: N802
        self.gl_widget.keyPressEvent(event)

    def keyReleaseEvent(self, event) -> None:  # noqa: N802
        self.gl_widget.keyReleaseEvent(event)
