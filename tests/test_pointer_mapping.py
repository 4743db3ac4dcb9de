"""Every place a pointer position becomes a data coordinate, at device pixel ratio 1 and 2: real mouse
events at the place where a marker is DRAWN (found in screenshots) must reach that marker's data (the
voxel, the TF value, the image pixel). Ratio-2 cases run in one subprocess with ``QT_SCALE_FACTOR=2``
(``test_pointer_cases_pass_at_pixel_ratio_2``); run the file with ``QT_SCALE_FACTOR=2`` to see them one by one."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from qtpy.QtWidgets import QApplication

from tests.pointer_helpers import click, double_click, drag, footprint, hover, screenshot

RATIOS = [pytest.param(1, id="ratio1"), pytest.param(2, id="ratio2")]
#: fractions of a marker's on-screen box the pointer visits: both halves of a pixel
INSIDE = [(0.2, 0.2), (0.8, 0.8), (0.2, 0.8), (0.8, 0.2)]


@pytest.fixture
def ratio(request, qapp):
    """The device pixel ratio the case asks for; skipped unless the application runs at it."""
    have = qapp.devicePixelRatio()
    if have != request.param:
        pytest.skip(f"runs at pixel ratio {request.param} (this process: {have})")
    return request.param


def test_pointer_cases_pass_at_pixel_ratio_2(qapp):
    """The ratio-2 cases of this file, run in a process whose screens have pixel ratio 2."""
    if qapp.devicePixelRatio() == 2:
        pytest.skip("this process runs them itself")
    env = dict(os.environ, QT_SCALE_FACTOR="2")
    root = Path(__file__).resolve().parents[1]
    run = subprocess.run([sys.executable, "-m", "pytest", str(Path(__file__)), "-q", "-p", "no:cacheprovider",
                          "-k", "ratio2", "-W", "ignore"], cwd=root, env=env, capture_output=True, text=True, check=False,
                         timeout=300)
    tail = run.stdout[-3000:] + run.stderr[-1000:]
    assert run.returncode == 0, tail
    summary = run.stdout.strip().splitlines()[-1]  # every case ran at ratio 2: none skipped
    assert re.search(r"\b([1-9]\d+) passed", summary) and "skipped" not in summary, tail


# ---------------------------------------------------------------------------------------------- Volume
@pytest.fixture
def volume_panel(make_panel, qtbot):
    from engines.volume.model import Volume
    from panels.volume import VolumePanel

    panel = make_panel(VolumePanel)
    panel.resize(1100, 800)
    panel.show()
    data = np.zeros((14, 18, 22), np.float32)
    data[0, 0, 0] = 100.0  # the value range is [0, 100] whatever the marker does
    panel.set_volume(Volume(data, spacing=(1.5, 1.0, 0.8)), None)
    qtbot.waitUntil(lambda: panel.updatesEnabled(), timeout=5000)
    return panel


def _marker_footprint(panel, axis, voxel):
    """Where the slice view of ``axis`` draws ``voxel`` (the cursor moved off it first)."""
    view = panel.slice_views[axis]
    cursor = [(v + 5) % n for v, n in zip(voxel, panel.volume.shape)]
    cursor[axis] = voxel[axis]
    panel.set_cursor(*cursor)

    def brighten():
        panel.volume.data[voxel] = 100.0
        panel.update_slices()

    box = footprint(view, brighten)
    return view, box, cursor


@pytest.mark.parametrize("ratio", RATIOS, indirect=True)
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_slice_click_moves_the_cursor_to_the_voxel_drawn_under_the_pointer(volume_panel, ratio, axis):
    panel = volume_panel
    voxel = (9, 6, 13)
    view, box, cursor = _marker_footprint(panel, axis, voxel)
    assert min(box.size()) > 4  # a voxel is several screen pixels: both of its halves are tried
    for fx, fy in INSIDE:
        panel.set_cursor(*cursor)
        click(view.viewport(), box.point(fx, fy))
        assert tuple(panel.cursor) == voxel, (fx, fy)


@pytest.mark.parametrize("ratio", RATIOS, indirect=True)
@pytest.mark.parametrize("axis", [0, 2])
def test_paint_brush_paints_the_voxel_drawn_under_the_pointer(volume_panel, ratio, axis):
    panel = volume_panel
    voxel = (8, 11, 7)
    view, box, _cursor = _marker_footprint(panel, axis, voxel)
    panel.paint_check.setChecked(True)
    panel.brush_spin.setValue(0)
    for fx, fy in INSIDE:
        click(view.viewport(), box.point(fx, fy))
    painted = {tuple(v) for voxels in panel.strokes.voxels.values() for v in voxels}
    assert painted == {voxel}
    panel.brush_spin.setValue(2)  # a disc of radius 2 in the slice plane around the voxel
    click(view.viewport(), box.point(0.8, 0.8))
    free = [a for a in range(3) if a != axis]
    disc = set()
    for du in range(-2, 3):
        for dv in range(-2, 3):
            if du * du + dv * dv <= 4:
                v = list(voxel)
                v[free[0]] += du
                v[free[1]] += dv
                disc.add(tuple(v))
    painted = {tuple(v) for voxels in panel.strokes.voxels.values() for v in voxels}
    assert painted == disc


@pytest.mark.parametrize("ratio", RATIOS, indirect=True)
def test_paint_drag_paints_a_continuous_stroke_from_press_to_release(volume_panel, ratio):
    """A drag paints the voxel under the press, the one under the release and every voxel between
    (a pointer moved fast skipped voxels, and the stroke began where the drag was noticed)."""
    panel = volume_panel
    a, b = (8, 2, 3), (8, 15, 19)
    view, box_a, _ = _marker_footprint(panel, 0, a)
    _view, box_b, _ = _marker_footprint(panel, 0, b)
    panel.paint_check.setChecked(True)
    panel.brush_spin.setValue(0)
    drag(view.viewport(), box_a.point(), box_b.point(), steps=3)
    painted = {tuple(v) for voxels in panel.strokes.voxels.values() for v in voxels}
    assert a in painted and b in painted
    yx = np.array([(y, x) for _z, y, x in painted], float)
    d = np.array(b[1:], float) - np.array(a[1:])
    off_line = np.abs(np.cross(d, yx - np.array(a[1:]))) / np.linalg.norm(d)
    assert off_line.max() <= 1.0  # along the segment
    rows = {int(y) for y, _x in yx}
    cols = {int(x) for _y, x in yx}
    assert rows == set(range(a[1], b[1] + 1)) and cols == set(range(a[2], b[2] + 1))  # no gap


# ---------------------------------------------------------------------------------------------- TF editor
@pytest.mark.parametrize("ratio", RATIOS, indirect=True)
def test_tf_point_drag_lands_on_the_value_and_opacity_under_the_pointer(qtbot, ratio):
    from engines.volume.tf import TransferFunction1D
    from panels.volume.tf_editor import TFEditor

    editor = TFEditor()
    qtbot.addWidget(editor)
    editor.resize(600, 300)
    editor.show()
    editor.set_tf(TransferFunction1D(opacity=[(0.0, 0.0), (300.0, 0.2), (1000.0, 1.0)]))
    editor.set_histogram_counts(np.ones(16), np.linspace(0.0, 1000.0, 17))
    plot = editor.plot
    start = _dot_footprint(plot, 300.0, 0.2)
    target = _dot_footprint(plot, 640.0, 0.7)
    changes = []
    editor.tf_changed.connect(lambda tf, final: changes.append(final))
    drag(plot.viewport(), start.point(), target.point())
    assert changes and changes[-1] is True  # the release ended the drag
    per_px = _data_per_pixel(plot)
    x, alpha = editor.tf().opacity[1]
    assert abs(x - 640.0) <= 1.5 * per_px[0] and abs(alpha - 0.7) <= 1.5 * per_px[1], (x, alpha, per_px)


def _dot_footprint(plot, x, y):
    """Where a dot at data (x, y) of ``plot`` is drawn (a reference item, removed afterwards)."""
    import pyqtgraph as pg

    dot = pg.ScatterPlotItem([x], [y], size=5, pen=None, brush=(0, 255, 0))
    box = footprint(plot, lambda: plot.addItem(dot))
    plot.removeItem(dot)
    return box


def _data_per_pixel(plot):
    """Data units per logical pixel along x and y of ``plot``'s view."""
    vb = plot.getPlotItem().vb
    (x0, x1), (y0, y1) = vb.viewRange()
    return (x1 - x0) / vb.width(), (y1 - y0) / vb.height()


