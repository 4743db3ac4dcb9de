"""GUI-thread time of the Codec compare view on large images: today's view vs the old composite
view, same run, same images, ratios printed.

    xvfb-run -a -s "-screen 0 1600x1200x24" .venv/bin/python benchmarks/codec_compare_view.py [--mpx 16] [--moves 40]

* ours: split mode stacks B's ImageItem on A's, clipped right of the divider (a divider move
  changes a clip rectangle); difference images are cached per (A, B, mode, gain) and computed by a
  job (here: a plain worker thread standing in for the studio's job queue);
* baseline: the view as it was: every refresh and every divider move built the split composite
  (``a.copy()`` + B's right part) and every refresh computed the difference image on the GUI thread.

Each phase is timed twice: the view's own work only, and with a synchronous repaint of the canvas
after every step (what the user waits for). The GUI thread does everything measured here.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("QT_API", "pyside6")


def make_baseline_class():
    """The compare view as it was before: composite and difference built on the GUI thread."""
    from panels.codec.widgets import CompareView, show_image

    class CompositeCompareView(CompareView):
        def _on_divider(self, _line=None) -> None:
            if self.mode.currentIndex() == 0:
                self.refresh()

        def refresh(self) -> None:
            self._diff = None  # no cache
            super().refresh()
            if self.a is None or self.b is None:
                return
            mode = self.mode.currentIndex()
            if mode == 0:
                self.split_clip.setVisible(False)
                show_image(self.item_a, self.composite())
            elif mode == 2:
                diff = np.abs(self.signed_difference()) * int(self.gain.value())
                show_image(self.item_a, np.clip(diff, 0, 255).astype(np.uint8))
            elif mode == 3:
                diff = 128 + self.signed_difference() * int(self.gain.value())
                show_image(self.item_a, np.clip(diff, 0, 255).astype(np.uint8))
            if mode in (2, 3):
                self._show_computing(False)  # shown here: at full opacity, no placeholder

        def _difference_for_display(self):
            return None  # shown by refresh above

    return CompositeCompareView


class ThreadRunner:
    """Stands in for the studio's job queue: runs a job generator on a worker thread; its result
    callback is called on the GUI thread by :meth:`deliver`."""

    def __init__(self) -> None:
        self.finished: list = []

    def __call__(self, name, factory, on_result):
        from engines.jobs import run_job

        handle = type("Handle", (), {"state": "running"})()

        def work() -> None:
            value = run_job(factory())
            handle.state = "done"
            self.finished.append((on_result, value))

        threading.Thread(target=work, name=name, daemon=True).start()
        return handle

    def deliver(self) -> None:
        """Call the finished jobs' result callbacks (GUI thread)."""
        while self.finished:
            callback, value = self.finished.pop(0)
            callback(value)


def run(view_class, a, b, moves: int, repaint: bool, app) -> dict:
    """Time the phases on a fresh view; returns ms per phase (GUI-thread time only)."""
    view = view_class()
    runner = view.run_job = ThreadRunner()
    view.resize(1200, 800)
    view.show()
    app.processEvents()
    paint = (lambda: view.canvas.viewport().repaint()) if repaint else (lambda: None)
    out = {}
    t = time.perf_counter()
    view.set_pair(a, b, "A", "B")
    paint()
    out["set_pair (split)"] = time.perf_counter() - t
    t = time.perf_counter()
    for x in np.linspace(0.1, 0.9, moves) * a.shape[1]:
        view.divider.setValue(float(x))
        paint()
    out[f"{moves} divider moves"] = time.perf_counter() - t
    t = time.perf_counter()
    view.set_pair(a, b, "A", "B")  # the panel re-sends the same pair (e.g. after an encode)
    paint()
    out["set_pair again"] = time.perf_counter() - t
    gui = time.perf_counter()
    view.mode.setCurrentText("Difference")
    paint()
    gui = time.perf_counter() - gui
    while view._diff_pending is not None:
        time.sleep(0.005)  # the worker computes: not GUI-thread time
        t = time.perf_counter()
        runner.deliver()
        gui += time.perf_counter() - t
    t = time.perf_counter()
    paint()
    out["difference (GUI thread)"] = gui + time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(5):
        view.refresh()
        paint()
    out["5 refreshes (difference)"] = time.perf_counter() - t
    shown = view.item_a.image
    want = np.clip(np.abs(b.astype(np.int16) - a) * view.gain.value(), 0, 255).astype(np.uint8)
    assert shown is not None and np.array_equal(shown, want), "difference image differs"
    view.close()
    view.deleteLater()
    app.processEvents()
    return {k: 1000 * v for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mpx", type=float, default=16.0, help="image size in megapixels (square-ish 4:3)")
    ap.add_argument("--moves", type=int, default=40, help="divider moves per run")
    args = ap.parse_args()
    from qtpy.QtWidgets import QApplication

    from panels.codec.widgets import CompareView

    app = QApplication.instance() or QApplication([])
    w = round(np.sqrt(args.mpx * 1e6 * 4 / 3))
    h = round(w * 3 / 4)
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    b = np.clip(a.astype(np.int16) + rng.integers(-6, 7, a.shape), 0, 255).astype(np.uint8)
    baseline = make_baseline_class()
    print(f"compare view, {w}x{h} RGB ({w * h / 1e6:.1f} Mpx), {args.moves} divider moves; GUI-thread ms")
    for repaint in (False, True):
        ours = run(CompareView, a, b, args.moves, repaint, app)
        old = run(baseline, a, b, args.moves, repaint, app)
        print(f"\n{'with a repaint after every step' if repaint else 'view work only (no repaint)'}")
        print(f"{'phase':<28}{'old ms':>10}{'ours ms':>10}{'ratio':>9}")
        for key in ours:
            print(f"{key:<28}{old[key]:>10.1f}{ours[key]:>10.1f}{old[key] / max(ours[key], 1e-3):>8.1f}×")


if __name__ == "__main__":
    main()
