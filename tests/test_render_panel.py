"""Render panel GUI tests: open, select/delete/undo, fit, export, still render, GL viewer."""

import numpy as np
import pytest
import torch

from engines.render.camera import scene_frame
from engines.render.io import load_ply, save_ply
from engines.render.synthetic import sphere_scene
from panels.base import OpenError
from panels.render import RenderPanel
from studio.export import FileExistsErrorNoForce, read_provenance
from tests.gui_helpers import open_and_wait, shown_gl_render_panel, wait_loaded


@pytest.fixture()
def panel(make_panel):
    widget = make_panel(RenderPanel)
    wait_loaded(widget)  # the bundled sample is read by a job
    return widget


@pytest.fixture()
def scene_path(tmp_path):
    path = tmp_path / "ball.ply"
    save_ply(path, sphere_scene(200, footprint=0.1, sh_degree=1))
    return path


def test_contract_and_sample_scene(panel):
    assert (panel.name, panel.title, panel.icon) == ("render", "Render", "render.svg")
    assert {".ply", ".splat", ".png", ".jpg", "/"} <= set(panel.file_types)
    assert panel.scene is not None and len(panel.scene) > 1000  # bundled sample shown on first open
    assert "Gaussians" in panel.stats_label.text()
    params = panel.current_parameters()
    panel.restore_parameters({**params, "aa": "mip", "count": 77, "background": [1, 1, 1]})
    assert panel.current_parameters()["aa"] == "mip" and panel.current_parameters()["count"] == 77
    assert panel.background == (1.0, 1.0, 1.0)


def test_open_and_bad_files(panel, scene_path, tmp_path):
    from engines.render.io import save_splat

    save_splat(tmp_path / "ball.splat", load_ply(scene_path))
    open_and_wait(panel, tmp_path / "ball.splat")
    assert len(panel.scene) == 200 and panel.scene.sh_degree == 0
    open_and_wait(panel, scene_path)
    assert len(panel.scene) == 200 and "ball.ply: 200 Gaussians (SH degree 1)" in panel.stats_label.text()
    bad = tmp_path / "bad.ply"
    bad.write_text("ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nend_header\n1\n")
    with pytest.raises(OpenError, match="not a Gaussian-splat"):
        open_and_wait(panel, bad)
    assert len(panel.scene) == 200 and panel.scene_path == str(scene_path)  # unchanged
    assert panel.can_open(scene_path) and not panel.can_open(tmp_path / "x.obj")
    assert not panel.can_open(tmp_path)  # a folder without cameras.json is not a set of posed views


def test_box_select_delete_invert_undo_redo(panel, scene_path):
    open_and_wait(panel, scene_path)
    means = panel.scene.means.numpy()
    centre, _ = scene_frame(means)
    cam = panel.view_camera()  # framing camera looking along +z, image x = world x
    assert (cam.width, cam.height) == (800, 600)
    n = panel.select_rect(0, 0, cam.K[0, 2].item(), 600)
    expected = means[:, 0] < centre[0]
    assert n == expected.sum() and np.array_equal(panel.selection, expected)
    panel.invert_selection()
    assert np.array_equal(panel.selection, ~expected)
    panel.undo_stack.undo()
    assert np.array_equal(panel.selection, expected)
    panel.delete_selected()
    assert len(panel.scene) == 200 - expected.sum() and not panel.selection.any()
    assert np.all(panel.scene.means.numpy()[:, 0] >= centre[0])
    panel.undo_stack.undo()
    assert len(panel.scene) == 200 and np.array_equal(panel.selection, expected)
    torch.testing.assert_close(panel.scene.means, torch.from_numpy(means))
    panel.undo_stack.redo()
    assert len(panel.scene) == 200 - expected.sum()
    panel.select_rect(0, 0, 800, 600, "replace")
    panel.select_rect(0, 0, 400, 600, "subtract")
    assert 0 < panel.selection.sum() < len(panel.scene)
    panel.crop_to_selection()
    assert len(panel.scene) <= 200 - expected.sum()


