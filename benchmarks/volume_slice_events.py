"""GUI-thread cost of one pointer event on the Volume panel with a large integer volume loaded
(default 512×512×300 int16): a TF point dragged (three slices redrawn per mouse move), a click that
moves the crosshair, a paint-brush drag step. The slices drawn through a per-value colour table
(today) against a TF evaluation per voxel (as before), same run, ratio printed.

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


def main() -> None:
    """Time each pointer event with and without the colour table and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", type=int, nargs=3, default=(300, 512, 512), metavar=("Z", "Y", "X"))
    parser.add_argument("--events", type=int, default=15)
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

    def brush_step(i):
        panel.paint_check.setChecked(True)
        panel.paint_at(0, (z, y, x - 60 + 2 * (i % 60)), finish=False)

    events = {"TF point drag": tf_drag, "crosshair click": crosshair_click, "brush drag step": brush_step}
    table = type(panel)._slice_table
    print(f"one pointer event (ms, median of {args.events}) with a {'×'.join(map(str, shape[::-1]))} int16 volume")
    print(f"{'event':<18} {'per voxel':>10} {'table':>8} {'ratio':>7}")
    for name, step in events.items():
        times = {}
        for mode in ("per voxel", "table"):
            type(panel)._slice_table = table if mode == "table" else (lambda self: None)
            times[mode] = median_ms(app, step, args.events)
            panel._commit_stroke()
            panel.paint_check.setChecked(False)
        type(panel)._slice_table = table
        print(f"{name:<18} {times['per voxel']:10.1f} {times['table']:8.1f} {times['per voxel'] / times['table']:6.1f}×")
    services.jobs.cancel_all()
    services.jobs.wait_all(10)


if __name__ == "__main__":
    main()
