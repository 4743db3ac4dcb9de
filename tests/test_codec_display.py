"""The Codec panel's display path: 8-bit images reach the screen as they are, with no per-pixel
rescaling on the GUI thread (a 16 Mpx photo used to cost ~0.2 s per new image)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytestqt")


def _shown_pixels(item) -> np.ndarray:
    import pyqtgraph.functions as fn

    item.render()
    return fn.ndarray_from_qimage(item.qimage).copy()


def test_uint8_images_are_shown_exactly_without_levels(qtbot):
    from panels.codec.widgets import ImageCanvas

    canvas = ImageCanvas()
    qtbot.addWidget(canvas)
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    canvas.set_image(rgb)
    assert canvas.image_item.levels is None  # pass-through: pyqtgraph wraps the array in a QImage
    assert np.array_equal(_shown_pixels(canvas.image_item), rgb)
    grey = rng.integers(0, 256, (20, 30), dtype=np.uint8)
    canvas.set_image(grey)
    shown = _shown_pixels(canvas.image_item)
    assert np.array_equal(shown if shown.ndim == 2 else shown[..., 0], grey)
    view = rgb[:, ::2]  # not contiguous: shown from a contiguous copy, same pixels
    canvas.set_image(view)
    assert np.array_equal(_shown_pixels(canvas.image_item), view)


def test_heat_map_stops_at_the_edges_of_an_image_whose_size_is_not_a_multiple_of_the_block(qtbot):
    """517 x 389 px in 8 px blocks: the last column and row of blocks reach 3 px past the image. The
    heat map is drawn up to the image's edges and not beyond (a dark strip was drawn outside it)."""
    from qtpy.QtCore import QPointF

    from panels.codec.widgets import ImageCanvas

    canvas = ImageCanvas()
    qtbot.addWidget(canvas)
    canvas.resize(700, 560)
    canvas.show()
    height, width = 389, 517
    canvas.set_image(np.full((height, width, 3), 128, np.uint8), auto_range=True)
    bits = np.full((49, 65), 100.0, np.float32)  # every block costs the same: a uniform heat map
    canvas.set_overlay(bits, 8, (height, width), True, peak=100.0)
    canvas.grid.setVisible(False)
    canvas.view.setRange(xRange=(500, 530), yRange=(370, 400), padding=0)  # around the bottom-right corner
    qtbot.wait(50)
    shot = canvas.grab().toImage()
    ratio = shot.devicePixelRatio()

    def colour(x, y):
        point = canvas.view.mapViewToDevice(QPointF(x, y))
        c = shot.pixelColor(int(point.x() * ratio), int(point.y() * ratio))
        return c.red(), c.green(), c.blue()

    inside, outside_right, outside_below = colour(510, 380), colour(519, 380), colour(510, 391)
    background = colour(528, 398)
    assert inside != background  # the image under the heat map
    assert outside_right == background and outside_below == background  # nothing past the image


def test_non_uint8_images_keep_the_0_255_window(qtbot):
    from panels.codec.widgets import ImageCanvas

    canvas = ImageCanvas()
    qtbot.addWidget(canvas)
    image = np.linspace(-50.0, 300.0, 12 * 10 * 3).reshape(12, 10, 3)
    canvas.set_image(image)
    assert list(canvas.image_item.levels) == [0, 255]
    expected = np.clip(image, 0, 255)
    assert np.abs(_shown_pixels(canvas.image_item)[..., :3].astype(float) - expected).max() <= 1.0


def test_compare_view_composite_shown_exactly(qtbot):
    from panels.codec.widgets import CompareView

    view = CompareView()
    qtbot.addWidget(view)
    rng = np.random.default_rng(4)
    a = rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)
    view.set_pair(a, b, "A", "B")
    # split: A and B each shown exactly as they are, B clipped to the columns right of the divider
    assert np.array_equal(_shown_pixels(view.item_a), a) and np.array_equal(_shown_pixels(view.item_split_b), b)
    x = round(view.divider.value())
    assert 0 < x < 40
    assert view.split_clip.isVisible() and view.split_clip.rect().getRect() == (x, 0, 40 - x, 24)


def test_encode_result_stats_are_computed_on_the_worker(make_panel, monkeypatch):
    """The pooled entropy the panel prints is computed by the encode job's worker, not by the GUI
    thread when the result is shown."""
    import threading

    import engines.codec.blockcodec as blockcodec
    from panels.codec import CodecPanel
    from tests.gui_helpers import wait_loaded

    threads = []
    original = blockcodec.zeroth_order_entropy_bits

    def recording(q):
        threads.append(threading.get_ident())
        return original(q)

    monkeypatch.setattr(blockcodec, "zeroth_order_entropy_bits", recording)
    panel = make_panel(CodecPanel)
    panel.load_sample("astronaut")
    wait_loaded(panel, 300)  # the first encode may compile the codec's kernels
    assert panel.result is not None and threads
    assert threading.main_thread().ident not in threads
    expected = sum(original(plane.q) for plane in panel.result.planes) / (panel.result.shape[0] * panel.result.shape[1])
    assert f"{expected:.3f} bpp" in panel.p_status.text()
