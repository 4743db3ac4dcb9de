"""GUI-thread cost of redrawing a live PSNR / loss plot during a fit: the studio's live plot
(panels/live_plot.py: cached axes, ranges that move only when the curves leave them) against the
plain autoranging pyqtgraph plot the Render panel used before, same run, same data, ratio printed.

    xvfb-run -a -s "-screen 0 1600x1200x24" .venv/bin/python benchmarks/live_plot_repaint.py [--steps 500] [--every 10]

The plot is built like the Render panel's (grid, legend, a second view box with its own right
axis for the loss); every ``--every`` steps the curves get their new points and the plot is
repainted synchronously (what one throttled redraw costs the GUI thread).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("QT_API", "pyside6")


def build_plot(live: bool):
    """A two-axis plot like the Render panel's fit plot; ``live`` applies the studio's live-plot helpers."""
    import pyqtgraph as pg

    from panels.live_plot import LiveView, StableRange, cache_axes

    plot = pg.PlotWidget()
    plot.setBackground("#202020")
    plot.showGrid(x=True, y=True, alpha=0.3)
    plot.setLabel("bottom", "step")
    plot.setLabel("left", "PSNR (dB)", color="#4fc3f7")
    legend = plot.addLegend(offset=(-10, 10))
    psnr = plot.plot([], [], pen=pg.mkPen("#4fc3f7", width=2), name="PSNR")
    plot.showAxis("right")
    plot.setLabel("right", "loss", color="#ffb74d")
    loss_box = pg.ViewBox()
    plot.scene().addItem(loss_box)
    plot.getAxis("right").linkToView(loss_box)
    loss_box.setXLink(plot)
    loss = pg.PlotCurveItem([], [], pen=pg.mkPen("#ffb74d", width=2))
    loss_box.addItem(loss)
    legend.addItem(loss, "loss")
    main_box = plot.getViewBox()
    main_box.sigResized.connect(lambda *_: loss_box.setGeometry(main_box.sceneBoundingRect()))
    views = None
    if live:
        cache_axes(plot.getPlotItem())
        views = LiveView(main_box, x=StableRange()), LiveView(loss_box)
    plot.resize(1000, 300)
    plot.show()
    return plot, psnr, loss, views


def run(live: bool, steps: int, every: int, app) -> list[float]:
    """Milliseconds per redraw (new points + synchronous repaint) over one simulated fit."""
    plot, psnr_curve, loss_curve, views = build_plot(live)
    for _ in range(10):
        app.processEvents()
    if views is not None:
        views[0].reset(x_fixed=(0, steps))
        views[1].reset()
    x = np.arange(1, steps + 1)
    rng = np.random.default_rng(0)
    psnr = 12.0 + 9.0 * np.log1p(x / 20.0) + rng.normal(0, 0.2, steps)
    loss = 0.35 / (1.0 + x / 25.0) + rng.normal(0, 0.003, steps)
    times = []
    for n in range(every, steps + 1, every):
        t = time.perf_counter()
        psnr_curve.setData(x[:n], psnr[:n])
        loss_curve.setData(x[:n], loss[:n])
        if views is not None:
            views[0].show(x[:n], psnr[:n])
            views[1].show(x[:n], loss[:n])
        plot.viewport().repaint()
        times.append(1000.0 * (time.perf_counter() - t))
    plot.close()
    return times


def main() -> None:
    """Run both plots and print median / worst redraw and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--every", type=int, default=10, help="steps between redraws (the throttle's effect)")
    args = parser.parse_args()
    from qtpy.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    rows = {}
    for name, live in (("baseline (autorange)", False), ("studio (live plot)", True), ("baseline again", False)):
        rows[name] = run(live, args.steps, args.every, app)
    print(f"live fit plot: {args.steps} steps, a redraw every {args.every} steps; ms per redraw (points + repaint)")
    print(f"{'plot':22} {'median':>8} {'worst':>8} {'total':>8}")
    for name, t in rows.items():
        print(f"{name:22} {np.median(t):8.1f} {max(t):8.1f} {sum(t):8.0f}")
    base = rows["baseline (autorange)"] + rows["baseline again"]
    ours = rows["studio (live plot)"]
    print(f"ratio baseline / studio: median {np.median(base) / np.median(ours):.1f}×, "
          f"total {sum(base) / 2 / sum(ours):.1f}×")


if __name__ == "__main__":
    main()
