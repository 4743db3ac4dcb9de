"""Curves that grow while a job runs (a fit's PSNR and loss, a tokenizer's training statistics),
kept cheap to repaint on the GUI thread.

A pyqtgraph plot with a grid costs 20–45 ms per repaint on a CPU-only machine when it autoranges:
every new point moves the axes, so the axes (which also draw the grid) are laid out and painted
again. Here the axes are cached as pixmaps and the ranges move only when the data leaves them
(:class:`StableRange`, to round bounds), so most repaints only draw the curves (~1–2 ms; see
``benchmarks/live_plot_repaint.py``). :class:`Throttle` coalesces the redraws of a burst of events.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable

from qtpy.QtCore import QObject, QTimer
from qtpy.QtWidgets import QGraphicsItem

__all__ = ["Throttle", "StableRange", "LiveView", "nice_range", "cache_axes", "fix_axis_width", "REDRAW_INTERVAL_MS"]

#: live curves redraw at most this often while a job sends points (ms)
REDRAW_INTERVAL_MS = 250


class Throttle(QObject):
    """Calls ``fn`` at most once every ``interval_ms``: :meth:`request` schedules a call unless one
    is already pending; :meth:`flush` calls it now (e.g. for the last points when a job ends)."""

    def __init__(self, fn: Callable[[], None], interval_ms: int = REDRAW_INTERVAL_MS, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._fn = fn
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(int(interval_ms))
        self._timer.timeout.connect(self.flush)

    @property
    def pending(self) -> bool:
        """Whether a call is scheduled."""
        return self._timer.isActive()

    def request(self) -> None:
        """Schedule a call within ``interval_ms`` (no-op while one is pending)."""
        if not self._timer.isActive():
            self._timer.start()

    def flush(self) -> None:
        """Call ``fn`` now and drop the pending call."""
        self._timer.stop()
        self._fn()


def nice_range(lo: float, hi: float) -> tuple[float, float]:
    """``[lo, hi]`` widened to multiples of a round step (1, 2 or 5 × 10ⁿ, at most 5 steps across);
    a single value gets a range around it."""
    if hi < lo:
        lo, hi = hi, lo
    span = hi - lo
    if span <= 0.0:
        span = abs(hi) * 0.1 or 1.0
        lo, hi = lo - span / 2.0, hi + span / 2.0
    unit = 10.0 ** math.floor(math.log10(span))
    step = next(m * unit for m in (0.2, 0.5, 1.0, 2.0, 5.0, 10.0) if span / (m * unit) <= 5.0)
    low, high = math.floor(lo / step) * step, math.ceil(hi / step) * step
    if high - low < span:  # float rounding at a boundary
        high += step
    return low, high


class StableRange:
    """One axis's range for growing data: kept while the data stays inside it with ``headroom`` of the
    range's span free at each end (a curve never touches the frame) and fills at least ``min_fill``
    of it, otherwise moved to :func:`nice_range` of the data widened by ``margin`` of its span on each
    side (and further when rounding left less than ``headroom``). ``fixed`` pins it (e.g. a fit's
    known number of steps)."""

    def __init__(self, min_fill: float = 0.4, margin: float = 0.1, fixed: tuple[float, float] | None = None,
                 headroom: float = 0.03) -> None:
        self.min_fill, self.margin, self.headroom = float(min_fill), float(margin), float(headroom)
        self.fixed = fixed
        self.current: tuple[float, float] | None = fixed
        self.changes = 0  # how often the range moved (each move repaints the axes)

    def reset(self, fixed: tuple[float, float] | None = None) -> None:
        """Forget the range (a new run starts); ``fixed`` pins the new one."""
        self.fixed = fixed
        self.current = fixed
        self.changes = 0

    def update(self, values: Iterable[float]) -> tuple[float, float] | None:
        """The range for ``values`` (the finite ones); returns it when it moved, ``None`` when kept."""
        if self.fixed is not None:
            return None
        finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
        if not finite:
            return None
        lo, hi = min(finite), max(finite)
        cur = self.current
        if cur is not None and self._holds(cur, lo, hi) and (hi - lo) >= self.min_fill * (cur[1] - cur[0]):
            return None
        margin = self.margin * (hi - lo)  # room to grow before the next move
        new = nice_range(lo - margin, hi + margin)
        while not self._holds(new, lo, hi):  # rounding ended right at the data: one more step of room
            margin += self.headroom * (new[1] - new[0])
            new = nice_range(lo - margin, hi + margin)
        if new == cur:
            return None
        self.current = new
        self.changes += 1
        return new


    def _holds(self, bounds: tuple[float, float], lo: float, hi: float) -> bool:
        """Whether ``bounds`` hold ``[lo, hi]`` with :attr:`headroom` of their span free at each end."""
        room = self.headroom * (bounds[1] - bounds[0])
        return bounds[0] + room <= lo and hi <= bounds[1] - room


def fix_axis_width(axis, widest_tick: str) -> None:
    """Keep a vertical pyqtgraph ``AxisItem`` as wide as ``widest_tick`` (a tick label as wide as any it
    will show): an axis that fits its labels grows or shrinks when a range change alters them, which
    resizes the plot and paints every axis again."""
    from qtpy.QtGui import QFontMetrics

    font = axis.style.get("tickFont") or axis.font()
    axis.setStyle(autoExpandTextSpace=False, tickTextWidth=QFontMetrics(font).horizontalAdvance(widest_tick))


def cache_axes(plot_item, names: Iterable[str] = ("left", "bottom", "right")) -> None:
    """Paint the axes of a pyqtgraph ``PlotItem`` (with their grid lines) once into a pixmap, reused
    until the range or size changes."""
    for name in names:
        plot_item.getAxis(name).setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)


class LiveView:
    """A pyqtgraph ``ViewBox`` whose ranges follow growing data through :class:`StableRange` (``x``
    ``None``: its x range is linked to another view), until the user pans or zooms it or turns
    autorange back on; :meth:`reset` hands it back for the next run."""

    def __init__(self, view_box, x: StableRange | None = None, y: StableRange | None = None) -> None:
        self.view_box, self.x, self.y = view_box, x, y if y is not None else StableRange()
        self.user_moved = False
        view_box.disableAutoRange()
        view_box.sigRangeChangedManually.connect(self._user_moved)

    def _user_moved(self, *_) -> None:
        self.user_moved = True

    def reset(self, x_fixed: tuple[float, float] | None = None) -> None:
        """A new run: forget the ranges, pin x to ``x_fixed`` (when given) and follow the data again."""
        self.user_moved = False
        self.view_box.disableAutoRange()
        self.y.reset()
        if self.x is not None:
            self.x.reset(x_fixed)
            if x_fixed is not None:
                self.view_box.setXRange(*x_fixed, padding=0)

    def show(self, xs: Iterable[float], ys: Iterable[float]) -> None:
        """Move the ranges if the data ``xs``, ``ys`` left them (call after ``setData``)."""
        if self.user_moved or any(self.view_box.autoRangeEnabled()):
            return
        moved_x = self.x.update(xs) if self.x is not None else None
        moved_y = self.y.update(ys)
        if moved_x is not None:
            self.view_box.setXRange(*moved_x, padding=0)
        if moved_y is not None:
            self.view_box.setYRange(*moved_y, padding=0)
