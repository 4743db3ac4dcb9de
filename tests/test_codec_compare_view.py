"""The Codec compare view puts no per-pixel work on the GUI thread: the split view stacks B on A
behind a clip rectangle that follows the divider (what reaches the screen equals the split
composite), and difference images are cached and, when large, computed by a job."""

from __future__ import annotations

import threading
import tracemalloc

import numpy as np
import pytest

pytest.importorskip("pytestqt")

ZOOM = 10  # screen pixels per image pixel (below CompareView.VALUE_ZOOM: no value labels drawn)


def _pair(h=24, w=40, seed=5):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8), rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _split_reference(a, b, divider):
    """The split picture made independently: columns from round(divider) on come from B."""
    x = int(np.clip(round(divider), 0, a.shape[1]))
    return np.concatenate([a[:, :x], b[:, x:]], axis=1)


def _on_screen(view) -> np.ndarray:
    """The image pixels as rendered by the GraphicsView: the screen colour at each pixel's centre."""
    from qtpy.QtCore import QPointF
    from qtpy.QtGui import QImage

    grab = view.canvas.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    ratio = grab.devicePixelRatio()
    width, height = grab.width(), grab.height()
    ptr = grab.constBits()
    screen = np.frombuffer(ptr, np.uint8, grab.bytesPerLine() * height).reshape(height, grab.bytesPerLine())
    screen = screen[:, : width * 3].reshape(height, width, 3)
    h, w = view.a.shape[:2]
    out = np.zeros((h, w, 3), np.uint8)
    for y in range(h):
        for x in range(w):
            scene = view.view_a.mapViewToScene(QPointF(x + 0.5, y + 0.5))
            p = view.canvas.mapFromScene(scene)
            out[y, x] = screen[int(p.y() * ratio), int(p.x() * ratio)]
    return out


def _shows_array(item, array) -> bool:
    """``item`` shows ``array`` itself (pyqtgraph keeps a view of it), not a copy."""
    return item.image is not None and item.image.base is array and item.image.shape == array.shape


@pytest.fixture()
def shown_view(qtbot):
    from panels.codec.widgets import CompareView

    view = CompareView()
    qtbot.addWidget(view)
    view.resize(900, 600)
    view.show()
    qtbot.waitExposed(view)
    return view


def _zoom_in(view, qtbot, h, w):
    qtbot.wait(50)
    vb = view.view_a
    vw, vh = vb.width(), vb.height()
    cx, cy = w / 2, h / 2
    half_w, half_h = vw / ZOOM / 2, vh / ZOOM / 2
    vb.setRange(xRange=(cx - half_w, cx + half_w), yRange=(cy - half_h, cy + half_h), padding=0)
    qtbot.wait(50)
    r = vb.viewRect()
    assert vw / r.width() == pytest.approx(ZOOM, rel=0.05)  # one image pixel spans ~ZOOM screen pixels
    assert r.left() < 0 and r.right() > w and r.top() < 0 and r.bottom() > h  # the whole image is on screen


def test_split_view_on_screen_equals_composite_before_and_after_moving_the_divider(shown_view, qtbot):
    view = shown_view
    a, b = _pair()
    view.set_pair(a, b, "A", "B")
    _zoom_in(view, qtbot, *a.shape[:2])
    for divider in (view.divider.value(), 7.4, 31.6, 0.0, 40.0):
        view.divider.setValue(divider)
        qtbot.wait(20)
        want = _split_reference(a, b, divider)
        np.testing.assert_array_equal(view.composite(), want)
        shown = _on_screen(view)
        assert np.abs(shown.astype(int) - want).max() <= 1, f"divider {divider}"


def test_split_refresh_and_divider_moves_copy_no_image(shown_view, qtbot):
    """The ImageItems show ``a`` and ``b`` themselves, and refreshing or dragging allocates far less
    than one image (the old composite copied A and B's right part on every move)."""
    view = shown_view
    a, b = _pair(1000, 1200, seed=6)  # 3.6 MB each
    view.set_pair(a, b, "A", "B")
    assert _shows_array(view.item_a, a) and _shows_array(view.item_split_b, b)
    view.refresh()  # warm-up (first paint, value-label pools)
    qtbot.wait(20)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        view.refresh()
        for x in np.linspace(10, 1190, 40):
            view.divider.setValue(float(x))
        view.set_pair(a, b, "A", "B")
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert peak < a.nbytes / 10, f"{peak} bytes allocated"
    assert _shows_array(view.item_a, a) and _shows_array(view.item_split_b, b)
    assert view.split_clip.rect().left() == round(view.divider.value())


