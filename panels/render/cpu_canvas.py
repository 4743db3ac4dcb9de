"""The splat view without OpenGL: progressive CPU frames in a plain Qt widget.

Used by the Render panel when vispy cannot create a canvas (no OpenGL at all). :class:`CpuCanvas`
offers the part of :class:`~panels.render.viewer.SplatCanvas`'s interface the panel uses
(``set_splats``, ``camera_matrices``, ``frame_all``, ...) and shows frames of
:class:`~panels.render.cpu_view.ProgressiveRenderer`; the camera orbits (left drag) and zooms (wheel).
"""

from __future__ import annotations

import math

import numpy as np
from qtpy.QtCore import Qt, QTimer
from qtpy.QtGui import QImage, QPixmap
from qtpy.QtWidgets import QLabel, QSizePolicy

from panels.render.widgets import to_uint8


class _CameraState:
    """Orbit parameters (what the panel toggles: ``interactive``)."""

    def __init__(self) -> None:
        self.interactive = True
        self.azimuth = 0.0
        self.elevation = 0.0
        self.zoom = 1.0


class _FrameLabel(QLabel):
    """The widget: shows the latest frame, turns mouse drags / wheel into orbit and zoom."""

    def __init__(self, owner: CpuCanvas, parent=None) -> None:
        super().__init__(parent)
        self.owner = owner
        self.setAlignment(Qt.AlignCenter)
        self.setMinimumSize(64, 64)
        self.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Ignored)
        self.setStyleSheet("background: black; color: #bbb;")
        self._last = None

    def mousePressEvent(self, event) -> None:
        self._last = event.position() if hasattr(event, "position") else event.pos()

    def mouseMoveEvent(self, event) -> None:
        pos = event.position() if hasattr(event, "position") else event.pos()
        if self._last is not None and self.owner.view.camera.interactive:
            self.owner.orbit(0.4 * (pos.x() - self._last.x()), 0.4 * (pos.y() - self._last.y()))
        self._last = pos

    def mouseReleaseEvent(self, event) -> None:
        self._last = None

    def wheelEvent(self, event) -> None:
        self.owner.zoom_by(0.9 if event.angleDelta().y() > 0 else 1.0 / 0.9)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.owner.update()