def test_lasso_select(panel, scene_path):
    open_and_wait(panel, scene_path)
    means = panel.scene.means.numpy()
    cam = panel.view_camera()
    cx, cy = cam.K[0, 2].item(), cam.K[1, 2].item()
    # a triangle in the upper-left quarter of the view
    tri = [(0.0, 0.0), (cx, 0.0), (0.0, cy)]
    n = panel.select_polygon(tri)
    t = means @ cam.viewmat[:3, :3].numpy().T + cam.viewmat[:3, 3].numpy()
    u = cam.K[0, 0].item() * t[:, 0] / t[:, 2] + cx
    v = cam.K[1, 1].item() * t[:, 1] / t[:, 2] + cy
    expected = (u >= 0) & (v >= 0) & (u / cx + v / cy <= 1)
    assert 0 < n == expected.sum() and np.array_equal(panel.selection, expected)
    panel.select_polygon(tri, "subtract")
    assert not panel.selection.any()
    panel.undo_stack.undo()
    assert np.array_equal(panel.selection, expected)


def test_fit_tiny_export_and_open_in_viewer(panel, qtbot, tmp_path):
    yy, xx = np.mgrid[0:16, 0:16]
    target = np.stack([xx * 16, yy * 16, np.full_like(xx, 128)], -1).astype(np.uint8)
    panel.receive("image", target)
    assert panel.tabs.currentIndex() == 1 and panel.start_button.isEnabled()
    panel.restore_parameters({"count": 40, "steps": 30})
    panel.start_fit()
    assert panel.cancel_button.isEnabled()
    assert panel.services.jobs.wait_all(120)
    qtbot.waitUntil(lambda: panel.fit_result is not None, timeout=10000)
    assert panel.fit_result.final_psnr > 18
    x, y = panel.psnr_curve.getData()
    assert len(x) >= 2 and y[-1] > y[0]
    assert panel.current_view.image is not None
    out = tmp_path / "fit.ply"
    panel.export_fit(str(out))
    assert len(load_ply(out)) == len(panel.fit_result.scene)
    assert read_provenance(out)["parameters"]["steps"] == 30
    panel.open_fit_in_viewer()
    assert len(panel.scene) == len(panel.fit_result.scene) and panel.tabs.currentIndex() == 0
    panel.undo_stack.undo()
    assert len(panel.scene) > 1000  # back to the sample
    with pytest.raises(OpenError):
        panel.receive("mesh", None)


def test_fit_plot_redraws_are_coalesced_and_end_with_every_step(panel, qtbot, monkeypatch):
    """The PSNR / loss plot is redrawn at most once per REDRAW_INTERVAL_MS during a fit, not once per
    step, shows every step once the fit ends, and its ranges (which repaint the cached axes when they
    move) moved only a few times yet hold every point."""
    import time

    from panels import live_plot

    yy, xx = np.mgrid[0:16, 0:16]
    panel.receive("image", np.stack([xx * 16, yy * 16, np.full_like(xx, 128)], -1).astype(np.uint8))
    panel.restore_parameters({"count": 30, "steps": 240})
    draws = []
    original = panel.psnr_curve.setData
    monkeypatch.setattr(panel.psnr_curve, "setData", lambda *a, **k: (draws.append(time.monotonic()), original(*a, **k)))
    started = time.monotonic()
    panel.start_fit()
    qtbot.waitUntil(lambda: panel.fit_result is not None, timeout=120000)
    seconds = time.monotonic() - started
    steps = [h["step"] for h in panel._history]
    assert len(steps) >= 10  # the fit reported its steps (a preview every few steps)
    assert len(draws) <= 3 + seconds * 1000 / live_plot.REDRAW_INTERVAL_MS  # start, end, and one per interval
    x, _y = panel.psnr_curve.getData()
    assert list(x) == steps
    (x0, x1), (y0, y1) = panel.plot.getViewBox().viewRange()
    assert (x0, x1) == (0, 240)  # the fit's steps, known at the start
    psnr = [h["psnr"] for h in panel._history]
    assert y0 <= min(psnr) and max(psnr) <= y1 and (max(psnr) - min(psnr)) >= 0.3 * (y1 - y0)
    (_lx0, _lx1), (l0, l1) = panel.loss_box.viewRange()
    loss = [h["loss"] for h in panel._history]
    assert l0 <= min(loss) and max(loss) <= l1
    assert panel.psnr_view.y.changes + panel.loss_view.y.changes < len(draws)  # not a new range per redraw