def test_difference_image_matches_numpy_for_all_gains():
    from engines.codec.difference import difference_image

    a, b = _pair(70, 33, seed=7)
    d = b.astype(int) - a.astype(int)
    for gain in (0, 1, 3, 32, 200, 255, 1000):
        g = min(gain, 255)
        np.testing.assert_array_equal(difference_image(a, b, False, gain, rows=16), np.clip(np.abs(d) * g, 0, 255))
        np.testing.assert_array_equal(difference_image(a, b, True, gain, rows=16), np.clip(128 + d * g, 0, 255))


def test_difference_is_cached_per_pair_mode_and_gain(qtbot, monkeypatch):
    from engines.codec import difference
    from panels.codec import widgets

    calls = []
    original = difference.difference_job

    def counting(*args, **kwargs):
        calls.append(args[2:4])
        return original(*args, **kwargs)

    monkeypatch.setattr(difference, "difference_job", counting)  # what difference_image runs
    view = widgets.CompareView()
    qtbot.addWidget(view)
    a, b = _pair()
    view.set_pair(a, b, "A", "B")
    view.mode.setCurrentText("Difference")
    view.gain.setValue(5)
    n = len(calls)
    shown = view.item_a.image
    view.refresh()
    view.refresh()
    assert len(calls) == n and view.item_a.image is shown  # nothing changed: no pixel work
    np.testing.assert_array_equal(view.composite(), np.clip(np.abs(b.astype(int) - a) * 5, 0, 255))
    assert len(calls) == n
    view.gain.setValue(6)
    assert len(calls) == n + 1 and calls[-1] == (False, 6)
    view.mode.setCurrentText("Signed difference")
    assert calls[-1] == (True, 6)
    np.testing.assert_array_equal(view.item_a.image, np.clip(128 + (b.astype(int) - a) * 6, 0, 255))
    view.set_pair(a.copy(), b, "A", "B")  # a new A: computed again
    assert calls[-1] == (True, 6) and len(calls) == n + 3


def test_large_difference_is_computed_by_the_panel_job_not_on_the_gui_thread(make_panel, qtbot, monkeypatch):
    from engines.codec import difference
    from panels.codec import CodecPanel, widgets

    threads = []
    original = difference.difference_band

    def recording(*args):
        threads.append(threading.get_ident())
        return original(*args)

    monkeypatch.setattr(difference, "difference_band", recording)
    panel = make_panel(CodecPanel)
    panel.p_auto.setChecked(False)
    view = panel.compare
    monkeypatch.setattr(widgets, "PAIR_ON_GUI_MAX_PIXELS", 100)  # the 24x40 pair counts as large here
    a, b = _pair()
    view.set_pair(a, b, "A", "B")
    view.gain.setValue(3)
    view.mode.setCurrentText("Difference")
    assert "computing" in view.label_a.text  # shown while the job runs
    want = np.clip(np.abs(b.astype(int) - a) * 3, 0, 255).astype(np.uint8)
    qtbot.waitUntil(lambda: view.item_a.image is not None and view.item_a.image.shape == a.shape
                    and np.array_equal(view.item_a.image, want), timeout=30000)
    assert "computing" not in view.label_a.text and "× 3" in view.label_a.text
    assert threads and threading.main_thread().ident not in threads
    n = len(threads)
    view.refresh()  # cached: no new job, no pixel work
    assert len(threads) == n and np.array_equal(view.item_a.image, want)


def test_split_values_drawn_when_zoomed_follow_the_divider(shown_view, qtbot):
    view = shown_view
    a, b = _pair()
    view.set_pair(a, b, "A", "B")
    view.divider.setValue(12)
    qtbot.wait(50)
    view.view_a.setRange(xRange=(10, 14), yRange=(5, 9), padding=0)
    qtbot.wait(50)

    def texts():
        return {(it.pos().x(), it.pos().y()): it.textItem.toPlainText() for it in view._value_items[0] if it.isVisible()}

    shown = texts()
    assert shown[(11.5, 6.5)] == "\n".join(str(v) for v in a[6, 11])  # left of the divider: A
    assert shown[(12.5, 6.5)] == "\n".join(str(v) for v in b[6, 12])  # from the divider on: B
    view.divider.setValue(13)
    assert texts()[(12.5, 6.5)] == "\n".join(str(v) for v in a[6, 12])