@pytest.mark.parametrize("ratio", RATIOS, indirect=True)
@pytest.mark.parametrize("kind", ["rect", "gauss"])
def test_tf2d_widget_drag_moves_it_to_where_it_was_dropped(qtbot, ratio, kind):
    from panels.volume.tf2d_editor import TF2DEditor

    editor = TF2DEditor()
    qtbot.addWidget(editor)
    editor.resize(600, 400)
    editor.show()
    counts = np.random.default_rng(4).random((64, 32))
    editor.set_histogram(counts, np.linspace(-100.0, 900.0, 65), np.linspace(0.0, 50.0, 33))
    editor.add_widget(kind, center=(200.0, 20.0), size=(60.0, 4.0))
    qtbot.waitExposed(editor)
    qtbot.wait(300)  # the first paints and layout settle before the screenshots that find the handle
    changes = []
    editor.changed.connect(lambda tf2d: changes.append(tf2d.widgets[0].center))
    start = _dot_footprint(editor.plot, 200.0, 20.0)
    target = _dot_footprint(editor.plot, 520.0, 31.0)
    drag(editor.plot.viewport(), start.point(), target.point())
    assert changes, "the drag did not reach the widget"
    (v, g), per_px = editor.tf2d.widgets[0].center, _data_per_pixel(editor.plot)
    assert abs(v - 520.0) <= 2 * per_px[0] and abs(g - 31.0) <= 2 * per_px[1], (v, g, per_px)
    assert editor.tf2d.widgets[0].size == pytest.approx((60.0, 4.0))  # moved, not resized