class CpuCanvas:
    """Splat view drawn by :class:`ProgressiveRenderer` into a QLabel (no OpenGL needed)."""

    cpu_mode = True
    gl_renderer = "not available"
    FOV = 45.0

    def __init__(self, parent=None) -> None:
        from panels.render.cpu_view import PauseWhenHidden, ProgressiveRenderer

        self.canvas = self  # the panel reads canvas.canvas.size / update like a vispy SceneCanvas
        self.view = self
        self.camera = _CameraState()
        self.widget = _FrameLabel(self, parent)
        self.widget.setText("Loading the view…")
        self.progressive = ProgressiveRenderer(uint8_frames=True)  # converted on its worker, not here
        PauseWhenHidden(self.widget, self.progressive)
        self.renderer_chosen = None
        self.positions = np.zeros((0, 3), np.float32)
        self.colors = np.zeros((0, 4), np.float32)
        self.covs = np.zeros((0, 6), np.float32)
        self.selected = np.zeros(0, bool)
        self.color_fn = None
        self.point_scale = 1.0
        self.background = (0.0, 0.0, 0.0)
        self.crop_box = None
        self._frame = None
        self.last_frame: np.ndarray | None = None  # the frame shown last, (H, W, 3) uint8
        self._timer = QTimer(self.widget)
        self._timer.setInterval(15)
        self._timer.timeout.connect(self._take_frame)
        self.widget.destroyed.connect(lambda *_: self.progressive.close())

    @property
    def native(self):
        """The Qt widget."""
        return self.widget

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the widget in pixels."""
        return max(8, self.widget.width()), max(8, self.widget.height())

    def update(self) -> None:
        """Post the current camera to the CPU renderer; frames arrive on a timer."""
        if len(self.positions) == 0:
            return
        from panels.render.cpu_view import device_frame_size

        width, height, ratio = device_frame_size(*self.size, self.widget.devicePixelRatioF())
        K, view = self.camera_matrices(width, height)  # device pixels: drawn 1:1 on a HiDPI screen
        self.progressive.request(K, view, width, height, ratio)
        if not self._timer.isActive():
            self._timer.start()

    def _take_frame(self) -> None:
        result = self.progressive.take()
        if result is not None:
            self.show_frame(result[0])
        elif not self.progressive.busy:
            self._timer.stop()

    def show_frame(self, image: np.ndarray) -> None:
        """Display an (H, W, 3) uint8 frame (or float in [0, 1]) over the widget: the full frame in device pixels, 1:1 (its
        pixel ratio set); coarse frames enlarged to the logical size, as before (to the device size it
        cost 4x the GUI thread's time, ~10 ms a frame at 1600x1200, for frames blurry anyway)."""
        from panels.render.cpu_view import device_frame_size

        self.last_frame = image
        a = to_uint8(image)
        qimage = QImage(a.data, a.shape[1], a.shape[0], 3 * a.shape[1], QImage.Format_RGB888).copy()
        pixmap = QPixmap.fromImage(qimage)
        width, height, ratio = device_frame_size(*self.size, self.widget.devicePixelRatioF())
        if (a.shape[1], a.shape[0]) == (width, height):
            pixmap.setDevicePixelRatio(ratio)
        else:  # a coarse frame, or one made before the last resize
            pixmap = pixmap.scaled(self.widget.size(), Qt.IgnoreAspectRatio, Qt.SmoothTransformation)
        self.widget.setPixmap(pixmap)

    def settle(self, timeout: float = 30.0) -> bool:
        """Block until the full frame of the current camera is shown (tests)."""
        self.update()
        ok = self.progressive.wait_full(timeout)
        self._take_frame()
        return ok

    def _push_scene(self) -> None:
        from engines.render.preview import PreviewScene

        tint = self.selected.astype(np.float32)[:, None] * 0.6
        highlight = np.array([1.0, 0.85, 0.1], np.float32)
        mix = lambda rgb: rgb[:, :3] * (1 - tint) + highlight * tint
        fn = self.color_fn
        prep = PreviewScene(self.positions, self.covs * self.point_scale ** 2, self.colors[:, 3].copy(),
                            mix(self.colors), None if fn is None else (lambda c: mix(np.asarray(fn(c)))))
        self.progressive.set_scene(prep, self.background)
        self.update()

    def set_background(self, rgb) -> None:
        """Background colour (r, g, b) in [0, 1]."""
        self.background = tuple(float(c) for c in rgb)[:3]
        if len(self.positions):
            self._push_scene()

    def set_point_scale(self, scale: float) -> None:
        """Multiply every splat's drawn size."""
        self.point_scale = float(scale)
        if len(self.positions):
            self._push_scene()

    def set_splats(self, positions, colors_rgba, covariances, selected, color_fn=None, frame=None) -> None:
        """New data, as :meth:`SplatCanvas.set_splats`."""
        from panels.render.viewer import covariance_upper

        self.positions = np.asarray(positions, np.float32).reshape(-1, 3)
        self._frame = None if frame is None else (np.asarray(frame[0], np.float64), float(frame[1]))
        self.colors = np.asarray(colors_rgba, np.float32).reshape(-1, 4)
        self.covs = covariance_upper(covariances)
        self.selected = np.asarray(selected, bool).reshape(-1)
        self.color_fn = color_fn
        if len(self.positions):
            self._push_scene()
        else:
            self.widget.clear()

    def set_crop_box(self, lo, hi, visible: bool = True) -> None:
        """Remembered only: the CPU view draws no crop wireframe."""
        self.crop_box = (np.asarray(lo, np.float32), np.asarray(hi, np.float32))

    def scene_frame(self) -> tuple[np.ndarray, float]:
        """(centre, radius) of the splats."""
        if self._frame is None:
            from engines.render.camera import scene_frame

            self._frame = scene_frame(self.positions) if len(self.positions) else (np.zeros(3), 1.0)
        return self._frame

    def frame_all(self) -> None:
        """Front view fitting the whole scene."""
        self.camera.azimuth = self.camera.elevation = 0.0
        self.camera.zoom = 1.0
        self.update()

    def orbit(self, d_azimuth: float, d_elevation: float) -> None:
        """Turn the camera around the scene centre (degrees)."""
        self.camera.azimuth += d_azimuth
        self.camera.elevation = float(np.clip(self.camera.elevation + d_elevation, -89.0, 89.0))
        self.update()

    def zoom_by(self, factor: float) -> None:
        """Move the camera closer (factor < 1) or farther."""
        self.camera.zoom = float(np.clip(self.camera.zoom * factor, 0.05, 20.0))
        self.update()

    def camera_matrices(self, width: int | None = None, height: int | None = None):
        """(K, viewmat) of the current view for ``width``x``height`` (default: widget size)."""
        from engines.render.camera import orbit_camera

        cw, ch = self.size
        width, height = width or cw, height or ch
        centre, radius = self.scene_frame()
        distance = self.camera.zoom * 1.15 * radius / math.sin(math.radians(self.FOV) / 2)
        fov_x = math.degrees(2 * math.atan(math.tan(math.radians(self.FOV) / 2) * width / height))
        cam = orbit_camera(self.camera.azimuth, self.camera.elevation, distance, centre, width, height, fov_x)
        return cam.K.numpy().astype(np.float64), cam.viewmat.numpy().astype(np.float64)
