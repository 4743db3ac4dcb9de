"""GUI-thread cost of one pointer event on the Volume panel with a large integer volume loaded
(default 512×512×300 int16), same run, ratios printed:

- a TF point dragged (three slices redrawn per mouse move) and a click that moves the crosshair: the
  slices drawn through a per-value colour table (today) against a TF evaluation per voxel (before);
- a paint-brush drag step early and late in a long stroke (radius 20), and the stroke's commit on
  release: today's step (only the new disc drawn into the stroke's overlay) against the step as it
  was (the stroke kept as a Python list, converted and the whole overlay rebuilt every step).

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/volume_slice_events.py [--shape 300 512 512] [--events 15]
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
os.environ.setdefault("SPECTRA_WARM_UP", "0")


def median_ms(app, step, events: int) -> float:
    """Median wall time of ``step(i)`` followed by the event-loop turn that paints it."""
    step(0)
    app.processEvents()
    times = []
    for i in range(1, events + 1):
        start = time.perf_counter()
        step(i)
        app.processEvents()
        times.append(1000.0 * (time.perf_counter() - start))
    return float(np.median(times))


def old_brush_step(panel, axis: int, voxel, pending: list) -> None:
    """A drag step as it was: the disc's voxels appended to a Python list, the whole list converted and
    the slice overlay rebuilt from every stroke (what ``_overlay`` did with the list)."""
    from engines.volume.classify import disc_voxels

    pending.extend(disc_voxels(voxel, axis, panel.brush, panel.volume.shape).tolist())
    panel._pending_stroke = [np.asarray(pending).reshape(-1, 3)]  # what _overlay read
    panel.slice_views[axis].set_overlay(panel._overlay(axis))


def old_commit(pending: list) -> np.ndarray:
    """The commit's repeat removal as it was: the list converted, rows made unique."""
    return np.unique(np.asarray(pending, dtype=np.int64), axis=0)


def brush_stroke(app, panel, centre, steps: int) -> None:
    """Time a long stroke both ways and print the table."""
    from engines.volume.classify import unique_voxels

    z, y, x = centre
    panel.paint_check.setChecked(True)
    panel.brush = 20
    path = [(z, y - 100 + (i * 3) % 200, x - 150 + i) for i in range(steps)]
    times = {}
    for mode in ("before", "now"):
        pending: list = []
        step_ms = []
        for voxel in path:
            start = time.perf_counter()
            if mode == "now":
                panel.paint_at(0, voxel, finish=False)
            else:
                old_brush_step(panel, 0, voxel, pending)
            app.processEvents()
            step_ms.append(1000.0 * (time.perf_counter() - start))
        start = time.perf_counter()
        if mode == "before":
            committed = old_commit(pending)
        else:
            voxels = unique_voxels(panel._pending_voxels(), panel.volume.shape)
            assert np.array_equal(voxels, committed)
        times[mode] = (np.median(step_ms[:10]), np.median(step_ms[-10:]), 1000.0 * (time.perf_counter() - start))
        panel._pending_stroke = []
        panel._stroke_overlay = None
    n = len(committed)
    print(f"brush stroke, radius 20, {steps} steps ({n} voxels); before / now (ms)")
    for i, name in enumerate(("first steps", "last steps", "release: repeats")):
        before, now = times["before"][i], times["now"][i]
        print(f"{name:<18} {before:10.1f} {now:8.1f} {before / now:6.1f}×")


def main() -> None:
    """Time each pointer event with and without the colour table and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", type=int, nargs=3, default=(300, 512, 512), metavar=("Z", "Y", "X"))
    parser.add_argument("--events", type=int, default=15)
    parser.add_argument("--stroke-steps", type=int, default=300)
    args = parser.parse_args()
    from qtpy.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    from engines.volume.model import Volume
    from panels.volume import VolumePanel
    from studio.services import StudioServices

    services = StudioServices()
    panel = VolumePanel(services)
    panel.resize(1200, 900)
    panel.show()
    shape = tuple(args.shape)
    data = np.random.default_rng(0).integers(-1000, 2000, shape, dtype=np.int16)
    panel.set_volume(Volume(data, modality="CT", units="HU"), None)
    for _ in range(5):
        app.processEvents()
    tf = panel.tf
    z, y, x = (n // 2 for n in shape)

    def tf_drag(i):
        panel._on_editor_changed(tf.shifted(float(i % 40)), False)

    def crosshair_click(i):
        panel._on_pointer(0, y - 20 + i % 40, x, drag=False, finish=True)

    events = {"TF point drag": tf_drag, "crosshair click": crosshair_click}
    table = type(panel)._slice_table
    print(f"one pointer event (ms, median of {args.events}) with a {'×'.join(map(str, shape[::-1]))} int16 volume")
    print(f"{'event':<18} {'per voxel':>10} {'table':>8} {'ratio':>7}")
    for name, step in events.items():
        times = {}
        for mode in ("per voxel", "table"):
            type(panel)._slice_table = table if mode == "table" else (lambda self: None)
            times[mode] = median_ms(app, step, args.events)
        type(panel)._slice_table = table
        print(f"{name:<18} {times['per voxel']:10.1f} {times['table']:8.1f} {times['per voxel'] / times['table']:6.1f}×")
    brush_stroke(app, panel, (z, y, x), args.stroke_steps)
    services.jobs.cancel_all()
    services.jobs.wait_all(10)


if __name__ == "__main__":
    main()