@pytest.mark.parametrize("ratio", RATIOS, indirect=True)
def test_tf_double_click_adds_and_right_click_deletes_the_point_under_the_pointer(qtbot, ratio):
    from qtpy.QtCore import Qt

    from engines.volume.tf import TransferFunction1D
    from panels.volume.tf_editor import COLOR_STRIP_Y, TFEditor

    editor = TFEditor()
    qtbot.addWidget(editor)
    editor.resize(600, 300)
    editor.show()
    editor.set_tf(TransferFunction1D(opacity=[(0.0, 0.0), (300.0, 0.2), (700.0, 0.6), (1000.0, 1.0)],
                                     color=[(0.0, 0.0, 0.0, 0.0), (1000.0, 1.0, 1.0, 1.0)]))
    editor.set_histogram_counts(np.ones(16), np.linspace(0.0, 1000.0, 17))
    plot = editor.plot
    per_px = _data_per_pixel(plot)
    spot = _dot_footprint(plot, 450.0, 0.35)
    double_click(plot.viewport(), spot.point())
    added = [p for p in editor.tf().opacity if p not in [(0.0, 0.0), (300.0, 0.2), (700.0, 0.6), (1000.0, 1.0)]]
    assert len(added) == 1 and abs(added[0][0] - 450.0) <= 1.5 * per_px[0] and abs(added[0][1] - 0.35) <= 1.5 * per_px[1]
    strip = _dot_footprint(plot, 820.0, COLOR_STRIP_Y)
    double_click(plot.viewport(), strip.point())
    xs = [p[0] for p in editor.tf().color]
    assert len(xs) == 3 and abs(sorted(xs)[1] - 820.0) <= 1.5 * per_px[0]
    point = _dot_footprint(plot, 700.0, 0.6)
    click(plot.viewport(), point.point(), Qt.MouseButton.RightButton)
    assert (700.0, 0.6) not in editor.tf().opacity and len(editor.tf().opacity) == 4  # that one, only