def test_compare_psnr_of_a_large_pair_is_measured_by_a_job_once(make_panel, qtbot, monkeypatch):
    """Two files in Compare: the PSNR line of a large pair comes from a job (the tab says it is
    measuring meanwhile), equals psnr_channels, and later refreshes of the same pair reuse it."""
    from engines.codec.metrics import psnr_channels
    from panels.codec import CodecPanel
    from panels.codec import panel as panel_module

    threads = []
    original = psnr_channels

    def recording(a, b):
        threads.append(threading.get_ident())
        return original(a, b)

    monkeypatch.setattr("engines.codec.metrics.psnr_channels", recording)
    panel = make_panel(CodecPanel)
    panel.p_auto.setChecked(False)
    monkeypatch.setattr("panels.codec.widgets.PAIR_ON_GUI_MAX_PIXELS", 100)  # the 24x40 pair counts as large here
    a, b = _pair()
    panel.cmp_files["A"] = {"path": "a.png", "name": "a.png", "image": a, "bytes": 500}
    panel.cmp_files["B"] = {"path": "b.png", "name": "b.png", "image": b, "bytes": 400}
    panel.cmp_a.addItem("File: a.png")  # as a file opened for A does
    panel.cmp_a.setCurrentIndex(2)  # (refreshes)
    assert "measuring" in panel.compare.stats.text()
    want = panel_module._psnr_text(original(a, b))
    qtbot.waitUntil(lambda: want in panel.compare.stats.text(), timeout=30000)
    assert threads and threading.main_thread().ident not in threads
    n = len(threads)
    panel._refresh_compare()
    panel._refresh_compare()
    assert len(threads) == n and want in panel.compare.stats.text()


class _HeldJobs:
    """Stands in for the job queue: keeps every difference job until the test finishes it, so
    results can arrive late and in any order."""

    def __init__(self) -> None:
        self.jobs: list = []

    def __call__(self, name, factory, on_result):
        handle = type("Handle", (), {"state": "running"})()
        self.jobs.append((factory, on_result, handle))
        return handle

    def finish(self, index: int) -> None:
        from engines.jobs import run_job

        factory, on_result, handle = self.jobs[index]
        value = run_job(factory())
        handle.state = "done"
        on_result(value)


def _is_computing(view, a) -> bool:
    """The left view shows this pair's A dimmed under the placeholder (and nothing else)."""
    return (_shows_array(view.item_a, a) and view.item_a.opacity() < 0.5 and view.computing.isVisible()
            and "computing difference" in view.computing.textItem.toPlainText() and "computing" in view.label_a.text)


def test_left_view_never_shows_an_old_pair_while_a_difference_job_runs(shown_view, qtbot, monkeypatch):
    """Switching to difference mode or to another pair while the difference is computed shows the
    new pair's A dimmed under "computing difference…"; a late result of an older pair is not shown."""
    view = shown_view
    jobs = view.run_job = _HeldJobs()
    monkeypatch.setattr("panels.codec.widgets.PAIR_ON_GUI_MAX_PIXELS", 100)  # the 24x40 pairs count as large here
    pairs = [_pair(seed=s) for s in (21, 22, 23)]
    (a1, b1), (a2, b2), (a3, b3) = pairs
    view.set_pair(a1, b1, "A", "B")
    assert _shows_array(view.item_a, a1) and view.item_a.opacity() == 1 and not view.computing.isVisible()
    view.mode.setCurrentText("Difference")
    view.gain.setValue(2)
    assert _is_computing(view, a1)
    jobs.finish(len(jobs.jobs) - 1)  # the gain-2 job (an earlier gain's job never finishes)
    want1 = np.clip(np.abs(b1.astype(int) - a1) * 2, 0, 255)
    np.testing.assert_array_equal(view.item_a.image, want1)
    assert view.item_a.opacity() == 1 and not view.computing.isVisible() and "computing" not in view.label_a.text
    view.set_pair(a2, b2, "A2", "B2")  # another pair: not pair 1's difference
    assert _is_computing(view, a2)
    job2 = len(jobs.jobs) - 1
    view.set_pair(a3, b3, "A3", "B3")  # and another, before pair 2's job is done
    assert _is_computing(view, a3)
    jobs.finish(job2)  # pair 2's result arrives late: not shown
    assert _is_computing(view, a3)
    jobs.finish(len(jobs.jobs) - 1)
    np.testing.assert_array_equal(view.item_a.image, np.clip(np.abs(b3.astype(int) - a3) * 2, 0, 255))
    assert view.item_a.opacity() == 1 and not view.computing.isVisible()
    view.mode.setCurrentText("Split")  # back to split: A at full opacity
    assert _shows_array(view.item_a, a3) and view.item_a.opacity() == 1 and not view.computing.isVisible()


