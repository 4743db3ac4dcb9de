"""What an OpenGL widget inside the window costs every repaint: the studio (3D views drawn off screen,
`panels/offscreen_canvas.py`) against the same window with a vispy canvas's OpenGL widget placed in it
(what the 3D views did before), in the same run.

With a ``QOpenGLWidget`` among its children Qt composites the whole window through OpenGL on every
repaint; on a software rasterizer (Mesa llvmpipe, no GPU) that is GUI-thread time on every label change.

    xvfb-run -a -s "-screen 0 1600x1200x24" .venv/bin/python benchmarks/window_composition.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_API", "pyside6")


def median_ms(app, action, repeats: int = 20) -> tuple[float, float]:
    """Median and worst wall time (ms) of ``action(i)`` followed by processing the events it posted."""
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        action(i)
        app.processEvents()
        times.append((time.perf_counter() - start) * 1000.0)
    times.sort()
    return times[len(times) // 2], times[-1]


def measure(app, window) -> dict[str, tuple[float, float]]:
    """Repaint costs of a status-bar label and of the whole window."""
    label = window.device_label
    return {
        "label repaint": median_ms(app, lambda i: (label.setText(f"device: cpu {i}"), label.repaint())),
        "window repaint": median_ms(app, lambda i: window.repaint()),
    }


def main() -> None:
    from qtpy.QtGui import QSurface
    from qtpy.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    import benchmarks.shell_gui_stall as stall
    from studio.gc_guard import install
    from studio.main_window import MainWindow
    from studio.settings import StudioSettings

    install(app, freeze_long_lived=True)
    folder = Path(tempfile.mkdtemp())
    window = MainWindow(StudioSettings(str(folder / "settings.ini")), warm_up=True)
    window.resize(1400, 900)
    window.show()
    stall.pump(lambda: not window.startup.busy, 300, settle=1.0)
    window.show_panel("volume")
    volume = window.panel("volume")
    stall.pump(lambda: volume.volume is not None and volume.view3d.exact, 120, settle=1.0)
    surface = window.windowHandle().surfaceType()
    ours = measure(app, window)

    import vispy

    vispy.use(app="pyside6")
    from vispy import scene

    canvas = scene.SceneCanvas(keys=None, show=False, bgcolor="black")  # an OpenGL widget in the window,
    window.statusBar().addPermanentWidget(canvas.native)  # as the 3D views were before
    canvas.native.setFixedSize(32, 16)
    stall.pump(lambda: False, 2.0, settle=0)
    baseline_surface = window.windowHandle().surfaceType()
    baseline = measure(app, window)

    print(f"window surface: studio {surface.name}, with an OpenGL widget {baseline_surface.name}")
    print(f"{'repaint':<16}{'studio ms':>12}{'GL widget ms':>14}{'ratio':>8}   (median; worst in brackets)")
    for name, (median, worst) in ours.items():
        b_median, b_worst = baseline[name]
        print(f"{name:<16}{median:>7.1f} ({worst:>4.0f}){b_median:>8.1f} ({b_worst:>4.0f}){b_median / max(median, 1e-6):>7.1f}x")
    assert surface == QSurface.SurfaceType.RasterSurface, "the studio window should not composite through OpenGL"
    sys.stdout.flush()
    os._exit(0)  # skip Qt/vispy teardown


if __name__ == "__main__":
    main()