def test_fit_plot_keeps_its_size_when_the_curves_appear(panel, qtbot):
    """The empty state's title gives way to a caption of the same height: the plot is not resized when
    the first curves show (a resize repaints every cached axis and its grid on the GUI thread)."""
    from panels.render.panel import FIT_PLOT_CAPTION, FIT_PLOT_EMPTY

    panel.resize(1000, 700)
    panel.show()
    panel.tabs.setCurrentIndex(1)
    panel.receive("image", np.full((16, 16, 3), 90, np.uint8))
    panel.restore_parameters({"count": 20, "steps": 30})
    qtbot.wait(100)
    box = panel.plot.getViewBox()
    before = box.size()
    assert panel.plot.plotItem.titleLabel.text == FIT_PLOT_EMPTY
    resized = []
    box.sigResized.connect(lambda *_: resized.append(box.size()))
    panel.start_fit()
    qtbot.waitUntil(lambda: panel.fit_result is not None, timeout=120000)
    qtbot.wait(100)
    assert panel.plot.plotItem.titleLabel.text == FIT_PLOT_CAPTION
    assert box.size() == before and resized == []


def test_fit_cancel(panel, qtbot):
    panel.receive("image", np.zeros((16, 16, 3), np.uint8))
    panel.restore_parameters({"count": 20, "steps": 100000})
    panel.start_fit()
    qtbot.waitUntil(lambda: len(panel._history) > 0, timeout=30000)
    panel.cancel_fit()
    assert panel.services.jobs.wait_all(30)
    qtbot.waitUntil(lambda: panel.fit_handle is None, timeout=5000)
    assert panel.fit_result is None and panel.fit_status.text() == "Cancelled."


def test_still_and_exports(panel, scene_path, tmp_path):
    open_and_wait(panel, scene_path)
    with pytest.raises(OpenError, match="still"):
        panel.export(str(tmp_path / "a.png"))
    panel.restore_parameters({"still_scale": 0.1})
    panel.render_still()
    assert panel.services.jobs.wait_all(60)
    assert panel.still is not None and panel.still.shape == (60, 80, 3)
    assert panel.still.max() > 0.3  # the ball is visible
    png = panel.export(str(tmp_path / "a.png"))
    prov = read_provenance(png)
    assert prov["panel"] == "render" and prov["parameters"]["camera"]["width"] == 80
    panel.select_rect(0, 0, 400, 600)
    panel.delete_selected()
    ply = panel.export(str(tmp_path / "edited.ply"))
    assert len(load_ply(ply)) == len(panel.scene) < 200
    assert "Delete" in read_provenance(ply)["parameters"]["edits"][-1]
    with pytest.raises(FileExistsErrorNoForce):
        panel.export(str(tmp_path / "edited.ply"))  # exists, no force


