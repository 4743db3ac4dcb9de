"""The 3D views draw off screen and show images: what is shown is the canvas's exact frame for the
current camera and size, input reaches the canvas, and the window never composites through OpenGL.
Run with ``xvfb-run -a pytest``."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

pytestmark = pytest.mark.gl


def _needs_display():
    if os.environ.get("QT_QPA_PLATFORM") in ("offscreen", "minimal") or not os.environ.get("DISPLAY"):
        pytest.skip("needs a display with OpenGL (run under xvfb-run -a)")


def _pump(app, condition, seconds=20.0):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        if condition():
            return True
        time.sleep(0.002)
    return condition()


def _shown(widget) -> np.ndarray:
    """What ``widget`` paints (its ``grab()``), RGB, top row first."""
    from qtpy.QtGui import QImage

    image = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    width, height = image.width(), image.height()
    data = np.frombuffer(image.constBits(), np.uint8, count=image.bytesPerLine() * height)
    return data.reshape(height, image.bytesPerLine())[:, : width * 3].reshape(height, width, 3).astype(np.int16)


@pytest.fixture()
def scene_view(qapp):
    """A vispy scene (an asymmetric volume, maximum intensity, turntable camera) in an OffscreenCanvasView
    inside a plain window."""
    _needs_display()
    import vispy

    vispy.use(app="pyside6")
    from qtpy.QtWidgets import QLabel, QVBoxLayout, QWidget
    from vispy import scene

    from panels.offscreen_canvas import OffscreenCanvasView, offscreen_canvas_class

    canvas = offscreen_canvas_class(scene.SceneCanvas)(keys=None, show=False, bgcolor="#202020")
    view3d = canvas.central_widget.add_view()
    view3d.camera = scene.cameras.TurntableCamera(fov=0.0, azimuth=30.0, elevation=20.0)
    volume = np.zeros((24, 32, 48), np.float32)  # an asymmetric block with a bright corner: every turn shows
    volume[4:20, 6:26, 8:40] = 0.5
    volume[4:10, 6:12, 8:16] = 1.0
    scene.visuals.Volume(volume, parent=view3d.scene, method="mip", cmap="viridis")
    view3d.camera.set_range()
    window = QWidget()
    layout = QVBoxLayout(window)
    layout.addWidget(QLabel("a label next to the 3D view"))
    shown = OffscreenCanvasView(canvas, window, background="#202020")
    layout.addWidget(shown)
    window.resize(420, 360)
    window.show()
    assert _pump(qapp, lambda: shown.frames > 0), "no frame drawn after show"
    yield qapp, window, shown, canvas, view3d
    window.close()
    canvas.close()


def test_window_composites_without_opengl(scene_view):
    """The GL widget has no parent and the window keeps a raster surface (Qt would composite every
    repaint of the window through OpenGL otherwise)."""
    from qtpy.QtGui import QSurface

    app, window, shown, canvas, _ = scene_view
    assert canvas.native.parent() is None and canvas.native.isWindow() and not canvas.native.isVisible()
    assert window.windowHandle().surfaceType() == QSurface.SurfaceType.RasterSurface


def test_shown_frame_is_the_canvas_frame_for_the_current_camera(scene_view):
    """After a camera change the view shows the canvas's own render at that camera and size
    (``canvas.render()``: its own framebuffer, full quality), not the previous frame."""
    app, _window, shown, canvas, view3d = scene_view
    before = _shown(shown)
    count = shown.frames
    view3d.camera.azimuth = 120.0
    assert _pump(app, lambda: shown.frames > count)
    after = _shown(shown)
    reference = canvas.render(alpha=False)[..., :3].astype(np.int16)
    ratio = shown.devicePixelRatioF()  # 1 under Xvfb; QT_SCALE_FACTOR=2 runs the HiDPI path
    assert reference.shape == after.shape == (round(shown.height() * ratio), round(shown.width() * ratio), 3)
    assert np.abs(after - reference).max() <= 1
    assert np.abs(before - reference).mean() > 1.0  # the old frame really differed


def test_resize_gives_the_canvas_the_new_size(scene_view):
    app, window, shown, canvas, _ = scene_view
    count = shown.frames
    window.resize(520, 300)
    assert _pump(app, lambda: shown.frames > count and shown.image.deviceIndependentSize().width() == shown.width())
    ratio = shown.devicePixelRatioF()
    assert tuple(canvas.size) == (shown.width(), shown.height())
    assert _shown(shown).shape[:2] == (round(shown.height() * ratio), round(shown.width() * ratio))
    reference = canvas.render(alpha=False)[..., :3].astype(np.int16)
    assert np.abs(_shown(shown) - reference).max() <= 1


def test_mouse_drag_and_wheel_reach_the_camera(scene_view):
    from qtpy.QtCore import QPoint, QPointF, Qt
    from qtpy.QtGui import QWheelEvent
    from qtpy.QtTest import QTest

    app, _window, shown, _canvas, view3d = scene_view
    azimuth, distance = view3d.camera.azimuth, view3d.camera.scale_factor
    start = QPoint(100, 100)
    QTest.mousePress(shown, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    for step in range(1, 6):
        QTest.mouseMove(shown, start + QPoint(12 * step, 0))
        app.processEvents()
    QTest.mouseRelease(shown, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start + QPoint(60, 0))
    assert view3d.camera.azimuth != pytest.approx(azimuth, abs=1.0)
    wheel = QWheelEvent(QPointF(100, 100), QPointF(shown.mapToGlobal(QPoint(100, 100))), QPoint(0, 0), QPoint(0, 120),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    app.sendEvent(shown, wheel)
    assert view3d.camera.scale_factor < distance  # wheel up zooms in


def test_hidden_view_draws_nothing_until_shown(scene_view):
    app, _window, shown, _canvas, view3d = scene_view
    shown.hide()
    count = shown.frames
    view3d.camera.azimuth = 200.0
    _pump(app, lambda: False, seconds=0.2)
    assert shown.frames == count
    shown.show()
    assert _pump(app, lambda: shown.frames == count + 1)


def test_studio_window_stays_raster_with_both_3d_views(window, qtbot):
    """The real window with the Render and Volume 3D views created: no OpenGL widget inside it, and
    its surface is raster, so a repaint of any label does not go through (software) OpenGL."""
    _needs_display()
    from qtpy.QtGui import QSurface
    from qtpy.QtOpenGLWidgets import QOpenGLWidget
    from qtpy.QtWidgets import QApplication

    window.show_panel("render")
    render = window.panel("render")
    qtbot.waitUntil(lambda: render.canvas is not None, timeout=20000)
    window.show_panel("volume")
    volume = window.panel("volume")
    qtbot.waitUntil(lambda: volume.view3d.canvas is not None and volume.view3d.screen.frames > 0, timeout=60000)
    gl_widgets = [w for w in QApplication.allWidgets() if isinstance(w, QOpenGLWidget)]
    assert len(gl_widgets) >= 2
    assert all(w.window() is w and not w.isVisible() for w in gl_widgets)
    assert window.windowHandle().surfaceType() == QSurface.SurfaceType.RasterSurface


def test_showing_again_at_the_same_size_draws_nothing(scene_view):
    """A view hidden and shown again (a panel switch) keeps its frame: no resize reaches vispy (it
    would void the cost the Volume view learnt and start a coarse frame and its bands again)."""
    app, _window, shown, canvas, _ = scene_view
    resized = []
    canvas.events.resize.connect(lambda event: resized.append(event.size))
    count = shown.frames
    from qtpy.QtGui import QResizeEvent

    shown.hide()
    shown.show()
    app.sendEvent(shown, QResizeEvent(shown.size(), shown.size()))  # what Qt sends a widget resized while hidden
    _pump(app, lambda: False, seconds=0.2)
    assert shown.frames == count and resized == []


def test_canvas_size_set_by_code_follows_the_view(scene_view):
    """``canvas.size = ...`` resizes the hidden GL widget without a resize event. When the view then
    takes that very size, vispy must still be told (framebuffer and viewport agree with what is shown)."""
    app, window, shown, canvas, view3d = scene_view
    width, height = shown.width() + 30, shown.height()
    canvas.size = (width, height)  # the GL widget now has the size the view is about to get
    window.resize(window.width() + 30, window.height())
    assert _pump(app, lambda: shown.width() == width and shown.image.deviceIndependentSize().width() == width)
    view3d.camera.azimuth = 75.0
    count = shown.frames
    assert _pump(app, lambda: shown.frames > count)
    ratio = shown.devicePixelRatioF()
    assert tuple(canvas.physical_size) == (round(width * ratio), round(height * ratio))
    reference = canvas.render(alpha=False)[..., :3].astype(np.int16)
    assert np.abs(_shown(shown) - reference).max() <= 1


def test_updates_after_the_view_is_deleted_are_ignored(qapp):
    """A timer of the Volume view's progressive frames can fire after the panel (and the view and
    GL widget with it) was deleted: the update it asks for must not reach the deleted widgets."""
    _needs_display()
    import vispy

    vispy.use(app="pyside6")
    from vispy import scene

    from panels.offscreen_canvas import OffscreenCanvasView, offscreen_canvas_class

    canvas = offscreen_canvas_class(scene.SceneCanvas)(keys=None, show=False)
    shown = OffscreenCanvasView(canvas)
    shown.show()
    assert _pump(qapp, lambda: shown.frames > 0)
    import shiboken6
    from qtpy.QtCore import QEvent

    shiboken6.delete(shown)  # the view goes (as with its panel); the GL widget follows as a deferred delete
    qapp.sendPostedEvents(None, QEvent.Type.DeferredDelete.value)
    assert not shiboken6.isValid(canvas.native)
    canvas.update()  # what a late timer does; raised "Internal C++ object already deleted" before


def test_pinch_zoom_away_from_the_screen_corner_reaches_the_camera(scene_view):
    """A touchpad pinch carries a global position, which vispy maps into the (hidden) GL window: the
    view puts that window where it is, so a pinch zooms wherever the studio window is."""
    from qtpy.QtCore import QPointF, Qt
    from qtpy.QtGui import QNativeGestureEvent, QPointingDevice

    app, window, shown, _canvas, view3d = scene_view
    window.move(700, 500)
    _pump(app, lambda: False, seconds=0.2)
    local = QPointF(shown.width() / 2, shown.height() / 2)
    before = view3d.camera.scale_factor
    for kind, value in ((Qt.NativeGestureType.BeginNativeGesture, 0.0), (Qt.NativeGestureType.ZoomNativeGesture, 0.3),
                        (Qt.NativeGestureType.EndNativeGesture, 0.0)):
        event = QNativeGestureEvent(kind, QPointingDevice.primaryPointingDevice(), 2, local, local,
                                    QPointF(shown.mapToGlobal(local.toPoint())), value, QPointF(0, 0))
        app.sendEvent(shown, event)
    assert view3d.camera.scale_factor != pytest.approx(before)