def test_megapixel_pair_switch_in_the_panel_shows_the_new_a_until_its_difference_arrives(make_panel, qtbot):
    """Real queue, real ≥ 1 Mpx images: after switching pairs in difference mode the left view shows
    the new A dimmed (never the old difference), then exactly the new pair's difference."""
    from panels.codec import CodecPanel, widgets

    panel = make_panel(CodecPanel)
    panel.p_auto.setChecked(False)
    view = panel.compare
    (a1, b1), (a2, b2) = _pair(1024, 1100, seed=31), _pair(1024, 1100, seed=32)
    assert a1.shape[0] * a1.shape[1] > widgets.PAIR_ON_GUI_MAX_PIXELS
    view.mode.setCurrentText("Signed difference")
    view.set_pair(a1, b1, "A", "B")
    assert _is_computing(view, a1)
    want1 = np.clip(128 + (b1.astype(int) - a1) * 4, 0, 255)
    qtbot.waitUntil(lambda: not view.computing.isVisible(), timeout=30000)
    np.testing.assert_array_equal(view.item_a.image, want1)
    view.set_pair(a2, b2, "A2", "B2")
    assert _is_computing(view, a2)
    qtbot.waitUntil(lambda: not view.computing.isVisible(), timeout=30000)
    np.testing.assert_array_equal(view.item_a.image, np.clip(128 + (b2.astype(int) - a2) * 4, 0, 255))
    assert view.item_a.opacity() == 1


def test_one_pair_size_limit_bounds_both_the_difference_and_the_psnr(make_panel, qtbot, monkeypatch):
    """PAIR_ON_GUI_MAX_PIXELS decides for the difference image and the PSNR alike: at the limit both
    are computed on the spot, one pixel over it both go to jobs."""
    from engines.codec.metrics import psnr_channels
    from panels.codec import CodecPanel, widgets
    from panels.codec import panel as panel_module

    panel = make_panel(CodecPanel)
    panel.p_auto.setChecked(False)
    view = panel.compare
    view.mode.setCurrentText("Difference")
    for limit, seed in ((24 * 40, 41), (24 * 40 - 1, 42)):
        monkeypatch.setattr(widgets, "PAIR_ON_GUI_MAX_PIXELS", limit)
        a, b = _pair(seed=seed)
        panel.cmp_files["A"] = {"path": "a.png", "name": "a.png", "image": a, "bytes": 500}
        panel.cmp_files["B"] = {"path": "b.png", "name": "b.png", "image": b, "bytes": 400}
        if panel.cmp_a.count() < 3:
            panel.cmp_a.addItem("File: a.png")
        panel.cmp_a.setCurrentIndex(2)
        panel._refresh_compare()
        psnr = panel_module._psnr_text(psnr_channels(a, b))
        diff = np.clip(np.abs(b.astype(int) - a) * view.gain.value(), 0, 255)
        if limit == a.shape[0] * a.shape[1]:  # at the limit: both right away
            assert psnr in view.stats.text() and "computing" not in view.label_a.text
            np.testing.assert_array_equal(view.item_a.image, diff)
        else:  # one pixel over: both measured by jobs, then shown
            assert "measuring" in view.stats.text() and "computing" in view.label_a.text
            qtbot.waitUntil(lambda want=psnr: want in view.stats.text() and not view.computing.isVisible(),
                            timeout=30000)
            np.testing.assert_array_equal(view.item_a.image, diff)