@pytest.mark.gl
def test_gl_viewer(panel, scene_path, qtbot):
    shown_gl_render_panel(panel, scene_path)
    qtbot.wait(50)
    assert panel.canvas.settle()  # OpenGL splats sorted, or the full CPU frame (software OpenGL) shown
    qtbot.waitUntil(lambda: panel.canvas.gl_renderer is not None)
    qtbot.wait(20)
    assert ("view: CPU frames" in panel.stats_label.text()) == panel.canvas.cpu_mode
    image = panel.canvas.canvas.render()
    assert image[..., :3].max() > 50  # splats drawn
    K, view = panel.canvas.camera_matrices()
    centre, _ = scene_frame(panel.scene.means.numpy())
    t = view[:3, :3] @ centre + view[:3, 3]
    u, v = K[0, 0] * t[0] / t[2] + K[0, 2], K[1, 1] * t[1] / t[2] + K[1, 2]
    w, h = panel.canvas.canvas.size
    assert abs(u - w / 2) < 2 and abs(v - h / 2) < 2  # frame-all centres the scene
    # the OpenGL splats match the exact rasterizer from the same camera
    from engines.jobs import run_job
    from engines.render.still import still_job

    panel.canvas.view.camera.azimuth = 120
    panel.canvas.view.camera.elevation = 20
    qtbot.wait(20)
    assert panel.canvas.settle()
    gl = panel.canvas.canvas.render()[..., :3].astype(np.float64) / 255
    exact = run_job(still_job(panel.scene, panel.view_camera(), "classic", (0, 0, 0), 1))  # view-dependent SH
    assert gl.shape == exact.shape
    from engines.render.camera import Camera

    cam = panel.view_camera()
    shifted = Camera(cam.K.clone(), cam.viewmat.clone(), cam.width, cam.height)
    shifted.K[0, 2] += 25  # the same view moved 25 px sideways
    other = run_job(still_job(panel.scene, shifted, "classic", (0, 0, 0), 1))
    same_err, other_err = np.abs(gl - exact).mean(), np.abs(gl - other).mean()
    assert same_err < 0.04 and same_err < 0.5 * other_err and exact.mean() > 0.02  # 8-bit blending rounding
    n = panel.select_rect(0, 0, w, h)
    assert n == len(panel.scene)
    # mouse-driven lasso and box on the canvas widget
    from qtpy.QtCore import QEvent, QPointF, Qt
    from qtpy.QtGui import QMouseEvent

    def mouse(kind, x, y, button=Qt.LeftButton):
        return QMouseEvent(kind, QPointF(x, y), QPointF(x, y), button, Qt.LeftButton, Qt.NoModifier)

    native = panel.canvas.native
    panel.lasso_button.setChecked(True)
    assert not panel.canvas.view.camera.interactive
    for kind, x, y in [(QEvent.MouseButtonPress, 0, 0), (QEvent.MouseMove, w / 2, 0), (QEvent.MouseMove, w / 2, h),
                       (QEvent.MouseMove, 0, h), (QEvent.MouseButtonRelease, 0, h)]:
        assert panel._lasso.eventFilter(native, mouse(kind, x, y))
    ratio = native.devicePixelRatioF()
    half = panel.selection.sum()
    assert 0 < half < len(panel.scene)
    panel.box_button.setChecked(True)
    assert not panel.lasso_button.isChecked()
    for kind, x, y in [(QEvent.MouseButtonPress, 0, 0), (QEvent.MouseMove, w / ratio, h / ratio),
                       (QEvent.MouseButtonRelease, w / ratio, h / ratio)]:
        assert panel._filter.eventFilter(native, mouse(kind, x, y))
    assert panel.selection.sum() == len(panel.scene)
    panel.box_button.setChecked(False)
    assert panel.canvas.view.camera.interactive
    # fly forward (W): the camera centre moves along the view direction
    _, before = panel.canvas.camera_matrices()
    eye0 = -before[:3, :3].T @ before[:3, 3]
    panel.canvas.fly(0, 0, 1)
    _, after = panel.canvas.camera_matrices()
    eye1 = -after[:3, :3].T @ after[:3, 3]
    move = eye1 - eye0
    assert np.linalg.norm(move) > 0 and np.dot(move / np.linalg.norm(move), before[2, :3]) > 0.999
    panel.sh_degree.setValue(0)
    panel.point_size.setValue(2.0)
    panel.set_background((1, 1, 1))
    panel.canvas.canvas.close()


