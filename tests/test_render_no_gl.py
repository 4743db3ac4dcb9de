"""Render panel without any OpenGL: the view falls back to progressive CPU frames in a plain widget."""

import numpy as np

import panels.render.panel as panel_module
import panels.render.viewer as viewer_module
from engines.jobs import run_job
from engines.render.io import save_ply
from engines.render.still import still_job
from engines.render.synthetic import sphere_scene
from panels.render import RenderPanel
from panels.render.cpu_canvas import CpuCanvas
from tests.gui_helpers import open_and_wait, wait_loaded


def _no_gl(*_args, **_kwargs):
    raise RuntimeError("could not create an OpenGL context")


def _shown_panel(make_panel, path, scene, size):
    """A Render panel with ``scene`` opened from ``path``, shown at ``size``: its view is CPU frames."""
    panel = make_panel(RenderPanel)
    wait_loaded(panel)
    save_ply(path, scene)
    open_and_wait(panel, path)
    panel.resize(*size)
    panel.show()
    panel.on_shown()
    assert isinstance(panel.canvas, CpuCanvas)
    assert not panel.view_placeholder.isVisible()
    return panel


def test_view_without_opengl_shows_cpu_frames(make_panel, qtbot, tmp_path, monkeypatch):
    monkeypatch.setattr(panel_module, "_platform_has_gl", lambda: True)  # a display, but GL fails
    monkeypatch.setattr(viewer_module, "SplatCanvas", _no_gl)
    panel = _shown_panel(make_panel, tmp_path / "ball.ply", sphere_scene(300, footprint=0.1, sh_degree=0), (700, 500))
    assert "view: CPU frames" in panel.stats_label.text()
    assert not panel.box_button.isEnabled()
    qtbot.wait(50)
    assert panel.canvas.settle()
    frame = panel.canvas.last_frame
    assert frame is not None and frame.dtype == np.uint8  # converted on the renderer's worker
    frame = frame / 255.0
    assert frame is not None and frame.shape[:2] == panel.canvas.size[::-1]
    assert not panel.canvas.native.pixmap().isNull()
    # the shown frame is the exact rasterizer's image from the panel's camera (as used for stills)
    exact = run_job(still_job(panel.scene, panel.view_camera(), "classic", (0, 0, 0), 0))
    assert frame.shape == exact.shape
    err = np.abs(frame - exact).mean()
    assert exact.max() > 0.2 and err < 0.02, err
    # orbiting changes the frame; the scene rotates with the camera
    panel.canvas.orbit(60.0, 15.0)
    assert panel.canvas.settle()
    turned = run_job(still_job(panel.scene, panel.view_camera(), "classic", (0, 0, 0), 0))
    shown = panel.canvas.last_frame / 255.0
    assert np.abs(shown - turned).mean() < 0.02
    assert np.abs(turned - exact).mean() > 2 * np.abs(shown - turned).mean()


def test_offscreen_platform_falls_back_to_cpu_frames(make_panel, qtbot, tmp_path, monkeypatch):
    """QT_QPA_PLATFORM=offscreen (no OpenGL context): the view shows CPU frames, not a placeholder."""
    from qtpy.QtGui import QGuiApplication

    if QGuiApplication.platformName() not in ("offscreen", "minimal"):  # under xvfb-run: act as offscreen
        monkeypatch.setattr(panel_module, "_platform_has_gl", lambda: False)
    panel = _shown_panel(make_panel, tmp_path / "ball.ply", sphere_scene(400, footprint=0.12, sh_degree=1), (640, 480))
    qtbot.wait(50)
    assert panel.canvas.settle()
    shown = panel.canvas.native.pixmap().toImage()
    assert not shown.isNull() and shown.width() == panel.canvas.size[0]
    # the pixels on screen (8-bit pixmap) are the exact rasterizer's image at the panel's camera
    from qtpy.QtGui import QImage

    rgb = shown.convertToFormat(QImage.Format_RGB888)
    pixels = np.frombuffer(rgb.constBits(), np.uint8, rgb.sizeInBytes()).reshape(rgb.height(), -1)
    pixels = pixels[:, : 3 * rgb.width()].reshape(rgb.height(), rgb.width(), 3) / 255.0
    exact = run_job(still_job(panel.scene, panel.view_camera(), "classic", (0, 0, 0), 1))
    assert pixels.shape == exact.shape and exact.max() > 0.2
    psnr = 10 * np.log10(1.0 / max(float(np.mean((pixels - exact) ** 2)), 1e-12))
    assert psnr > 30, psnr