# ---------------------------------------------------------------------------------------------- Codec
def _compare_view(qtbot, mode: str):
    from panels.codec.widgets import CompareView

    view = CompareView()
    qtbot.addWidget(view)
    view.resize(900, 500)
    view.show()
    rng = np.random.default_rng(3)
    a = rng.integers(0, 200, (30, 44, 3), dtype=np.uint8)
    b = rng.integers(0, 200, (30, 44, 3), dtype=np.uint8)
    view.mode.setCurrentText(mode)
    view.set_pair(a, b, "A", "B")
    w = a.shape[1]

    def fitted():  # the layout settles over a few event-loop turns: fit until the image stays fitted
        view.fit()
        for _ in range(3):
            QApplication.processEvents()
        (x0, x1), _ = view.view_a.viewRange()
        return view.view_a.width() > 100 and x0 <= 0 and w <= x1 < 3 * w

    qtbot.waitUntil(fitted)
    return view, a, b


@pytest.mark.parametrize("ratio", RATIOS, indirect=True)
def test_codec_hover_reads_out_the_pixel_drawn_under_the_pointer(qtbot, ratio):
    view, a, b = _compare_view(qtbot, "Side by side")
    y, x = 17, 9
    marked = a.copy()
    marked[y, x] = (255, 255, 255)
    box = footprint(view.canvas, lambda: view.set_pair(marked, b, "A", "B"))
    assert min(box.size()) > 4
    for fx, fy in INSIDE:
        view.readout.setText("")
        hover(view.canvas.viewport(), box.point(fx, fy))
        qtbot.waitUntil(lambda: view.readout.text() != "", timeout=2000)
        text = view.readout.text()
        assert text.startswith(f"x {x}, y {y}   A = (255, 255, 255)   B = {tuple(int(v) for v in b[y, x])}"), (fx, fy, text)


@pytest.mark.parametrize("ratio", RATIOS, indirect=True)
def test_codec_divider_drag_splits_at_the_image_column_under_the_pointer(qtbot, ratio):
    view, a, b = _compare_view(qtbot, "Split")
    line = footprint(view.canvas, lambda: view.divider.setVisible(False))
    view.divider.setVisible(True)
    marked = a.copy()
    column = 12
    marked[5, column] = (255, 255, 255)
    box = footprint(view.canvas, lambda: view.set_pair(marked, b, "A", "B"))
    for fx, want in ((0.25, column), (0.75, column + 1)):  # the divider goes to the nearest pixel boundary
        drag(view.canvas.viewport(), line.point(), box.point(fx, 0.5))
        assert view._split_x() == want, fx
        composite = view.composite()
        np.testing.assert_array_equal(composite[:, :want], marked[:, :want])
        np.testing.assert_array_equal(composite[:, want:], b[:, want:])
        line = footprint(view.canvas, lambda: view.divider.setVisible(False))
        view.divider.setVisible(True)


@pytest.mark.parametrize("ratio", RATIOS, indirect=True)
def test_codec_canvas_click_and_hover_report_the_pixel_drawn_under_the_pointer(qtbot, ratio):
    """The Codec canvas's clicked / hovered positions (block picking floors them by the block size)."""
    from panels.codec.widgets import ImageCanvas

    canvas = ImageCanvas()
    qtbot.addWidget(canvas)
    canvas.resize(700, 500)
    canvas.show()
    image = np.random.default_rng(5).integers(0, 200, (36, 52, 3), dtype=np.uint8)
    canvas.set_image(image)
    qtbot.waitUntil(lambda: canvas.view.viewRange()[0][1] >= 52 and canvas.view.viewRange()[0][1] < 100)
    y, x = 29, 41
    marked = image.copy()
    marked[y, x] = 255
    box = footprint(canvas, lambda: canvas.set_image(marked))
    clicks, hovers = [], []
    canvas.clicked.connect(lambda px, py: clicks.append((px, py)))
    canvas.hovered.connect(lambda px, py: hovers.append((px, py)))
    for fx, fy in INSIDE:
        hover(canvas.viewport(), box.point(fx, fy))
        qtbot.waitUntil(lambda: len(hovers) > 0, timeout=2000)
        click(canvas.viewport(), box.point(fx, fy))
        assert (math.floor(clicks[-1][0]), math.floor(clicks[-1][1])) == (x, y), (fx, fy, clicks[-1])
        assert (math.floor(hovers[-1][0]), math.floor(hovers[-1][1])) == (x, y), (fx, fy, hovers[-1])
        hovers.clear()


