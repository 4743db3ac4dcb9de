"""panels/live_plot.py: round ranges that hold the data and rarely move, the throttle, and a view
that stops following the data once the user pans it."""

import math

import numpy as np
import pytest

from panels.live_plot import LiveView, StableRange, Throttle, cache_axes, nice_range


@pytest.mark.parametrize("lo, hi", [(0.0, 1.0), (12.3, 27.9), (-3.2, 0.7), (0.0213, 0.0871), (5.0, 5.0), (-1e6, 2e6), (7.0, 3.0)])
def test_nice_range_holds_the_data_on_round_steps(lo, hi):
    low, high = nice_range(lo, hi)
    assert low <= min(lo, hi) and max(lo, hi) <= high and high > low
    span = high - low
    step = next(s for s in (10.0 ** k * m for k in range(-6, 8) for m in (1, 2, 5)) if span / s <= 6 + 1e-9)
    for bound in (low, high):  # both ends sit on a multiple of a 1-2-5 step
        assert math.isclose(bound / step, round(bound / step), abs_tol=1e-6)
    if hi != lo:
        assert span <= 3.0 * abs(hi - lo) + 1e-12  # not much wider than the data


def test_stable_range_follows_growing_curves_with_few_moves():
    psnr = 10.0 + 8.0 * np.log1p(np.arange(400) / 5.0)  # a fit's PSNR: fast rise, then flat
    loss = 0.4 / (1.0 + np.arange(400) / 10.0)  # a loss falling over two decades
    for series in (psnr, loss):
        axis = StableRange()
        for n in range(1, len(series) + 1):
            axis.update(series[:n])
            lo, hi = axis.current
            assert lo <= series[:n].min() and series[:n].max() <= hi
        assert axis.changes <= 12, axis.changes  # against 400 moves when autoranging
        assert series.max() - series.min() >= 0.4 * (axis.current[1] - axis.current[0])


def test_stable_range_keeps_headroom_above_and_below_the_curve():
    """A fit's PSNR that levels off at 59.8 dB: a range kept from earlier points ended at exactly 60 and
    the curve touched the plot's top edge; every range shown keeps 3 % of its span free at both ends."""
    psnr = 20.0 + 39.8 * (1.0 - np.exp(-np.arange(300) / 40.0))  # rises to 59.8
    psnr[-60:] = 59.8
    for series, headroom in ((psnr, 0.03), (psnr[::-1].copy(), 0.03), (np.array([0.0, 60.0]), 0.05)):
        axis = StableRange(headroom=headroom)
        for n in range(1, len(series) + 1):
            axis.update(series[:n])
            lo, hi = axis.current
            room = headroom * (hi - lo)
            assert lo + room <= series[:n].min() and series[:n].max() <= hi - room, (n, axis.current)
    assert StableRange().update([20.0, 60.0]) == (10.0, 70.0)  # data 20..60 ends on a round step: one step more


def test_stable_range_ignores_nan_and_keeps_a_fixed_range():
    axis = StableRange()
    assert axis.update([float("nan"), None]) is None and axis.current is None
    assert axis.update([1.0, float("inf"), 2.0]) == nice_range(0.9, 2.1)  # 10 % margin of the span
    pinned = StableRange(fixed=(0, 40))
    assert pinned.update([50.0]) is None and pinned.current == (0, 40)
    pinned.reset()
    assert pinned.update([50.0]) is not None


def test_throttle_coalesces_requests_and_flush_calls_at_once(qtbot):
    calls = []
    throttle = Throttle(lambda: calls.append(1), 80)
    for _ in range(50):
        throttle.request()
    assert calls == [] and throttle.pending
    qtbot.waitUntil(lambda: calls == [1], timeout=2000)
    qtbot.wait(150)
    assert calls == [1]
    throttle.request()
    throttle.flush()
    assert calls == [1, 1] and not throttle.pending


def test_live_view_follows_until_the_user_pans(qtbot):
    import pyqtgraph as pg
    from qtpy.QtWidgets import QGraphicsItem

    plot = pg.PlotWidget()
    qtbot.addWidget(plot)
    cache_axes(plot.getPlotItem())
    assert plot.getAxis("left").cacheMode() == QGraphicsItem.CacheMode.DeviceCoordinateCache
    view = LiveView(plot.getViewBox(), x=StableRange())
    view.reset(x_fixed=(0, 100))
    view.show([1, 2, 3], [10.0, 12.0, 15.0])
    (x0, x1), (y0, y1) = plot.getViewBox().viewRange()
    assert (x0, x1) == (0, 100) and y0 <= 10.0 and 15.0 <= y1
    plot.getViewBox().sigRangeChangedManually.emit([True, True])  # what a mouse pan / zoom emits
    plot.getViewBox().setYRange(100, 200, padding=0)
    view.show([1, 2, 3, 4], [10.0, 12.0, 15.0, 40.0])
    assert plot.getViewBox().viewRange()[1] == [100, 200]  # the user's view is kept
    view.reset(x_fixed=(0, 50))
    view.show([1, 2], [3.0, 4.0])
    (x0, x1), (y0, y1) = plot.getViewBox().viewRange()
    assert (x0, x1) == (0, 50) and y0 <= 3.0 and 4.0 <= y1