def test_fit_posed_views_spheres(panel, qtbot, tmp_path):
    from engines.render.camera import fibonacci_cameras
    from engines.render.synthetic import render_views, save_views

    truth = sphere_scene(60, footprint=0.2)
    cams = fibonacci_cameras(3, 3.5, width=20, height=20)
    folder = save_views(tmp_path / "views", render_views(truth, cams), cams)
    with pytest.raises(OpenError, match="cameras.json"):
        open_and_wait(panel, tmp_path)
    handle = panel.set_fit_views(str(folder))  # read by a job on the io lane, behind the loading card
    assert handle is not None and handle.record.device == "io" and panel.loading
    assert panel.services.jobs.wait_all(60) and not panel.loading
    assert "3 posed views" in panel.fit_status.text() and panel.tabs.currentIndex() == 1
    panel.restore_parameters({"primitive": "spheres", "count": 30, "steps": 12})
    panel.start_fit()
    assert panel.services.jobs.wait_all(120)
    qtbot.waitUntil(lambda: panel.fit_result is not None, timeout=10000)
    assert len(panel.fit_result.cameras) == 3 and panel.fit_result.mode == "views"
    fitted = len(panel.fit_result.scene.centres)  # 30 at the start, then sphere density control
    assert panel.fit_result.history[0]["count"] == 30 and panel.fit_result.history[-1]["count"] == fitted
    panel.open_fit_in_viewer()
    assert len(panel.scene) == fitted


def test_opened_photo_becomes_fit_target(panel, tmp_path):
    from PIL import Image

    photo = tmp_path / "photo.png"
    pixels = (np.arange(40 * 30 * 3) % 251).astype(np.uint8).reshape(40, 30, 3)
    Image.fromarray(pixels).save(photo)
    scene_before = len(panel.scene)
    open_and_wait(panel, photo)
    assert panel.fit_target is not None and np.array_equal(panel.fit_target[0], pixels)
    assert panel.tabs.currentIndex() == 1 and len(panel.scene) == scene_before
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    with pytest.raises(OpenError, match="not a readable image"):
        open_and_wait(panel, broken)
    assert np.array_equal(panel.fit_target[0], pixels)


@pytest.mark.gl
@pytest.mark.parametrize("ratio", [1.0, 2.0])
def test_mouse_box_and_lasso_select_what_was_dragged_on_hidpi(panel, scene_path, qtbot, monkeypatch, ratio):
    """A box or lasso dragged with the mouse selects the splats whose centres project inside it, in
    the view camera's (logical) pixels, on a screen of any pixel ratio: a HiDPI screen (ratio 2,
    simulated) selected a region twice as large before."""
    from qtpy.QtCore import QPoint, Qt
    from qtpy.QtTest import QTest

    shown_gl_render_panel(panel, scene_path)
    qtbot.waitUntil(lambda: panel.canvas.native.isVisible(), timeout=5000)
    view = panel.canvas.native
    monkeypatch.setattr(type(view), "devicePixelRatioF", lambda self: ratio)
    w, h = view.width(), view.height()
    u, v, front = panel._project_means()
    panel.box_button.setChecked(True)
    a, b = QPoint(w // 4, h // 4), QPoint(w // 2, 3 * h // 4)
    QTest.mousePress(view, Qt.LeftButton, Qt.NoModifier, a)
    QTest.mouseMove(view, b)
    QTest.mouseRelease(view, Qt.LeftButton, Qt.NoModifier, b)
    box = front & (u >= a.x()) & (u <= b.x()) & (v >= a.y()) & (v <= b.y())
    assert 0 < box.sum() < len(box) and np.array_equal(panel.selection, box)
    panel.lasso_button.setChecked(True)
    tri = [QPoint(w // 2, h // 8), QPoint(7 * w // 8, h // 2), QPoint(w // 2, 7 * h // 8)]
    QTest.mousePress(view, Qt.LeftButton, Qt.NoModifier, tri[0])
    for p in tri[1:]:
        QTest.mouseMove(view, p)
    QTest.mouseRelease(view, Qt.LeftButton, Qt.NoModifier, tri[-1])
    from skimage.measure import points_in_poly

    lasso = front & points_in_poly(np.stack([np.nan_to_num(u, nan=-1e9), np.nan_to_num(v, nan=-1e9)], 1),
                                   np.array([(p.x(), p.y()) for p in tri], float))
    assert 0 < lasso.sum() < len(lasso) and np.array_equal(panel.selection, lasso)