# ---------------------------------------------------------------------------------------------- Generate
def _recorded_paint_positions(canvas, monkeypatch) -> list:
    """The image positions ``canvas.paint_at`` is called with from now on (it still paints)."""
    at = []
    paint_at = canvas.paint_at
    monkeypatch.setattr(canvas, "paint_at", lambda x, y, *args: (at.append((x, y)), paint_at(x, y, *args)))
    return at


@pytest.mark.parametrize("ratio", RATIOS, indirect=True)
@pytest.mark.parametrize("shape", [(30, 40), (47, 29)])
def test_mask_brush_paints_the_image_pixel_drawn_under_the_pointer(qtbot, monkeypatch, ratio, shape):
    from panels.generate.widgets import MaskCanvas

    canvas = MaskCanvas()
    qtbot.addWidget(canvas)
    canvas.show()
    image = np.full(shape + (3,), 90, np.uint8)
    canvas.set_image(image)
    y, x = shape[0] - 8, 5
    marked = image.copy()
    marked[y, x] = 255
    box = footprint(canvas, lambda: canvas.set_image(marked))
    canvas.mode, canvas.brush = "mask", 1.0
    at = _recorded_paint_positions(canvas, monkeypatch)
    for fx, fy in INSIDE:
        canvas.set_mask(None)
        click(canvas, box.point(fx, fy))
        assert (math.floor(at[-1][0]), math.floor(at[-1][1])) == (x, y), (fx, fy, at[-1])
        assert canvas.mask()[y, x] == 1.0


@pytest.mark.parametrize("ratio", RATIOS, indirect=True)
def test_mask_brush_on_a_large_image_paints_the_block_drawn_under_the_pointer(qtbot, monkeypatch, ratio):
    """A 1500×1100 image in the 180 px canvas (one screen pixel shows several image pixels): a click
    on a 40-pixel white square, as drawn, paints inside that square."""
    from panels.generate.widgets import MaskCanvas

    canvas = MaskCanvas()
    qtbot.addWidget(canvas)
    canvas.show()
    image = np.full((1100, 1500, 3), 90, np.uint8)
    canvas.set_image(image)
    marked = image.copy()
    marked[700:740, 300:340] = 255
    box = footprint(canvas, lambda: canvas.set_image(marked))
    canvas.mode, canvas.brush = "mask", 2.0
    at = _recorded_paint_positions(canvas, monkeypatch)
    for fx, fy in INSIDE:
        click(canvas, box.point(fx, fy))
        assert 300 <= at[-1][0] < 340 and 700 <= at[-1][1] < 740, (fx, fy, at[-1])
    painted = np.argwhere(canvas.mask() > 0)
    assert painted.min(0).tolist() >= [698, 298] and painted.max(0).tolist() <= [741, 341]


@pytest.mark.parametrize("ratio", RATIOS, indirect=True)
def test_generate_pictures_have_one_pixel_per_device_pixel(qtbot, ratio):
    """The result view and the history thumbnails are drawn at the screen's resolution (a pixmap of
    logical size is enlarged again on a HiDPI screen: blurry)."""
    from qtpy.QtCore import QSize

    from panels.generate.widgets import HistoryStrip, ImageView

    image = np.random.default_rng(6).integers(0, 255, (300, 400, 3), dtype=np.uint8)
    view = ImageView()
    qtbot.addWidget(view)
    view.resize(408, 308)
    view.set_image(image)
    pix = view.pixmap()
    assert pix.devicePixelRatio() == ratio and pix.size() == QSize(400, 300) * ratio
    strip = HistoryStrip()
    qtbot.addWidget(strip)
    icon = strip.add(image, "#1", "", 0).icon()
    best = icon.pixmap(strip.iconSize(), ratio)
    assert best.size() == QSize(72, 54) * ratio