@pytest.mark.parametrize("how", ["cancelled", "failed"])
def test_a_stopped_difference_job_is_reported_not_left_computing(make_panel, qtbot, monkeypatch, how):
    """A difference job cancelled in the queue (or failed) leaves the view saying so over the dimmed A,
    not "computing…" for ever; changing the gain tries again and shows the difference."""
    from panels.codec import CodecPanel, widgets

    monkeypatch.setattr(widgets, "PAIR_ON_GUI_MAX_PIXELS", 100)  # the 24x40 pair counts as large here
    if how == "failed":
        def broken(*_args, **_kwargs):
            raise OSError("no memory for the difference")
            yield  # a generator, as a job is

        monkeypatch.setattr(widgets, "difference_job", broken)
    panel = make_panel(CodecPanel)
    panel.p_auto.setChecked(False)
    view = panel.compare
    a, b = _pair(seed=51)
    view.mode.setCurrentText("Difference")
    panel.cmp_files["A"] = {"path": "a.png", "name": "a.png", "image": a, "bytes": 500}
    panel.cmp_files["B"] = {"path": "b.png", "name": "b.png", "image": b, "bytes": 400}
    panel.cmp_a.addItem("File: a.png")  # as a file opened for A does
    panel.cmp_a.setCurrentIndex(2)  # (refreshes)
    assert _is_computing(view, a)
    if how == "cancelled":
        view._diff_pending[4].cancel()  # as the job table's cancel button does
    word = "was cancelled" if how == "cancelled" else "failed"
    qtbot.waitUntil(lambda: f"not computed: the job {word}" in view.label_a.text, timeout=30000)
    text = view.computing.textItem.toPlainText()
    assert f"the job {word}" in text and "try again" in text and view.computing.isVisible()
    assert _shows_array(view.item_a, a) and view.item_a.opacity() < 0.5
    panel._refresh_compare()  # a refresh by the panel does not start it again behind the user's back
    assert "not computed" in view.label_a.text and view._diff_pending is None
    monkeypatch.undo()
    monkeypatch.setattr(widgets, "PAIR_ON_GUI_MAX_PIXELS", 100)
    view.gain.setValue(5)  # the user asks again
    qtbot.waitUntil(lambda: not view.computing.isVisible(), timeout=30000)
    np.testing.assert_array_equal(view.item_a.image, np.clip(np.abs(b.astype(int) - a) * 5, 0, 255))
    assert view.item_a.opacity() == 1 and "not computed" not in view.label_a.text


def _side_by_side_shown(qtbot):
    """A shown compare view, Side by side chosen before a 44×30 pair arrives; (view, a, b)."""
    from panels.codec.widgets import CompareView

    view = CompareView()
    qtbot.addWidget(view)
    view.resize(900, 500)
    view.show()
    view.mode.setCurrentText("Side by side")
    a, b = _pair(30, 44)
    view.set_pair(a, b, "A", "B")
    qtbot.wait(300)
    return view, a, b


def test_side_by_side_views_stay_fitted_and_linked_when_the_mode_comes_before_the_pair(qtbot):
    """Side by side chosen before the images arrive: after the layout settles both views show the whole
    image (B's unfitted range, changed by its own resize, used to replace A's fit: a 4×2-pixel corner);
    a zoom in B is followed by A; after a resize both still show the same."""
    view, _a, _b = _side_by_side_shown(qtbot)

    def shown(vb):
        (x0, x1), (y0, y1) = vb.viewRange()
        return x0, x1, y0, y1

    for vb in (view.view_a, view.view_b):
        x0, x1, y0, y1 = shown(vb)
        assert x0 <= 0 and y0 <= 0 and x1 >= 44 and y1 >= 30 and (x1 - x0 < 3 * 44 or y1 - y0 < 3 * 30)

    def units_per_pixel(vb):
        x0, x1, _y0, _y1 = shown(vb)
        return (x1 - x0) / vb.width()

    view.view_b.scaleBy((0.5, 0.5))  # zoom in on B
    assert units_per_pixel(view.view_a) == pytest.approx(units_per_pixel(view.view_b), rel=1e-6)
    zoom = units_per_pixel(view.view_b)
    centre = view.view_b.viewRect().center()
    assert view.view_a.viewRect().center() == centre
    view.resize(1100, 600)  # (the views keep what they show; both the same)
    qtbot.wait(300)
    assert units_per_pixel(view.view_a) == pytest.approx(units_per_pixel(view.view_b), rel=1e-6)
    for vb in (view.view_a, view.view_b):
        assert abs(vb.viewRect().center().x() - centre.x()) < 1e-6 and units_per_pixel(vb) < 2 * zoom


def test_the_read_out_shows_the_pixel_under_the_pointer_after_quick_moves(qtbot):
    """Two moves 1 ms apart: the read-out names the pixel under the second (pyqtgraph's signal drops
    moves closer than 10 ms, which left the first one's pixel shown while the pointer rested)."""
    from qtpy.QtCore import QPoint
    from qtpy.QtTest import QTest

    view, a, _b = _side_by_side_shown(qtbot)
    viewport = view.canvas.viewport()
    for first, last in ((QPoint(200, 150), QPoint(260, 170)), (QPoint(150, 120), QPoint(330, 200))):
        QTest.mouseMove(viewport, first)
        QTest.mouseMove(viewport, last)
        p = view.view_a.mapSceneToView(view.canvas.mapToScene(last))
        x, y = int(np.floor(p.x())), int(np.floor(p.y()))
        assert 0 <= x < 44 and 0 <= y < 30
        want = f"x {x}, y {y}   A = {tuple(int(v) for v in a[y, x])}"
        qtbot.waitUntil(lambda: view.readout.text().startswith(want), timeout=1000)  # (the moves are queued)