# ---------------------------------------------------------------------------------------------- Render
#: the Render view's CPU frames need an OpenGL context (xvfb-run): their ratio-2 case runs in a subprocess
#: of its own (``test_render_cpu_frame_passes_at_pixel_ratio_2``), not among the ratio2 cases above
GL_RATIOS = [pytest.param(1, id="gl-dpr1"), pytest.param(2, id="gl-dpr2")]


def test_render_cpu_frame_passes_at_pixel_ratio_2(qapp):
    """The Render CPU-frame case at pixel ratio 2, in a process whose screens have pixel ratio 2."""
    from qtpy.QtGui import QGuiApplication

    if qapp.devicePixelRatio() == 2:
        pytest.skip("this process runs it itself")
    if QGuiApplication.platformName() in ("offscreen", "minimal"):
        pytest.skip("no OpenGL context (run under xvfb-run)")
    env = dict(os.environ, QT_SCALE_FACTOR="2")
    run = subprocess.run([sys.executable, "-m", "pytest", str(Path(__file__)), "-q", "-p", "no:cacheprovider",
                          "-k", "gl-dpr2", "-W", "ignore"], cwd=Path(__file__).resolve().parents[1], env=env,
                         capture_output=True, text=True, check=False, timeout=300)
    tail = run.stdout[-3000:] + run.stderr[-1000:]
    assert run.returncode == 0 and re.search(r"\b1 passed", run.stdout) and "skipped" not in run.stdout, tail


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / max(np.mean((a - b) ** 2), 1e-12)))


def _show_splats(canvas, scene, marker: bool) -> None:
    """``scene`` in ``canvas`` and, when ``marker``, one more small white splat at the world origin
    side of the sphere facing the camera; waits for the full CPU frame and draws it."""
    import torch

    from engines.render.project import covariance_3d
    from engines.render.scene import Gaussians

    extra = Gaussians.from_activated(torch.tensor([[0.05, -0.1, -1.02]]), torch.tensor([[0.012, 0.012, 0.004]]),
                                     torch.tensor([[1.0, 1.0, 1.0]]), torch.tensor([1.0 if marker else 0.0]))
    means = torch.cat([scene.means, extra.means])
    covs = torch.cat([covariance_3d(scene.quats, scene.scales), covariance_3d(extra.quats, extra.scales)])
    colors = torch.cat([torch.cat([scene.rgb, scene.opacities[:, None]], 1), torch.cat([extra.rgb, extra.opacities[:, None]], 1)])
    frame = canvas.scene_frame() if len(canvas.positions) else None
    canvas.set_splats(means.numpy(), colors.numpy(), covs.numpy(), np.zeros(len(means), bool), frame=frame)
    assert canvas.settle()
    canvas.widget.draw_now()


@pytest.mark.gl
@pytest.mark.parametrize("ratio", GL_RATIOS, indirect=True)
def test_render_cpu_frame_is_rendered_and_drawn_in_device_pixels(qapp, ratio):
    """With a software OpenGL the Render view shows CPU frames: the full frame is rendered at the
    view's device pixels (logical size × ratio), equals the exact rasterizer at that camera and size,
    and is on screen 1:1; a splat is picked (logical pixels, the view camera) where it is drawn."""
    import torch
    from qtpy.QtGui import QGuiApplication

    from engines.render.camera import Camera
    from engines.render.still import still_job
    from engines.render.synthetic import sphere_scene

    if QGuiApplication.platformName() in ("offscreen", "minimal"):
        pytest.skip("no OpenGL context (run under xvfb-run)")
    from engines.jobs import run_job
    from panels.render.viewer import SplatCanvas

    scene = sphere_scene(1500, footprint=0.02, sh_degree=0)  # fine detail: a frame enlarged 2x loses it
    canvas = SplatCanvas(renderer="cpu")
    canvas.widget.resize(320, 240)
    canvas.widget.show()
    QApplication.processEvents()
    _show_splats(canvas, scene, marker=False)
    canvas.frame_all()
    assert canvas.settle() and canvas.cpu_mode
    canvas.widget.draw_now()
    w, h = canvas.canvas.size
    frame = canvas.last_frame
    assert (w, h) == (320, 240) and frame.shape == (h * ratio, w * ratio, 3)
    K, view = canvas.camera_matrices()  # logical pixels: what box / lasso selection project with
    device = K.copy()
    device[:2] *= ratio
    exact = run_job(still_job(scene, Camera(torch.from_numpy(device), torch.from_numpy(view), w * ratio, h * ratio),
                              "classic", (0.0, 0.0, 0.0), 0))
    drawn = frame.astype(np.float64) / 255
    print(f"ratio {ratio}: CPU frame vs exact {_psnr(drawn, exact):.1f} dB")
    assert _psnr(drawn, exact) >= 30
    if ratio == 2:  # what the view drew before: the frame of the logical size, enlarged
        small = run_job(still_job(scene, Camera(torch.from_numpy(K), torch.from_numpy(view), w, h), "classic",
                                  (0.0, 0.0, 0.0), 0))
        print(f"logical-size frame enlarged 2x vs exact {_psnr(small.repeat(2, 0).repeat(2, 1), exact):.1f} dB")
        assert _psnr(small.repeat(2, 0).repeat(2, 1), exact) < _psnr(drawn, exact) - 5
    shot, shot_ratio = screenshot(canvas.widget)
    assert shot_ratio == ratio and shot.shape == frame.shape
    assert np.abs(shot.astype(int) - frame).max() <= 2  # drawn 1:1, not resampled
    box = footprint(canvas.widget, lambda: _show_splats(canvas, scene, marker=True))
    K, view = canvas.camera_matrices()
    t = view[:3, :3] @ np.array([0.05, -0.1, -1.02]) + view[:3, 3]
    u, v = K[0, 0] * t[0] / t[2] + K[0, 2], K[1, 1] * t[1] / t[2] + K[1, 2]
    assert box.x0 / ratio <= u <= box.x1 / ratio and box.y0 / ratio <= v <= box.y1 / ratio, (u, v, box.__dict__)
    assert max(box.size()) < 20
    canvas.widget.hide()
    canvas.canvas.close()


@pytest.mark.parametrize("ratio", RATIOS, indirect=True)
def test_render_view_without_opengl_draws_device_pixels(qapp, ratio):
    """The CPU view without any OpenGL (a plain widget): the full frame is rendered at the device
    pixels, equals the exact rasterizer there, and its pixmap is drawn 1:1 (pixel ratio set)."""
    import torch

    from engines.jobs import run_job
    from engines.render.camera import Camera
    from engines.render.project import covariance_3d
    from engines.render.still import still_job
    from engines.render.synthetic import sphere_scene
    from panels.render.cpu_canvas import CpuCanvas

    scene = sphere_scene(800, footprint=0.03, sh_degree=0)
    canvas = CpuCanvas()
    canvas.widget.resize(240, 180)
    canvas.widget.show()
    QApplication.processEvents()
    colors = torch.cat([scene.rgb, scene.opacities[:, None]], 1).numpy()
    canvas.set_splats(scene.means.numpy(), colors, covariance_3d(scene.quats, scene.scales).numpy(),
                      np.zeros(len(scene), bool))
    canvas.frame_all()
    assert canvas.settle()
    w, h = canvas.size
    assert (w, h) == (240, 180) and canvas.last_frame.shape == (h * ratio, w * ratio, 3)
    pixmap = canvas.widget.pixmap()
    assert pixmap.devicePixelRatio() == ratio and (pixmap.width(), pixmap.height()) == (w * ratio, h * ratio)
    K, view = canvas.camera_matrices()  # logical: what the panel's camera queries use
    device = K.copy()
    device[:2] *= ratio
    exact = run_job(still_job(scene, Camera(torch.from_numpy(device), torch.from_numpy(view), w * ratio, h * ratio),
                              "classic", (0.0, 0.0, 0.0), 0))
    assert _psnr(canvas.last_frame / 255.0, exact) >= 30
    canvas.progressive.close()
